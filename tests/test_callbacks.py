"""Callbacks: the NaN guard, history across resumes, one line an epoch; and a clear error for a
model that cannot be read. (Backups: tests/test_backups.py; whole runs: tests/test_lifecycle.py.)"""

from __future__ import annotations

import csv
import re
import sys

import keras
import numpy as np
import pytest
from sklearn.datasets import load_digits

from dlrecipes import callbacks as cb
from dlrecipes.errors import TrainingDiverged
from tests.conftest import recipe_module


def _history_epochs(path) -> list[int]:
    with path.open() as f:
        return [int(row["epoch"]) for row in csv.DictReader(f)]


def _compiled_digits_model() -> tuple[keras.Model, np.ndarray, np.ndarray]:
    x, y = load_digits(return_X_y=True)
    x, y = x[:320].astype("float32") / 16, y[:320]
    model = keras.Sequential([keras.Input((64,)), keras.layers.Dense(10, activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model, x, y


def _digits_model() -> tuple[keras.Model, np.ndarray, np.ndarray]:
    x, y = load_digits(return_X_y=True)
    model = keras.Sequential([keras.Input((64,)), keras.layers.Dense(10)])
    return model, (x / 16).astype("float32")[:400], y[:400]


def test_nan_guard_stops_at_the_first_non_finite_loss_and_names_epoch_and_batch():
    _, x, y = _digits_model()
    model = keras.Sequential([keras.Input((64,)), keras.layers.Dense(1)])  # the digit's value
    model.compile(optimizer=keras.optimizers.SGD(1e12), loss="mse")
    guard = cb.NanGuard()
    with pytest.raises(TrainingDiverged) as raised:
        model.fit(x, y.astype("float32"), batch_size=20, epochs=3, callbacks=[guard], verbose=0)
    assert "epoch 1, batch" in str(raised.value) and "--learning-rate" in str(raised.value)
    assert len(model.history.epoch) == 1  # stopped in the first epoch


def test_nan_guard_lets_a_finite_run_end_normally():
    model, x, y = _digits_model()
    model.compile(
        optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    )
    guard = cb.NanGuard()
    model.fit(x, y, batch_size=50, epochs=2, callbacks=[guard], verbose=0)
    assert guard.message is None and len(model.history.epoch) == 2


def test_history_drops_rows_of_epochs_that_will_run_again(tmp_path):
    path = tmp_path / "history.csv"
    path.write_text("epoch,loss\n0,1.0\n1,0.5\n2,0.4\n")
    cb.trim_history(path, keep_before=2)
    assert _history_epochs(path) == [0, 1]
    cb.trim_history(path, keep_before=5)
    assert _history_epochs(path) == [0, 1]


@pytest.mark.parametrize("damage", ["missing", "corrupt"])
def test_unreadable_model_gets_a_clear_error(tmp_path, capsys, damage):
    path = tmp_path / "model.keras"
    if damage == "corrupt":
        path.write_bytes(b"PK\x03\x04 not really a zip")
    assert recipe_module("image_classification").main(["evaluate", "--model", str(path)]) == 2
    err = capsys.readouterr().err
    assert str(path) in err and len(err.strip().splitlines()) == 1
    assert ("No model at" if damage == "missing" else "corrupt") in err


def test_epoch_progress_in_a_log_is_one_line_an_epoch_numbered_across_fits(monkeypatch, capsys):
    """Two fits, the second going on with initial_epoch as training in phases does: one plain
    line an epoch, numbered 1-5 out of the run's 5, and nothing else."""
    monkeypatch.setattr(cb.progress, "terminal", lambda: None)
    model, x, y = _compiled_digits_model()
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
    model, x, y = _compiled_digits_model()
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
    model, x, y = _compiled_digits_model()
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
