"""`RunBackup`: whole backups, restored where they were taken, one per fit; and the signals held
while one is written. The fits here train a small classifier on scikit-learn's real 8x8 digits."""

from __future__ import annotations

import csv
import json
import signal
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf
from sklearn.datasets import load_digits

from dlrecipes import backups
from dlrecipes import callbacks as cb
from dlrecipes.errors import CheckpointError, TrainingDiverged

BATCH = 64


@pytest.fixture(scope="module")
def digits() -> tuple[tf.data.Dataset, tf.data.Dataset]:
    x, y = load_digits(return_X_y=True)
    x = (x / 16.0).astype("float32")
    train = tf.data.Dataset.from_tensor_slices((x[:1024], y[:1024])).batch(BATCH)  # 16 steps
    validation = tf.data.Dataset.from_tensor_slices((x[1024:1280], y[1024:1280])).batch(BATCH)
    return train, validation


def _model(seed: int = 0, lr: float = 0.05, ema: float = 0.0) -> keras.Model:
    keras.utils.set_random_seed(seed)
    model = keras.Sequential(
        [keras.Input((64,)), keras.layers.Dense(16, activation="relu"), keras.layers.Dense(10)]
    )
    average = {"use_ema": True, "ema_momentum": ema} if ema else {}
    model.compile(
        optimizer=keras.optimizers.Adam(lr, **average),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    return model


class Killed(Exception):
    """Stands for the process being killed."""


class KillAt(keras.callbacks.Callback):
    """Kills the fit after step `step` (0-based, counted over the fit), remembering the weights
    and optimizer step it had then."""

    def __init__(self, step: int) -> None:
        super().__init__()
        self.step = step

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        if int(self.model.optimizer.iterations.numpy()) == self.step + 1:
            self.weights = self.model.get_weights()
            raise Killed


class Seen(keras.callbacks.Callback):
    """The epochs a fit ran, and the weights and optimizer step it started with."""

    def __init__(self) -> None:
        super().__init__()
        self.epochs: list[int] = []

    def on_train_begin(self, logs: dict | None = None) -> None:
        self.weights = self.model.get_weights()

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        if not self.epochs:
            self.step = int(self.model.optimizer.iterations.numpy())
        self.epochs.append(epoch)


def _fit(
    model, data, run_dir: Path, extra=(), *, epochs=4, fit="train", steps=0, before=(), **kwargs
):
    """Fits with a backup, `before` callbacks ahead of it (early stopping) and `extra` after."""
    train, validation = data
    backup = backups.RunBackup(run_dir, fit, steps=steps, skip=kwargs.pop("skip", None))
    stream = backups.skipping_stream(train, backup._skip) if steps else train
    return model.fit(
        stream,
        steps_per_epoch=16,
        validation_data=validation,
        epochs=epochs,
        callbacks=[*before, cb.HistoryCSV(run_dir / "history.csv"), backup, *extra],
        verbose=0,
        **kwargs,
    )


def _history(run_dir: Path) -> list[int]:
    with (run_dir / "history.csv").open() as f:
        return [int(r["epoch"]) for r in csv.DictReader(f)]


def test_a_killed_fit_resumes_with_the_weights_optimizer_and_epoch_of_its_backup(digits, tmp_path):
    kill = KillAt(step=16 * 2 + 5)  # in the third epoch: two are backed up
    with pytest.raises(Killed):
        _fit(_model(), digits, tmp_path, [kill])
    state = backups.read_state(backups.latest(tmp_path / "backup" / "train"))
    assert state == {"epoch": 2, "steps_done": 0, "finished": False}
    seen = Seen()
    _fit(_model(seed=1), digits, tmp_path, [seen])  # another start: the backup decides
    assert seen.epochs == [2, 3] and seen.step == 32
    assert _history(tmp_path) == [0, 1, 2, 3]  # the killed epoch's row was never written
    assert backups.finished(tmp_path, "train")
    # backup/best.keras holds the best epoch by validation accuracy.
    with (tmp_path / "history.csv").open() as f:
        best = max(float(r["val_accuracy"]) for r in csv.DictReader(f))
    model = keras.saving.load_model(backups.best_path(tmp_path), safe_mode=True)
    assert model.evaluate(digits[1], verbose=0, return_dict=True)["accuracy"] == pytest.approx(
        best, abs=1e-6
    )


def test_a_finished_fit_trains_no_further_even_when_it_stopped_early(digits, tmp_path):
    stop = keras.callbacks.EarlyStopping(monitor="val_accuracy", baseline=1.01, patience=2)
    history = _fit(_model(), digits, tmp_path, before=[stop], epochs=10)
    ran = history.epoch
    assert len(ran) < 10 and backups.finished(tmp_path, "train")
    seen = Seen()
    _fit(_model(seed=1), digits, tmp_path, [seen], epochs=10)
    assert seen.epochs == [] and _history(tmp_path) == ran


def test_a_step_backup_resumes_at_the_next_step_with_no_step_run_twice(digits, tmp_path):
    kill = KillAt(step=16 + 9)  # 10 steps into the second epoch; backups every 4 steps
    with pytest.raises(Killed):
        _fit(_model(), digits, tmp_path, [kill], epochs=3, steps=4)
    state = backups.read_state(backups.latest(tmp_path / "backup" / "train"))
    assert state == {"epoch": 1, "steps_done": 8, "finished": False}
    model, seen = _model(seed=1), Seen()
    _fit(model, digits, tmp_path, [seen], epochs=3, steps=4)
    # 16 + 8 steps were backed up; the resumed fit trains the other 48 - 24, no more.
    assert seen.epochs == [1, 2] and seen.step == 24
    assert int(model.optimizer.iterations.numpy()) == 48
    assert _history(tmp_path) == [0, 1, 2]


def test_each_fit_of_a_run_has_its_own_backup_and_a_finished_one_is_not_repeated(digits, tmp_path):
    _fit(_model(), digits, tmp_path, epochs=2, fit="head")
    kill = KillAt(step=16 + 3)
    with pytest.raises(Killed):
        _fit(_model(), digits, tmp_path, [kill], epochs=5, fit="tune", initial_epoch=2)
    assert backups.finished(tmp_path, "head") and not backups.finished(tmp_path, "tune")
    head, tune = Seen(), Seen()
    model = _model(seed=1)
    _fit(model, digits, tmp_path, [head], epochs=2, fit="head")
    _fit(model, digits, tmp_path, [tune], epochs=5, fit="tune", initial_epoch=2)
    assert head.epochs == [] and tune.epochs == [3, 4]
    assert _history(tmp_path) == [0, 1, 2, 3, 4]


def test_a_fit_without_a_backup_starts_where_fit_is_told(digits, tmp_path):
    # Keras never clears the epoch a restored fit starts at: a later fit must not inherit it.
    model = _model()
    _fit(model, digits, tmp_path, epochs=3, fit="first")
    seen = Seen()
    _fit(model, digits, tmp_path, [seen], epochs=5, fit="second", initial_epoch=3)
    assert seen.epochs == [3, 4]


def test_a_backup_killed_while_being_written_is_ignored_and_the_best_model_settled(
    digits, tmp_path, monkeypatch
):
    with pytest.raises(Killed):
        _fit(_model(), digits, tmp_path, [KillAt(step=16 + 2)], epochs=3)  # epoch 1 backed up
    fit_dir = tmp_path / "backup" / "train"
    model_before = backups.best_path(tmp_path).read_bytes()
    # Killed half way through the next backup: a partial folder, which is never read.
    save_weights = keras.Model.save_weights

    def killed(self, path, *args, **kwargs):
        save_weights(self, path, *args, **kwargs)
        raise Killed

    with monkeypatch.context() as mp:
        mp.setattr(keras.Model, "save_weights", killed)
        with pytest.raises(Killed):
            _fit(_model(), digits, tmp_path, epochs=3)
    assert [p.name for p in fit_dir.iterdir() if p.name.startswith(".partial")]
    assert backups.settle(tmp_path, fit_dir)["epoch"] == 1
    assert [p.name for p in fit_dir.iterdir()] == ["epoch-0001-step-000000"]
    assert backups.best_path(tmp_path).read_bytes() == model_before
    # Killed after a backup is in place but before its best model moved to backup/best.keras.
    newest = fit_dir / "epoch-0002-step-000000"
    newest.mkdir()
    (newest / backups.STATE).write_text(json.dumps({"epoch": 2, "steps_done": 0}))
    (newest / backups.BEST).write_bytes(b"epoch 2's best")
    assert backups.settle(tmp_path, fit_dir)["epoch"] == 2
    assert backups.best_path(tmp_path).read_bytes() == b"epoch 2's best"
    assert [p.name for p in fit_dir.iterdir()] == ["epoch-0002-step-000000"]


def test_an_unreadable_backup_is_refused_in_one_line_naming_what_to_move(digits, tmp_path):
    with pytest.raises(Killed):
        _fit(_model(), digits, tmp_path, [KillAt(step=16 + 2)], epochs=3)
    newest = backups.latest(tmp_path / "backup" / "train")
    (newest / backups.WEIGHTS).write_bytes(b"not hdf5")
    with pytest.raises(CheckpointError, match="Move .*backup/train away"):
        _fit(_model(), digits, tmp_path, epochs=2)


def test_a_diverged_epoch_is_not_backed_up_and_fit_raises(tmp_path, digits):
    model = _model()
    model.compile(
        optimizer=keras.optimizers.SGD(1e12),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    with pytest.raises(TrainingDiverged, match="epoch 1, batch"):
        _fit(model, digits, tmp_path, [cb.NanGuard()], epochs=3)
    assert backups.latest(tmp_path / "backup" / "train") is None
    assert not backups.best_path(tmp_path).exists()


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_stop_signal_during_a_save_is_held_until_the_save_is_done(tmp_path, signum):
    # Keras' saving has bare `except:` clauses that would swallow the KeyboardInterrupt.
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    handlers = {s: signal.getsignal(s) for s in backups.STOP_SIGNALS}
    with pytest.raises(KeyboardInterrupt), backups.signals_held():
        signal.raise_signal(signum)
        model.save(tmp_path / "model.keras")  # still runs, and runs to its end
    assert keras.saving.load_model(tmp_path / "model.keras", safe_mode=True).count_params() == 8
    assert {s: signal.getsignal(s) for s in backups.STOP_SIGNALS} == handlers


def test_with_a_weight_average_the_best_model_is_averaged_and_the_backup_raw(digits, tmp_path):
    """With `ema` near 1 the average barely leaves the first step's weights while training moves
    on: the best model must hold the average, and the backup the raw weights a resumed fit goes
    on from."""
    model = _model(ema=0.999)
    first: list[np.ndarray] = []
    raw: list[np.ndarray] = []

    class KeepRaw(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            raw[:] = self.model.get_weights()
            if batch == 0:
                first[:] = raw

    train, validation = digits
    model.fit(
        train,
        validation_data=validation,
        epochs=1,
        callbacks=[
            keras.callbacks.SwapEMAWeights(),
            backups.RunBackup(tmp_path, ema=True),
            KeepRaw(),
        ],
        verbose=0,
    )
    saved = keras.saving.load_model(backups.best_path(tmp_path), safe_mode=True).get_weights()
    moved = np.abs(raw[0] - first[0]).mean()
    assert np.abs(saved[0] - first[0]).mean() < moved / 4
    restored = _model(ema=0.999)
    restored.optimizer.build(restored.trainable_variables)
    restored.load_weights(backups.latest(tmp_path / "backup" / "train") / backups.WEIGHTS)
    np.testing.assert_allclose(restored.get_weights()[0], raw[0], rtol=0, atol=1e-6)
