"""The command line as a user meets it: every expected refusal is one line and exit status 2 and
leaves no run directory behind, --help explains every flag, Ctrl-C says how to resume."""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import dlrecipes
from dlrecipes.data import catalog
from tests.conftest import MNIST_TEST_DIR, ROOT, digit_folder, recipe_module, started


def IMAGE(*argv) -> int:
    return recipe_module("image_classification").main([str(a) for a in argv])


def TEXT(*argv) -> int:
    return recipe_module("text_bilstm").main([str(a) for a in argv])


RECIPE = ROOT / "recipes" / "image_classification" / "recipe.py"
MNIST_TEST = f"idx:{MNIST_TEST_DIR}"


@pytest.fixture(scope="module")
def digits(tmp_path_factory) -> Path:
    """60 real digits (0, 1, 2) as PNG files: a `folder:` dataset that trains in seconds."""
    return digit_folder(tmp_path_factory.mktemp("digits") / "d")


def _folder(digits: Path) -> list[str]:
    return ["--dataset", f"folder:{digits}", "--image-size", "28,28"]


@pytest.fixture(scope="module")
def finished(digits, tmp_path_factory) -> tuple[Path, str]:
    """A finished tiny run of the image recipe on the digit folder, and what it printed."""
    run_dir = tmp_path_factory.mktemp("finished") / "run"
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert IMAGE("train", "--tiny", *_folder(digits), "--run-dir", run_dir) == 0
    return run_dir, out.getvalue()


def _refused(capsys, main, *argv) -> str:
    """Runs the command line; checks exit status 2 and that its last word is one error line."""
    status = main(*argv)
    err = capsys.readouterr().err
    assert status == 2, err
    assert "Traceback" not in err
    last = err.rstrip().splitlines()[-1]
    assert last.startswith("error: "), err  # one line: nothing of the message after it
    return last


def test_refusals_before_training_are_one_line_and_leave_no_directory(
    digits, tmp_path, capsys, monkeypatch
):
    monkeypatch.chdir(tmp_path)  # a default run directory would appear under ./runs
    monkeypatch.setattr(catalog, "_online", lambda *a, **k: False)
    few = tmp_path / "few"
    digit_folder(few, per_class=2)
    (tmp_path / "hp.json").write_text('{"wdith": 3}')
    cases = [
        (["--optimizer", "adamx"], "optimizer='adamx' is not allowed; use one of: sgd"),
        (["--strategy", "tpu"], "strategy='tpu' is not allowed"),
        (["--epochs", "0"], "epochs must be at least 1"),
        (["--widths", "8,x"], "widths='8,x' is not a valid"),
        (["--hparams", "missing.json"], "--hparams missing.json: no such file"),
        (["--hparams", "hp.json"], "Unknown config field(s) ['wdith']"),
        (["--dataset", "mnist_smaple"], "Unknown dataset 'mnist_smaple'. Known datasets:"),
        (["--dataset", "cifar10", "--data-dir", "tfds"], "cannot reach www.cs.toronto.edu"),
        (["--dataset", "folder:nowhere", "--image-size", "8,8"], "does not exist"),
        (["--dataset", "idx:nowhere"], "idx:nowhere does not exist"),
        (["--dataset", f"folder:{digits}"], "needs an image size"),
        (["--dataset", f"folder:{few}", "--image-size", "8,8"], "2 readable images; every"),
        (["--dataset", MNIST_TEST], "holds only a test split (1000 examples; idx: files"),
        (["--dataset", MNIST_TEST, "--folds", "2"], "recipe.py evaluate --model RUN_DIR"),
        (["--folds", "1"], "--folds must be at least 2; got 1"),
        ([*_folder(digits), "--widths", "8,8,8,8,8,8"], "a 28-pixel side is 1 pixel after 4"),
        (["--resume"], "--resume needs --run-dir"),
        (["--run-dir", "fresh", "--resume"], "fresh holds no config.json"),
    ]
    for argv, needle in cases:
        assert needle in _refused(capsys, IMAGE, "train", "--tiny", *argv), argv
    (tmp_path / "reviews.csv").write_text("review,stars\ngreat,5\n")
    text_cases = [
        (["--dataset", "rt_snippetz"], "Unknown text dataset 'rt_snippetz'. Known: rt_snippets"),
        (["--dataset", "csv:nowhere.csv"], "csv:nowhere.csv does not exist"),
        (["--dataset", "csv:reviews.csv"], "has no 'text' or 'label' column"),
    ]
    for argv, needle in text_cases:
        assert needle in _refused(capsys, TEXT, "train", "--tiny", *argv), argv
    # No run directory was left behind (`--folds` made and removed one under runs/).
    assert not [p for p in (tmp_path / "runs").rglob("*") if p.name != "image_classification"]
    assert not (tmp_path / "fresh").exists()


def test_widths_that_do_not_fit_say_which_fit(digits, capsys):
    line = _refused(capsys, IMAGE, "train", *_folder(digits), "--widths", "8,8,8,8,8,8")
    assert "6 stages, which halve the image 5 times" in line
    assert "(28 -> 14 -> 7 -> 3 -> 1): give at most 5 widths (e.g. --widths 8,8,8,8,8)" in line
    assert "\x1b[" not in line  # no terminal colour codes from Keras


@pytest.mark.slow
def test_refusals_about_run_directories_and_saved_models(finished, tmp_path, capsys):
    finished, _ = finished
    model = finished / "model.keras"
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "notes.txt").write_text("mine")
    (tmp_path / "corrupt.keras").write_bytes(b"PK\x03\x04 not a zip")
    cases = [
        (IMAGE, ["train", "--run-dir", tmp_path / "taken"], "already holds a run"),
        (IMAGE, ["train", "--run-dir", finished, "--resume"], "finished already"),
        (IMAGE, ["train", "--run-dir", finished, "--resume", "--epochs", "9"], "flags differ"),
        (IMAGE, ["evaluate", "--model", tmp_path / "none.keras"], "No model at"),
        (IMAGE, ["evaluate", "--model", tmp_path / "corrupt.keras"], "corrupt or half-written"),
        (IMAGE, ["evaluate", "--model", model, "--dataset", MNIST_TEST], "(28, 28, 1)"),
        (
            TEXT,
            ["evaluate", "--model", model],
            f"trained by the image_classification recipe, not text_bilstm (its config.json says "
            f"so): run `python recipes/image_classification/recipe.py evaluate --model {model}`",
        ),
        (
            TEXT,
            ["train", "--run-dir", finished, "--resume"],
            "recipes/image_classification/recipe.py train --run-dir",
        ),
    ]
    for main, argv, needle in cases:
        assert needle in _refused(capsys, main, *argv), argv
    assert (tmp_path / "taken" / "notes.txt").read_text() == "mine"
    # A run killed after epoch 1 whose backup was damaged since.
    damaged = tmp_path / "damaged"
    damaged.mkdir()
    for name in ("config.json", "history.csv", "model.keras"):
        (damaged / name).write_bytes((finished / name).read_bytes())
    backup = damaged / "backup" / "train" / "epoch-0001-step-000000"
    backup.mkdir(parents=True)
    (backup / "state.json").write_text('{"epoch": 1, "steps_done": 0, "finished": false}')
    (backup / "state.weights.h5").write_bytes(b"\x89HDF\r\n cut short")
    line = _refused(capsys, IMAGE, "train", "--run-dir", damaged, "--resume")
    assert f"The backup in {backup} cannot be restored (OSError" in line
    assert f"Move {backup.parent} away to restart that part of the run from its start" in line


@pytest.mark.slow
def test_a_config_from_another_recipe_without_its_name_is_still_named(finished, tmp_path, capsys):
    """Runs written before config.json named the recipe."""
    finished, _ = finished
    saved = json.loads((finished / "config.json").read_text())
    saved.pop("recipe")
    (tmp_path / "config.json").write_text(json.dumps(saved))
    (tmp_path / "model.keras").symlink_to(finished / "model.keras")
    line = _refused(capsys, TEXT, "evaluate", "--model", tmp_path / "model.keras")
    assert "fields the text_bilstm recipe does not know (activation, batch_norm, contrast" in line
    (tmp_path / "config.json").write_text("{not json")
    line = _refused(capsys, TEXT, "evaluate", "--model", tmp_path / "model.keras")
    assert "config.json is not valid JSON" in line


@pytest.mark.slow
def test_divergence_is_one_line(digits, tmp_path, capsys):
    argv = [
        "--optimizer",
        "sgd",
        "--learning-rate",
        "1e30",
        "--no-batch-norm",
        "--batch-size",
        "16",
    ]
    run_dir = tmp_path / "run"
    line = _refused(capsys, IMAGE, "train", "--tiny", *_folder(digits), *argv, "--run-dir", run_dir)
    assert line.startswith("error: Training diverged: loss became nan at epoch 1, batch")
    assert not (run_dir / "metrics.json").exists()


@pytest.mark.slow
def test_a_folder_with_files_that_are_not_images(digits, tmp_path, capsys):
    root = tmp_path / "mixed"
    digit_folder(root, per_class=4)
    (root / "0" / "broken.png").write_bytes(b"\x89PNG not really")
    (root / "1" / "notes.txt").write_text("scanned on Monday")
    (root / "2" / "empty.jpg").write_bytes(b"")
    argv = ["train", "--tiny", *_folder(root), "--run-dir", tmp_path / "run"]
    with pytest.warns(UserWarning) as caught:
        assert IMAGE(*argv) == 0
    messages = " ".join(str(w.message) for w in caught)
    assert "left out 2 files that cannot be decoded as an image: 0/broken.png, 2/empty.jpg" in (
        messages
    )
    assert "left out 1 file not named as an image" in messages and "1/notes.txt" in messages
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["num_examples"] == 3  # one test image per class: the bad files were skipped
    # A class left with too few readable images is refused before anything is written.
    for path in (root / "2").glob("*.png"):
        path.write_bytes(b"GIF89a, but no more")
    line = _refused(capsys, IMAGE, "train", "--tiny", *_folder(root), "--run-dir", tmp_path / "r2")
    assert "has 0 readable images" in line
    assert not (tmp_path / "r2").exists()


def test_help_shows_every_flag_with_its_default_choices_and_a_line_of_help(capsys):
    with pytest.raises(SystemExit):
        IMAGE("train", "--help")
    out = " ".join(capsys.readouterr().out.split())  # undo argparse's wrapping
    assert "--optimizer {sgd,momentum,adagrad,rmsprop,adam,adamw}" in out
    assert "--arch {convnet,resnet} convnet | resnet (default: convnet)" in out
    assert "--widths N,N,... filters per stage (default: 16,32,64)" in out
    assert "--image-size N,N resize to (h, w); None keeps the dataset's size" in out
    # A recipe's reason follows the base class's meaning; block comments give their first line.
    assert "--batch-size N examples per training step; 128 needed more epochs" in out
    assert "--ema X Momentum of an exponential moving average of the weights (0 = off)" in out
    assert "--flip, --no-flip random horizontal flips (default: False)" in out
    assert "(x0.1 at 50% and 75%)" in out
    # Every config flag, in every recipe, has a line of help before its default.
    for name in ("image_classification", "text_bilstm"):
        module = recipe_module(name)
        commands = dlrecipes.cli.Commands(name, module.Config, None, None, None)
        train = dlrecipes.cli.build_parser(commands)[1]["train"]
        fields = {f.name for f in dataclasses.fields(module.Config)}
        flags = [a for a in train._actions if a.dest in fields]
        assert len(flags) == len(fields) - 1  # all but `fold`, which --folds sets
        for action in flags:
            described, _, default = action.help.rpartition(" (default: ")
            assert len(described) > 8 and default.endswith(")"), (name, action.dest)


def test_ctrl_c_before_training_says_nothing_was_written(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)

    def interrupt(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr("dlrecipes.data.load", interrupt)
    assert IMAGE("train", "--tiny") == 130
    err = capsys.readouterr().err
    assert err.strip() == "interrupted before training started; no run directory was written."
    assert not list(tmp_path.iterdir())


def test_ctrl_c_during_a_search_says_how_to_continue_it(tmp_path, capsys, monkeypatch):
    def interrupt(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr("dlrecipes.tuning.search", interrupt)
    assert IMAGE("tune", "--tiny", "--directory", tmp_path / "search") == 130
    assert capsys.readouterr().err.strip() == (
        f"interrupted; {tmp_path / 'search'} keeps the finished trials. Run the same command "
        "again, without --overwrite, to continue the search."
    )


@pytest.mark.slow
def test_ctrl_c_during_training_prints_the_resume_command_and_exits_130(digits, tmp_path):
    """A real SIGINT to a real process: one line, no traceback, the exact command to resume."""
    run_dir = tmp_path / "run"
    argv = ["train", *_folder(digits), "--epochs", "200", "--batch-size", "16", "--export"]
    # As a terminal's foreground job: a suite started in the background by a non-interactive
    # shell (`make test &`) runs with SIGINT ignored, which its children would inherit.
    foreground = (
        "import runpy, signal, sys; signal.signal(signal.SIGINT, signal.default_int_handler); "
        "sys.argv = sys.argv[1:]; runpy.run_path(sys.argv[0], run_name='__main__')"
    )
    command = [sys.executable, "-c", foreground, RECIPE, *argv, "--run-dir", run_dir]
    output = {"stdout": subprocess.DEVNULL, "stderr": subprocess.PIPE, "text": True}
    with started(command, cwd=ROOT, **output) as proc:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and proc.poll() is None:
            if list(run_dir.glob("backup/train/epoch-*/state.json")):
                break
            time.sleep(0.1)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=300)
    assert proc.returncode == 130, err[-3000:]
    assert "Traceback" not in err
    last = err.strip().splitlines()[-1]
    assert last.startswith(f"interrupted; {run_dir} keeps what was done. Continue with: ")
    command = shlex.split(last.split("Continue with: ")[1])
    assert command == [
        "python",
        str(RECIPE),
        "train",
        "--run-dir",
        str(run_dir),
        "--resume",
        "--export",
        "saved_model",
    ]
    assert (run_dir / "config.json").exists() and not (run_dir / "metrics.json").exists()


@pytest.mark.slow
def test_folds_export_every_fold_and_evaluate_ignores_the_fold(tmp_path, capsys, recwarn):
    """Cross-validation on the embedded digits: each fold knows its length (no "ran out of data"),
    exports its model, and a fold's model scores on another dataset without its fold."""
    run_dir = tmp_path / "cv"
    argv = ["train", "--tiny", "--epochs", "1", "--batch-size", "256", "--folds", "2", "--export"]
    argv += ["--run-dir", run_dir]
    assert IMAGE(*argv) == 0
    out = capsys.readouterr().out
    assert "2-fold validation accuracy" in out and out.strip().splitlines()[-1] == str(run_dir)
    assert not [w for w in recwarn if "ran out of data" in str(w.message)]
    summary = json.loads((run_dir / "folds.json").read_text())
    assert summary["folds"] == 2 and len(summary["per_fold"]) == 2
    assert 0 < summary["val_accuracy_mean"] <= 1 and summary["val_accuracy_std"] >= 0
    for fold in ("fold-1", "fold-2"):
        assert (run_dir / fold / "metrics.json").exists()
        assert (run_dir / fold / "saved_model" / "saved_model.pb").exists()
    assert json.loads((run_dir / "fold-1" / "config.json").read_text())["fold"] == [0, 2]
    fold_model = run_dir / "fold-1" / "model.keras"
    assert IMAGE("evaluate", "--model", fold_model, "--dataset", MNIST_TEST) == 0
    scored = json.loads(Path(capsys.readouterr().out.strip().splitlines()[-1]).read_text())
    assert scored["num_examples"] == 1_000


@pytest.mark.slow
def test_training_says_one_step_and_one_replica(finished):
    _, out = finished
    assert ": 1 step/epoch, 1 replica, XLA" in out
    assert "Epoch 2/2 " in out  # the epochs, on the lines that count them


def test_an_abbreviated_flag_is_refused_with_the_subcommands_usage(capsys):
    """`--epoch 3` is no `--epochs 3`: argparse would take a prefix, and a typo of one flag for
    another (--l for --l1 or --l2, --learning for --learning-rate) would pass silently."""
    with pytest.raises(SystemExit) as stop:
        IMAGE("train", "--tiny", "--epoch", "3")
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("usage: recipes/image_classification/recipe.py train ")
    assert err.rstrip().splitlines()[-1] == (
        "recipes/image_classification/recipe.py train: error: unrecognized arguments: --epoch 3"
    )


@pytest.mark.parametrize("command", ["train", "tune", "evaluate --model m.keras"])
def test_an_unknown_flag_prints_the_usage_of_its_subcommand(capsys, command):
    with pytest.raises(SystemExit) as stop:
        IMAGE(*command.split(), "--no-such-flag")
    assert stop.value.code == 2
    err = capsys.readouterr().err
    name = command.split()[0]
    assert err.startswith(f"usage: recipes/image_classification/recipe.py {name} ")
    assert "--run-dir" in err if name == "train" else "--run-dir" not in err
    assert err.rstrip().endswith(f"{name}: error: unrecognized arguments: --no-such-flag")


@pytest.mark.slow
def test_predict_refuses_a_model_trained_by_another_recipe(finished, capsys):
    model = finished[0] / "model.keras"
    line = _refused(capsys, TEXT, "predict", "--model", model, "Superb.")
    assert line == (
        f"error: {finished[0]} was trained by the image_classification recipe, not text_bilstm "
        f"(its config.json says so): run `python recipes/image_classification/recipe.py "
        f"predict --model {model} Superb.` instead."
    )


@pytest.mark.parametrize(
    ("target", "argv"),
    [
        ("keras.saving.load_model", ["evaluate", "--model", "FINISHED/model.keras"]),
        ("tensorflow_datasets.load", ["train", "--dataset", "cifar10", "--data-dir", "TMP"]),
        ("dlrecipes.data.load", ["train", "--run-dir", "TMP/run"]),
    ],
)
@pytest.mark.slow
def test_a_bug_keeps_its_traceback(finished, tmp_path, monkeypatch, target, argv):
    """Only expected refusals become exit status 2: an error no one planned for propagates."""

    def bug(*args, **kwargs):
        raise RuntimeError("a bug")

    monkeypatch.setattr(target, bug)
    monkeypatch.setattr(catalog, "_online", lambda *a, **k: True)
    monkeypatch.setattr(catalog, "_prepared", lambda *a, **k: True)
    argv = [a.replace("FINISHED", str(finished[0])).replace("TMP", str(tmp_path)) for a in argv]
    with pytest.raises(RuntimeError, match="a bug"):
        IMAGE(*argv)
    assert not (tmp_path / "run").exists()
