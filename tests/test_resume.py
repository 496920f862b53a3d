"""Run directories: never shared, and a run stopped at any moment resumes with nothing lost.

The kills here are Ctrl-C raised in-process at chosen points (mid-epoch, between epochs, between
the epoch's history row and its backup, between the backup and the best model's move into place,
after training, while writing the report), each followed by `--resume` on the command line.
`tests/test_callbacks.py` kills a real process with SIGKILL; `tests/test_cli.py` sends SIGINT.
"""

from __future__ import annotations

import csv
import json
import threading
from pathlib import Path

import keras
import numpy as np
import pytest

from dlrecipes import callbacks as cb
from dlrecipes import reports, runtime, training
from dlrecipes.errors import RunDirError
from tests.conftest import digit_folder, recipe_main, recipe_module

IMAGE = recipe_main("image_classification")


@pytest.fixture(scope="module")
def digits(tmp_path_factory) -> Path:
    return digit_folder(tmp_path_factory.mktemp("digits") / "d")


def _epochs(run_dir: Path) -> list[int]:
    with (run_dir / "history.csv").open() as f:
        return [int(row["epoch"]) for row in csv.DictReader(f)]


def _val_accuracy(model_path: Path, config) -> float:
    splits = recipe_module("image_classification").load_data(config)
    model = training.load_model(model_path)
    model.compile(loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model.evaluate(splits.validation, verbose=0, return_dict=True)["accuracy"]


def _check_consistent(run_dir: Path) -> int:
    """What a resumed run will find: the history of every backed-up epoch, no more, no gap, and
    model.keras scoring the best validation accuracy in it. Returns the epochs done."""
    done = cb.recover(run_dir)
    rows = [r for r in cb.read_history(run_dir / "history.csv") if int(r["epoch"]) < done]
    assert [int(r["epoch"]) for r in rows] == list(range(done))
    if done:
        config = recipe_module("image_classification").Config.load(run_dir / "config.json")
        best = max(float(r["val_accuracy"]) for r in rows)
        assert _val_accuracy(run_dir / "model.keras", config) == pytest.approx(best, abs=1e-6)
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
    """Adds `kill` after the standard callbacks of the next run."""
    standard = cb.standard

    def with_kill(run_dir, config):
        callbacks, guard = standard(run_dir, config)
        return [*callbacks, kill], guard

    monkeypatch.setattr(cb, "standard", with_kill)


def _kill_at_backup(monkeypatch, epoch: int, after: bool) -> None:
    """Ctrl-C just before (or just after) the backup of `epoch` is written."""
    backup = keras.callbacks.BackupAndRestore.on_epoch_end

    def on_epoch_end(self, e, logs=None):
        if e == epoch and not after:
            raise KeyboardInterrupt
        backup(self, e, logs)
        if e == epoch:
            raise KeyboardInterrupt

    monkeypatch.setattr(keras.callbacks.BackupAndRestore, "on_epoch_end", on_epoch_end)


def _interrupt(*args, **kwargs):
    raise KeyboardInterrupt


@pytest.mark.slow
def test_a_run_killed_at_every_point_resumes_with_nothing_lost(digits, tmp_path, capsys):
    run_dir = tmp_path / "run"
    argv = ["train", "--tiny", "--dataset", f"folder:{digits}", "--image-size", "28,28"]
    argv += ["--epochs", "4", "--batch-size", "16", "--run-dir", run_dir]
    resume = [*argv, "--resume"]

    def stopped(*args, setup) -> str:
        with pytest.MonkeyPatch.context() as mp:
            setup(mp)
            assert IMAGE(*args) == 130
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
    stopped(*resume, setup=lambda mp: _kill_at_backup(mp, epoch=1, after=False))
    assert _epochs(run_dir) == [0, 1] and cb.epochs_done(run_dir / "backup") == 1
    assert _check_consistent(run_dir) == 1
    # 4. Epoch 2 runs again (its stale row is dropped); killed after epoch 3's backup, before
    # its best model (if it improved) was moved into model.keras.
    out = stopped(*resume, setup=lambda mp: _kill_at_backup(mp, epoch=2, after=True))
    assert "Epoch 2/4" in out and "Epoch 1/4" not in out
    assert _epochs(run_dir) == [0, 1, 2]
    assert _check_consistent(run_dir) == 3
    # 5. After training, before the report: the backup is kept, training is finished.
    out = stopped(*resume, setup=lambda mp: mp.setattr(training, "finish", _interrupt))
    assert "Epoch 4/4" in out and "Epoch 3/4" not in out
    assert (run_dir / "backup").is_dir() and cb.training_finished(run_dir, 4)
    # 6. While writing the report: resuming only finishes the report.
    out = stopped(*resume, setup=lambda mp: mp.setattr(reports, "plot_confusion", _interrupt))
    assert "Epoch" not in out and "writing its report" in out
    # 7. Resumed to the end: the report is written, metrics.json last, the backup deleted.
    assert IMAGE(*resume) == 0
    out = capsys.readouterr().out
    assert "Epoch" not in out and out.strip().splitlines()[-1] == str(run_dir)
    assert _epochs(run_dir) == [0, 1, 2, 3]
    assert not (run_dir / "backup").exists()
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["epochs_run"] == 4
    config = recipe_module("image_classification").Config.load(run_dir / "config.json")
    best = metrics["best_val_accuracy"]
    assert _val_accuracy(run_dir / "model.keras", config) == pytest.approx(best, abs=1e-6)
    for name in ("report.md", "curves.png", "confusion.png"):
        assert (run_dir / name).stat().st_size > 0
    # 8. Killed after metrics.json, before the backup was deleted: resuming deletes it.
    (run_dir / "backup").mkdir()
    assert IMAGE(*resume) == 0
    assert not (run_dir / "backup").exists()
    assert json.loads((run_dir / "metrics.json").read_text()) == metrics
    # 9. A finished run is not trained over.
    assert IMAGE(*resume) == 2
    assert "finished already" in capsys.readouterr().err


@pytest.mark.slow
def test_a_folds_run_killed_before_a_fold_wrote_its_config_resumes(digits, tmp_path, capsys):
    run_dir = tmp_path / "cv"
    argv = ["train", "--tiny", "--dataset", f"folder:{digits}", "--image-size", "28,28"]
    argv += ["--epochs", "1", "--folds", "2", "--run-dir", run_dir]
    claim = training.claim_run_dir

    def killed_in_fold_2(path, *args):
        if path.name == "fold-2":
            path.mkdir()  # made, but killed before its config.json was written
            raise KeyboardInterrupt
        return claim(path, *args)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(training, "claim_run_dir", killed_in_fold_2)
        assert IMAGE(*argv) == 130
    assert capsys.readouterr().err.rstrip().endswith(f"--run-dir {run_dir} --resume --folds 2")
    assert (run_dir / "fold-1" / "metrics.json").exists()
    assert not list((run_dir / "fold-2").iterdir())
    fold_1 = (run_dir / "fold-1" / "metrics.json").read_bytes()

    assert IMAGE(*argv, "--resume") == 0
    out = capsys.readouterr().out
    assert out.count("Training image_classification") == 1  # fold 2 only
    assert (run_dir / "fold-1" / "metrics.json").read_bytes() == fold_1
    assert json.loads((run_dir / "folds.json").read_text())["folds"] == 2


def test_run_directories_are_never_shared(tmp_path):
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
    # Two runs given the same --run-dir: the second to write its config.json is refused.
    config = recipe_module("image_classification").Config()
    training.claim_run_dir(tmp_path / "run", "image_classification", config)
    with pytest.raises(RunDirError, match="taken by another run"):
        training.claim_run_dir(tmp_path / "run", "image_classification", config)
    assert json.loads((tmp_path / "run" / "config.json").read_text())["recipe"] == (
        "image_classification"
    )
    assert [p.name for p in (tmp_path / "run").iterdir()] == ["config.json"]


def test_metrics_json_is_never_half_written(tmp_path, monkeypatch):
    path = tmp_path / "metrics.json"

    def killed_halfway(self, text, *args, **kwargs):
        with open(self, "w") as f:
            f.write(text[: len(text) // 2])
        raise KeyboardInterrupt

    monkeypatch.setattr(Path, "write_text", killed_halfway)
    with pytest.raises(KeyboardInterrupt):
        reports.write_json(path, {"accuracy": 0.9, "per_class": {"a": 1}})
    assert not path.exists()


def test_recover_moves_the_backed_up_best_model_into_place_and_drops_later_files(tmp_path):
    backup = tmp_path / "backup"
    backup.mkdir()
    (backup / cb.KERAS_METADATA).write_text('{"epoch": 2, "batch": 0}')
    (tmp_path / "model.keras").write_bytes(b"epoch 1")
    (backup / "best-2.keras").write_bytes(b"epoch 2")  # killed after the backup of epoch 2
    (backup / "best-3.keras").write_bytes(b"epoch 3")  # killed before the backup of epoch 3
    (backup / "finished-3").touch()
    assert cb.recover(tmp_path) == 2
    assert (tmp_path / "model.keras").read_bytes() == b"epoch 2"
    assert sorted(p.name for p in backup.iterdir()) == [cb.KERAS_METADATA]
    assert not cb.training_finished(tmp_path, epochs=5)
    (backup / "finished-2").touch()
    assert cb.training_finished(tmp_path, epochs=5)


def _toy_fit(run_dir: Path, extra: list, epochs: int = 5, lr: float = 0.01) -> keras.Model:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 4)).astype("float32")
    y = (x[:, 0] > 0).astype("int64")
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2, activation="softmax")])
    model.compile(
        optimizer=keras.optimizers.SGD(lr),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    callbacks = [cb.HistoryCSV(run_dir / "history.csv"), *extra, cb.RunCheckpoints(run_dir)]
    model.fit(x, y, validation_split=0.25, epochs=epochs, callbacks=callbacks, verbose=0)
    return model


def test_a_backup_records_that_early_stopping_ended_training(tmp_path):
    stop = keras.callbacks.EarlyStopping(monitor="val_accuracy", baseline=1.01, patience=2)
    _toy_fit(tmp_path, [stop], epochs=10)
    assert _epochs(tmp_path) == [0, 1] and cb.epochs_done(tmp_path / "backup") == 2
    assert cb.training_finished(tmp_path, epochs=10)  # a resume only writes the report


def test_a_diverged_epoch_is_not_backed_up(tmp_path):
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.SGD(1e12), loss="mse")
    guard = cb.NanGuard()
    callbacks = [cb.HistoryCSV(tmp_path / "history.csv"), guard, cb.RunCheckpoints(tmp_path)]
    x, y = np.ones((40, 3), np.float32), np.ones((40, 1), np.float32)
    model.fit(x, y, batch_size=4, epochs=3, callbacks=callbacks, verbose=0)
    assert guard.message is not None and _epochs(tmp_path) == [0]
    assert cb.epochs_done(tmp_path / "backup") == 0  # a resumed run starts from finite weights
