"""Run directories: never shared, and a run stopped at any moment resumes with nothing lost.

The stops here are Ctrl-C raised in-process at chosen points of the image recipe's own `train`
(mid-epoch, between epochs, between the epoch's history row and its backup, after its backup,
after training, while writing the report), each followed by `--resume` on the command line.
`tests/test_lifecycle.py` stops real processes of every recipe with SIGKILL and SIGINT.
"""

from __future__ import annotations

import csv
import json
import os
import threading
from pathlib import Path

import keras
import pytest

import dlrecipes
from dlrecipes import backups, reports, runtime
from dlrecipes import callbacks as cb
from dlrecipes import run as runs
from dlrecipes.errors import DatasetError, RunDirError
from tests.conftest import digit_folder, recipe_module

IMAGE = recipe_module("image_classification")


def main(*argv) -> int:
    return IMAGE.main([str(a) for a in argv])


@pytest.fixture(scope="module")
def digits(tmp_path_factory) -> Path:
    return digit_folder(tmp_path_factory.mktemp("digits") / "d")


def _epochs(run_dir: Path) -> list[int]:
    with (run_dir / "history.csv").open() as f:
        return [int(row["epoch"]) for row in csv.DictReader(f)]


def _val_accuracy(model_path: Path, config) -> float:
    splits = IMAGE.load_data(config)
    model = dlrecipes.load_model(model_path, compile=False)
    model.compile(loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model.evaluate(splits.validation, verbose=0, return_dict=True)["accuracy"]


def _check_consistent(run_dir: Path) -> int:
    """What a resumed run will find: the history of every backed-up epoch, no more, no gap, and
    backup/best.keras scoring the best validation accuracy in it. Returns the epochs done."""
    state = backups.settle(run_dir, run_dir / "backup" / "train")
    done = state["epoch"] if state else 0
    rows = [r for r in cb.read_history(run_dir / "history.csv") if int(r["epoch"]) < done]
    assert [int(r["epoch"]) for r in rows] == list(range(done))
    if done:
        config = IMAGE.Config.load(run_dir / "config.json")
        best = max(float(r["val_accuracy"]) for r in rows)
        assert _val_accuracy(backups.best_path(run_dir), config) == pytest.approx(best, abs=1e-6)
    return done


class _Kill(keras.callbacks.Callback):
    """Ctrl-C at the end of batch `batch` of `epoch`, or (batch None) as `epoch` begins."""

    def __init__(self, epoch: int, batch: int | None = None) -> None:
        super().__init__()
        self.epoch, self.batch, self.now = epoch, batch, -1

    def on_epoch_begin(self, epoch, logs=None):
        self.now = epoch
        if epoch == self.epoch and self.batch is None:
            raise KeyboardInterrupt

    def on_train_batch_end(self, batch, logs=None):
        if self.now == self.epoch and batch == self.batch:
            raise KeyboardInterrupt


def _with_kill(monkeypatch, kill: keras.callbacks.Callback) -> None:
    """Adds `kill` after the run's own callbacks in the next fit."""
    callbacks = dlrecipes.Run.callbacks
    monkeypatch.setattr(
        dlrecipes.Run, "callbacks", lambda self, *a, **k: [*callbacks(self, *a, **k), kill]
    )


def _kill_at_backup(monkeypatch, epochs_done: int, after: bool) -> None:
    """Ctrl-C just before (or just after) the backup of `epochs_done` epochs is written."""
    write = backups.RunBackup._write

    def _write(self, epoch, steps, **kwargs):
        if epoch == epochs_done and not after:
            raise KeyboardInterrupt
        write(self, epoch, steps, **kwargs)
        if epoch == epochs_done:
            raise KeyboardInterrupt

    monkeypatch.setattr(backups.RunBackup, "_write", _write)


def _interrupt(*args, **kwargs):
    raise KeyboardInterrupt


@pytest.mark.slow
def test_a_run_stopped_at_every_point_resumes_with_nothing_lost(digits, tmp_path, capsys):
    run_dir = tmp_path / "run"
    argv = ["train", "--tiny", "--dataset", f"folder:{digits}", "--image-size", "28,28"]
    argv += ["--epochs", "4", "--batch-size", "16", "--run-dir", run_dir]
    resume = [*argv, "--resume"]

    def stopped(*args, setup) -> str:
        with pytest.MonkeyPatch.context() as mp:
            setup(mp)
            assert main(*args) == 130
        out, err = capsys.readouterr()
        assert err.rstrip().splitlines()[-1].endswith(f"--run-dir {run_dir} --resume")
        assert not (run_dir / "metrics.json").exists()
        return out

    # 1. During the first epoch: nothing backed up yet; resuming starts from epoch 1.
    stopped(*argv, setup=lambda mp: _with_kill(mp, _Kill(epoch=0, batch=1)))
    assert _check_consistent(run_dir) == 0
    # 2. Between epochs: epoch 1 is kept whole.
    stopped(*resume, setup=lambda mp: _with_kill(mp, _Kill(epoch=1)))
    assert _check_consistent(run_dir) == 1 and _epochs(run_dir) == [0]
    # 3. After epoch 2's history row, before its backup: the row is there, the backup is not.
    stopped(*resume, setup=lambda mp: _kill_at_backup(mp, epochs_done=2, after=False))
    assert _epochs(run_dir) == [0, 1]
    assert _check_consistent(run_dir) == 1
    # 4. Epoch 2 runs again (its stale row is dropped); stopped right after epoch 3's backup.
    out = stopped(*resume, setup=lambda mp: _kill_at_backup(mp, epochs_done=3, after=True))
    assert "Epoch 2/4" in out and "Epoch 1/4" not in out
    assert _epochs(run_dir) == [0, 1, 2]
    assert _check_consistent(run_dir) == 3
    # 5. After training, before the report: the backup is kept, training is finished.
    out = stopped(*resume, setup=lambda mp: mp.setattr(dlrecipes.Run, "evaluate", _interrupt))
    assert "Epoch 4/4" in out and "Epoch 3/4" not in out
    assert backups.finished(run_dir, "train")
    # 6. While writing the report: resuming trains nothing and writes the report.
    out = stopped(*resume, setup=lambda mp: mp.setattr(reports, "plot_confusion", _interrupt))
    assert "Epoch" not in out
    # 7. Resumed to the end: the report is written, metrics.json last, the backup deleted.
    assert main(*resume) == 0
    out = capsys.readouterr().out
    assert "Epoch" not in out and out.strip().splitlines()[-1] == str(run_dir)
    assert _epochs(run_dir) == [0, 1, 2, 3]
    assert not (run_dir / "backup").exists()
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["epochs_run"] == 4
    config = IMAGE.Config.load(run_dir / "config.json")
    best = metrics["best_val_accuracy"]
    assert _val_accuracy(run_dir / "model.keras", config) == pytest.approx(best, abs=1e-6)
    for name in ("report.md", "curves.png", "confusion.png"):
        assert (run_dir / name).stat().st_size > 0
    # 8. Stopped after metrics.json, before the backup was deleted: a resume deletes it and
    # says the run is finished; a finished run is never trained over.
    (run_dir / "backup" / "train").mkdir(parents=True)
    assert main(*resume) == 2
    assert "finished already" in capsys.readouterr().err
    assert not (run_dir / "backup").exists()
    assert json.loads((run_dir / "metrics.json").read_text()) == metrics


@pytest.mark.slow
def test_a_folds_run_stopped_before_a_fold_wrote_its_config_resumes(digits, tmp_path, capsys):
    run_dir = tmp_path / "cv"
    argv = ["train", "--tiny", "--dataset", f"folder:{digits}", "--image-size", "28,28"]
    argv += ["--epochs", "1", "--folds", "2", "--run-dir", run_dir]
    claim = runs.claim_run_dir

    def stopped_in_fold_2(path, *args):
        if path is not None and path.name == "fold-2":
            path.mkdir()  # made, but stopped before its config.json was written
            raise KeyboardInterrupt
        return claim(path, *args)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(runs, "claim_run_dir", stopped_in_fold_2)
        assert main(*argv) == 130
    assert capsys.readouterr().err.rstrip().endswith(f"--run-dir {run_dir} --resume --folds 2")
    assert (run_dir / "fold-1" / "metrics.json").exists()
    assert not list((run_dir / "fold-2").iterdir())
    fold_1 = (run_dir / "fold-1" / "metrics.json").read_bytes()

    assert main(*argv, "--resume") == 0
    out = capsys.readouterr().out
    assert out.count("Training image_classification") == 1  # fold 2 only
    assert "== fold 2 of 2" in out and "== fold 1 of 2" not in out
    assert (run_dir / "fold-1" / "metrics.json").read_bytes() == fold_1
    summary = json.loads((run_dir / "folds.json").read_text())
    assert summary["folds"] == 2 and len(summary["per_fold"]) == 2
    report = (run_dir / "report.md").read_text()
    assert "mean ± std" in report and f"{summary['val_accuracy_mean']:.4f}" in report


def test_run_directories_are_never_shared(tmp_path, monkeypatch):
    made: list[Path] = []
    threads = [
        threading.Thread(target=lambda: made.append(runtime.new_run_dir(tmp_path, "r", "same")))
        for _ in range(8)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(p.name for p in made) == sorted(["same"] + [f"same-{i}" for i in range(2, 9)])
    # Two runs given the same --run-dir: the second to write its config.json is refused, on a
    # filesystem with hard links and on one without (gcsfuse, s3fs, some SMB mounts).
    config = IMAGE.Config()
    for name, link in (("run", os.link), ("nolinks", None)):
        if link is None:

            def no_links(*args):
                raise PermissionError(1, "Operation not permitted")

            monkeypatch.setattr(os, "link", no_links)
        runs.claim_run_dir(tmp_path / name, "image_classification", config)
        with pytest.raises(RunDirError, match="taken by another run"):
            runs.claim_run_dir(tmp_path / name, "image_classification", config)
        saved = json.loads((tmp_path / name / "config.json").read_text())
        assert saved["recipe"] == "image_classification" and saved["epochs"] == config.epochs
        assert [p.name for p in (tmp_path / name).iterdir()] == ["config.json"]


def test_metrics_json_is_never_half_written(tmp_path, monkeypatch):
    path = tmp_path / "metrics.json"

    def stopped_halfway(self, text, *args, **kwargs):
        with open(self, "w") as f:
            f.write(text[: len(text) // 2])
        raise KeyboardInterrupt

    monkeypatch.setattr(Path, "write_text", stopped_halfway)
    with pytest.raises(KeyboardInterrupt):
        reports.write_json(path, {"accuracy": 0.9, "per_class": {"a": 1}})
    assert not path.exists()


class _Refuse(keras.callbacks.Callback):
    """A refusal found once training started (bad data discovered late)."""

    def on_epoch_begin(self, epoch, logs=None):
        if epoch == 1:
            raise DatasetError("an example of data found unusable late; fix it and start again.")


def test_a_refusal_inside_the_run_leaves_no_directory_unless_an_epoch_was_kept(
    digits, tmp_path, capsys, monkeypatch
):
    argv = ["train", "--tiny", "--dataset", f"folder:{digits}", "--image-size", "28,28"]
    argv += ["--epochs", "3"]
    _with_kill(monkeypatch, _Refuse())
    # Refused before any epoch was backed up (the first epoch is not run here): nothing left.
    monkeypatch.setattr(IMAGE, "fit", lambda *a: _Refuse().on_epoch_begin(1))
    assert main(*argv, "--run-dir", tmp_path / "early") == 2
    err = capsys.readouterr().err
    assert "found unusable late" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "early").exists()
    monkeypatch.undo()
    # Refused after an epoch was backed up: the run is kept, and the message says where.
    _with_kill(monkeypatch, _Refuse())
    assert main(*argv, "--run-dir", tmp_path / "late") == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1
    assert f"Its history so far is in {tmp_path / 'late' / 'history.csv'}" in err
    assert _epochs(tmp_path / "late") == [0]
