"""Callbacks: the NaN guard, history across resumes, and resuming a killed run."""

from __future__ import annotations

import csv
import dataclasses
import re
import signal
import subprocess
import sys
import time

import keras
import numpy as np
import pytest

from dlrecipes import callbacks as cb
from tests.conftest import ROOT, recipe_main, recipe_module

RECIPE = ROOT / "recipes" / "image_classification" / "recipe.py"


def _history_epochs(path) -> list[int]:
    with path.open() as f:
        return [int(row["epoch"]) for row in csv.DictReader(f)]


def test_nan_guard_names_epoch_and_batch():
    x = np.ones((40, 3), np.float32)
    y = np.ones((40, 1), np.float32)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.SGD(1e12), loss="mse")
    guard = cb.NanGuard()
    model.fit(x, y, batch_size=4, epochs=3, callbacks=[guard], verbose=0)
    assert guard.message is not None
    assert "epoch 1, batch" in guard.message and "--learning-rate" in guard.message
    assert len(model.history.epoch) == 1  # stopped in the first epoch


def test_history_drops_rows_of_epochs_that_will_run_again(tmp_path):
    path = tmp_path / "history.csv"
    path.write_text("epoch,loss\n0,1.0\n1,0.5\n2,0.4\n")
    cb.trim_history(path, keep_before=2)
    assert _history_epochs(path) == [0, 1]
    cb.trim_history(path, keep_before=5)
    assert _history_epochs(path) == [0, 1]


def test_killed_run_resumes_from_its_backup_with_nothing_lost(tmp_path, capsys):
    run_dir = tmp_path / "run"
    args = [RECIPE, "train", "--tiny", "--epochs", "5", "--run-dir", run_dir]
    proc = subprocess.Popen(
        [sys.executable, *map(str, args)],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    history = run_dir / "history.csv"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and proc.poll() is None:
        if history.exists() and len(_history_epochs(history)) >= 2:
            break
        time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done = _history_epochs(history)
    assert 2 <= len(done) < 5, f"kill came too late or too early: {done}"
    assert (run_dir / "backup").is_dir()

    # The rest runs in this process (cheaper than starting TensorFlow three more times).
    # Without --resume the run directory is refused, and nothing in it is touched.
    main = recipe_main("image_classification")
    before = history.read_bytes()
    assert main(*args[1:]) == 2
    assert "--resume" in capsys.readouterr().err
    assert history.read_bytes() == before

    assert main(*args[1:], "--resume") == 0
    out = capsys.readouterr().out
    assert "Epoch 1/5" not in out
    assert _history_epochs(history) == [0, 1, 2, 3, 4]
    assert out.strip().splitlines()[-1] == str(run_dir)
    assert not (run_dir / "backup").exists()  # deleted once the report was written
    assert (run_dir / "metrics.json").exists()

    # A finished run is not trained over.
    model_bytes = (run_dir / "model.keras").read_bytes()
    assert main(*args[1:], "--resume") == 2
    assert "finished already" in capsys.readouterr().err
    assert (run_dir / "model.keras").read_bytes() == model_bytes


@pytest.mark.parametrize("damage", ["missing", "corrupt"])
def test_unreadable_model_gets_a_clear_error(tmp_path, capsys, damage):
    path = tmp_path / "model.keras"
    if damage == "corrupt":
        path.write_bytes(b"PK\x03\x04 not really a zip")
    assert recipe_main("image_classification")("evaluate", "--model", path) == 2
    err = capsys.readouterr().err
    assert str(path) in err
    assert ("No model at" if damage == "missing" else "corrupt") in err


def test_ema_checkpoint_holds_the_averaged_weights_and_the_backup_the_raw(tmp_path):
    """With `ema` near 1 the average barely leaves the first step's weights while training moves
    on: the best checkpoint must hold the average, and the backup the raw weights a resumed run
    goes on from."""
    from dlrecipes import training

    module = recipe_module("image_classification")
    config = module.Config(ema=0.999, learning_rate=0.02).tiny()
    config = dataclasses.replace(config, epochs=1)
    splits = module.load_data(config)
    model = training.compile_model(
        module.build_model(config, splits.info), config, training.count_batches(splits.train)
    )
    first: list[np.ndarray] = []  # after the first step, where the average starts
    raw: list[np.ndarray] = []  # after the last step

    class KeepRaw(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            raw[:] = self.model.get_weights()
            if batch == 0:
                first[:] = raw

    callbacks, _ = cb.standard(tmp_path, config)
    assert [type(c).__name__ for c in callbacks[1:5]] == [
        "SwapEMAWeights",
        "EpochSeconds",
        "HistoryCSV",
        "RunCheckpoints",
    ]
    model.fit(
        splits.train.take(12),
        validation_data=splits.validation.take(2),
        epochs=1,
        callbacks=[*callbacks, KeepRaw()],
        verbose=0,
    )
    saved = training.load_model(tmp_path / "model.keras").get_weights()
    kernel = next(i for i, w in enumerate(first) if w.ndim == 4)  # the first conv kernel
    moved = np.abs(raw[kernel] - first[kernel]).mean()
    assert np.abs(saved[kernel] - first[kernel]).mean() < moved / 4
    # The backup outlives fit (the report is not written yet) and holds the raw weights.
    restored = training.compile_model(module.build_model(config, splits.info), config, 12)
    restored.optimizer.build(restored.trainable_variables)
    restored.load_weights(tmp_path / "backup" / "latest.weights.h5")
    # (Keras swaps the average in and out by adding and subtracting: equal up to rounding.)
    np.testing.assert_allclose(restored.get_weights()[kernel], raw[kernel], rtol=0, atol=1e-6)


def test_ctrl_c_during_a_save_is_held_until_the_save_is_done(tmp_path):
    # Keras' saving has bare `except:` clauses that would swallow the KeyboardInterrupt.
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    handler = signal.getsignal(signal.SIGINT)
    with pytest.raises(KeyboardInterrupt), cb.ctrl_c_after():
        signal.raise_signal(signal.SIGINT)
        model.save(tmp_path / "model.keras")  # still runs, and runs to its end
    assert keras.saving.load_model(tmp_path / "model.keras", safe_mode=True).count_params() == 8
    assert signal.getsignal(signal.SIGINT) is handler


def _digits_model() -> tuple[keras.Model, np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    x, y = load_digits(return_X_y=True)
    x, y = x[:320].astype("float32") / 16, y[:320]
    model = keras.Sequential([keras.Input((64,)), keras.layers.Dense(10, activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model, x, y


def test_epoch_progress_in_a_log_is_one_line_an_epoch_numbered_across_fits(monkeypatch, capsys):
    """Two fits, the second going on with initial_epoch as training in phases does: one plain
    line an epoch, numbered 1-5 out of the run's 5, and nothing else."""
    monkeypatch.setattr(cb.progress, "terminal", lambda: None)
    model, x, y = _digits_model()
    progress = cb.EpochProgress(epochs=5)
    fit = {"batch_size": 32, "validation_split": 0.25, "verbose": 0, "callbacks": [progress]}
    model.fit(x, y, epochs=2, **fit)
    model.fit(x, y, initial_epoch=2, epochs=5, **fit)
    out, err = capsys.readouterr()
    lines = out.splitlines()
    assert [line.split(" - ")[0] for line in lines] == [f"Epoch {n}/5" for n in range(1, 6)]
    assert all(" - loss " in line and " - val_accuracy " in line for line in lines)
    assert err == "" and "\r" not in out


def test_epoch_progress_on_a_terminal_counts_the_steps_of_each_epoch(monkeypatch, capsys):
    monkeypatch.setattr(cb.progress, "terminal", lambda: sys.stderr)
    model, x, y = _digits_model()
    model.fit(
        x,
        y,
        batch_size=32,
        epochs=2,
        validation_split=0.2,
        verbose=0,
        callbacks=[cb.EpochProgress()],
    )
    out, err = capsys.readouterr()
    assert [line.split(" - ")[0] for line in out.splitlines()] == ["Epoch 1/2", "Epoch 2/2"]
    # tqdm's bar: the epoch, steps done of the epoch's 8, the rate, the loss so far; then the
    # validation at the epoch's end.
    assert re.search(r"Epoch 2/2: .* \d/8 \[.*(step/s|s/step), loss \d\.\d{4}\]", err), err
    assert "Epoch 2/2 validating:" in err


def test_history_records_each_epochs_seconds_and_keeps_an_older_files_columns(tmp_path):
    model, x, y = _digits_model()
    history = tmp_path / "history.csv"
    fit = {"batch_size": 32, "validation_split": 0.25, "verbose": 0}
    callbacks = [cb.EpochSeconds(), cb.HistoryCSV(history)]
    model.fit(x, y, epochs=2, callbacks=callbacks, **fit)
    rows = cb.read_history(history)
    assert [float(r[cb.SECONDS]) > 0 for r in rows] == [True, True]
    # A run started before the column existed, resumed now: its rows stay under its header.
    older = "epoch,accuracy,loss,val_accuracy,val_loss\n0,0.5,1.2,0.6,1.1\n"
    history.write_text(older)
    model.fit(
        x,
        y,
        initial_epoch=1,
        epochs=2,
        callbacks=[cb.EpochSeconds(), cb.HistoryCSV(history)],
        **fit,
    )
    rows = cb.read_history(history)
    assert list(rows[1]) == ["epoch", "accuracy", "loss", "val_accuracy", "val_loss"]
    assert rows[1]["epoch"] == "1" and 0 < float(rows[1]["accuracy"]) <= 1
