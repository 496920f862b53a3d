"""Callbacks: the NaN guard, history across resumes, one line an epoch; and a clear error for a
model that cannot be read. (Backups: tests/test_backups.py; whole runs: tests/test_lifecycle.py.)"""

from __future__ import annotations

import csv

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


def test_epoch_lines_count_epochs_across_fits(capsys):
    model, x, y = _digits_model()
    model.compile(
        optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    )
    model.fit(x, y, epochs=1, callbacks=[cb.EpochLine(3)], verbose=0)
    model.fit(x, y, initial_epoch=1, epochs=3, callbacks=[cb.EpochLine(3)], verbose=0)
    lines = capsys.readouterr().out.splitlines()
    assert [line.split(" - ")[0] for line in lines] == ["Epoch 1/3", "Epoch 2/3", "Epoch 3/3"]


@pytest.mark.parametrize("damage", ["missing", "corrupt"])
def test_unreadable_model_gets_a_clear_error(tmp_path, capsys, damage):
    path = tmp_path / "model.keras"
    if damage == "corrupt":
        path.write_bytes(b"PK\x03\x04 not really a zip")
    assert recipe_module("image_classification").main(["evaluate", "--model", str(path)]) == 2
    err = capsys.readouterr().err
    assert str(path) in err and len(err.strip().splitlines()) == 1
    assert ("No model at" if damage == "missing" else "corrupt") in err
