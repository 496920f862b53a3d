"""`python -m dlrecipes runs`: runs side by side, from real tiny runs of the image recipe on a
folder of real digits, and run directories derived from them in every state; a tuning
directory's trials the same way."""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
from contextlib import redirect_stdout
from pathlib import Path

import pytest

from dlrecipes import __main__ as dlrecipes_main
from dlrecipes import callbacks, runs_table
from tests.conftest import digit_folder, recipe_module


def IMAGE(*argv) -> int:
    """The image recipe's command line, run in this process."""
    return recipe_module("image_classification").main([str(a) for a in argv])


def _run_main(*argv: str | Path) -> tuple[int, str]:
    out = io.StringIO()
    with redirect_stdout(out):
        status = dlrecipes_main.main([str(a) for a in argv])
    return status, out.getvalue()


def _started(run: Path, minutes_ago: int) -> None:
    """Sets when a run started (its config.json's time), so the order is known."""
    stamp = (run / "config.json").stat().st_mtime - 60 * minutes_ago
    os.utime(run / "config.json", (stamp, stamp))


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> Path:
    """runs/image_classification/: two real finished runs (adamw and sgd), and copies of the
    first left as a resumable run, a diverged one and a failed one; runs/text_bilstm/: a run
    that only wrote its config."""
    root = tmp_path_factory.mktemp("runs") / "runs"
    digits = digit_folder(root.parent / "digits")
    data = ["--tiny", "--dataset", f"folder:{digits}", "--image-size", "28,28"]
    image = root / "image_classification"
    assert IMAGE("train", *data, "--run-dir", image / "adamw") == 0
    assert IMAGE("train", *data, "--optimizer", "sgd", "--run-dir", image / "sgd") == 0
    # Killed after its first epoch's backup: metrics.json not written, backup/ kept.
    shutil.copytree(image / "adamw", image / "killed", ignore=shutil.ignore_patterns("metrics*"))
    backup = image / "killed" / "backup" / "train" / "epoch-0001-step-000000"
    backup.mkdir(parents=True)
    (backup / "state.json").write_text('{"epoch": 1, "steps_done": 0, "finished": false}')
    # Diverged in its second epoch: the history ends in a NaN loss.
    shutil.copytree(image / "adamw", image / "nan", ignore=shutil.ignore_patterns("metrics*"))
    with (image / "nan" / "history.csv").open() as f:
        header = next(csv.reader(f))
    nan_row = {
        "epoch": "2",
        "loss": "nan",
        "accuracy": "0.1",
        "val_accuracy": "0.1",
        "seconds": "1.5",
    }
    with (image / "nan" / "history.csv").open("a", newline="") as f:
        csv.DictWriter(f, header, restval="nan").writerow(nan_row)
    # Refused after claiming its directory: config.json only.
    (image / "refused").mkdir()
    shutil.copy(image / "adamw" / "config.json", image / "refused" / "config.json")
    text = root / "text_bilstm" / "20261207-120000"
    text.mkdir(parents=True)
    (text / "config.json").write_text(json.dumps({"recipe": "text_bilstm", "dataset": "csv:x"}))
    for minutes, name in enumerate(["refused", "nan", "killed", "sgd", "adamw"]):
        _started(image / name, minutes_ago=10 * (minutes + 1))
    return root


def _table(out: str) -> list[list[str]]:
    """The printed table's rows, split on runs of two or more spaces."""
    import re

    lines = out.split("\n\n")[0].splitlines()
    return [re.split(r"\s{2,}", line.strip()) for line in lines]


def test_runs_are_listed_newest_first_with_their_state(runs):
    status, out = _run_main("runs", runs, "--recipe", "image_classification")
    assert status == 0
    head, *rows = _table(out)
    assert head[:3] == ["started", "recipe", "dataset"]
    assert head[-5:] == ["val_accuracy", "test_accuracy", "train_s", "state", "run"]
    assert [(r[-1], r[-2]) for r in rows] == [
        ("image_classification/refused", "failed"),
        ("image_classification/nan", "diverged"),
        ("image_classification/killed", "resumable"),
        ("image_classification/sgd", "finished"),
        ("image_classification/adamw", "finished"),
    ]
    # Of the settings only the one that differs between the runs gets a column.
    assert head[3:-5] == ["optimizer"]
    assert [r[3] for r in rows] == ["adamw", "adamw", "adamw", "sgd", "adamw"]


def test_accuracies_and_training_time_come_from_the_runs_files(runs):
    rows = {r.path.name: r for r in runs_table.find_runs(runs)}
    finished = runs / "image_classification" / "sgd"
    metrics = json.loads((finished / "metrics.json").read_text())
    history = callbacks.read_history(finished / "history.csv")
    sgd = rows["sgd"]
    assert (sgd.val_accuracy, sgd.test_accuracy) == (
        metrics["best_val_accuracy"],
        metrics["accuracy"],
    )
    # Training time: the epochs' seconds that training recorded in history.csv.
    assert len(history) == 2 and all(float(r[callbacks.SECONDS]) > 0 for r in history)
    assert sgd.train_seconds == pytest.approx(sum(float(r["seconds"]) for r in history))
    # An unfinished run shows its best validation so far and no test accuracy yet.
    copied = callbacks.read_history(runs / "image_classification" / "adamw" / "history.csv")
    killed = rows["killed"]
    assert killed.val_accuracy == max(float(r["val_accuracy"]) for r in copied)
    assert killed.test_accuracy is None
    assert rows["refused"].val_accuracy is None and rows["refused"].train_seconds is None


def test_the_csv_and_the_plot_hold_the_same_runs(runs):
    status, out = _run_main("runs", runs)
    assert status == 0
    printed = _table(out)
    with (runs / "runs.csv").open(newline="") as f:
        written = list(csv.reader(f))
    assert len(written) == len(printed) == 7  # the header, five image runs, one text run
    assert [row[-1] for row in written] == [row[-1] for row in printed]
    assert (runs / "runs.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    fig = runs_table.plot(runs_table.find_runs(runs), runs / "again.png")
    points = sum(len(c.get_offsets()) for c in fig.axes[0].collections)
    # Every run with a known time: test and validation of the two finished runs, validation
    # of the killed and diverged ones (the refused run and the text run never trained).
    assert points == 6
    assert f"tensorboard --logdir {runs}" in out


def test_settings_are_compared_within_a_recipe(runs):
    rows = runs_table.find_runs(runs)
    assert {r.recipe for r in rows} == {"image_classification", "text_bilstm"}
    # The text run's config has none of the image recipe's fields: they do not differ for it.
    assert runs_table.differing_settings(rows) == ["optimizer"]


def test_refusals_are_one_line(runs, tmp_path, capsys):
    assert dlrecipes_main.main(["runs", str(tmp_path / "nowhere")]) == 2
    assert "is not a directory" in capsys.readouterr().err
    assert dlrecipes_main.main(["runs", str(runs), "--recipe", "pruning"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "runs there are of image_classification, text_bilstm" in err


def test_a_tuning_directory_lists_its_trials_the_same_way(runs, tmp_path):
    digits = runs.parent / "digits"
    tuning = tmp_path / "tuning"
    search = ["tune", "--tiny", "--dataset", f"folder:{digits}", "--image-size", "28,28"]
    search += ["--tuner", "random", "--max-trials", "2", "--max-epochs", "1"]
    assert IMAGE(*search, "--directory", tuning) == 0
    status, out = _run_main("runs", tuning)
    assert status == 0
    head, *rows = _table(out)
    assert len(rows) == 2 and {r[-2] for r in rows} == {"completed"}
    # The objective each trial scored is what the search's own trials.csv says.
    with (tuning / "trials.csv").open(newline="") as f:
        scores = {r["trial"]: float(r["val_accuracy"]) for r in csv.DictReader(f)}
    listed = {r.path.name.removeprefix("trial_"): r for r in runs_table.find_trials(tuning)}
    assert {k: r.val_accuracy for k, r in listed.items()} == pytest.approx(scores)
    assert all(r.train_seconds > 0 for r in listed.values())
    assert (tuning / "runs.csv").exists() and (tuning / "runs.png").exists()
    assert "tensorboard" not in out  # trials keep no TensorBoard logs


def test_a_cross_validated_run_is_one_row_of_its_folds(runs, tmp_path):
    """`train --folds 2` writes fold-1/ and fold-2/ (runs of their own) and folds.json."""
    finished = runs / "image_classification" / "adamw"
    cv = tmp_path / "image_classification" / "cv"
    for fold in ("fold-1", "fold-2"):
        shutil.copytree(finished, cv / fold)
    shutil.copy(finished / "config.json", cv / "config.json")
    summary = {"folds": 2, "val_accuracy_mean": 0.91, "test_accuracy_mean": 0.9}
    (cv / "folds.json").write_text(json.dumps(summary))
    for root in (tmp_path, tmp_path / "image_classification"):
        (row,) = runs_table.find_runs(root)
        assert row.path == cv and row.state == "finished"
        assert (row.val_accuracy, row.test_accuracy) == (0.91, 0.9)
        one_fold = runs_table.find_runs(finished)[0].train_seconds
        assert row.train_seconds == pytest.approx(2 * one_fold)
