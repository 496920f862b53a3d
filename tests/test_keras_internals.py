"""Canaries: the private parts of Keras and keras-tuner that dlrecipes relies on, probed by what
they do. When an upgrade changes one, a test here fails and says what to change, instead of
resume or tuning breaking silently."""

from __future__ import annotations

import keras
import keras_tuner
import numpy as np
from keras_tuner.src.distribute import utils as dist_utils

from dlrecipes.tuning import tuners


class StartAt(keras.callbacks.Callback):
    """Sets where `fit` starts the way `dlrecipes.backups.RunBackup` does (and Keras' own
    `BackupAndRestore`): `model._initial_epoch`, in `on_train_begin`."""

    def __init__(self, epoch: int | None) -> None:
        super().__init__()
        self.epoch = epoch
        self.seen: list[int] = []

    def on_train_begin(self, logs=None):
        self.model._initial_epoch = self.epoch

    def on_epoch_begin(self, epoch, logs=None):
        self.seen.append(epoch)


def _model() -> keras.Model:
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    return model


def test_fit_starts_at_the_epoch_a_callback_sets_in_on_train_begin():
    x, y = np.ones((4, 2), "float32"), np.ones((4, 1), "float32")
    model = _model()
    start = StartAt(3)
    model.fit(x, y, epochs=5, callbacks=[start], verbose=0)
    assert start.seen == [3, 4], (
        "Keras no longer starts fit at `model._initial_epoch` set in on_train_begin: "
        "dlrecipes.backups.RunBackup resumes through it; see how keras.callbacks."
        "BackupAndRestore sets the start epoch now and do the same."
    )
    # Keras leaves it set after fit: RunBackup clears it for a fit without a backup.
    assert model._initial_epoch == 3, (
        "Keras now resets `model._initial_epoch` after fit; RunBackup's clearing is harmless "
        "but this canary's premise changed: update it."
    )
    cleared = StartAt(None)
    model.fit(x, y, initial_epoch=1, epochs=3, callbacks=[cleared], verbose=0)
    assert cleared.seen == [1, 2]


def test_keras_tuner_oracles_draw_new_trials_through_random_values(tmp_path):
    # tuners._DefaultsFirst overrides `_random_values` so the first trial tries the defaults.
    hp = keras_tuner.HyperParameters()
    hp.Int("units", 1, 64, default=7)
    oracle = tuners._RandomOracle(objective="val_accuracy", max_trials=3, hyperparameters=hp)
    oracle._set_project_dir(str(tmp_path), "canary")
    trial = oracle.create_trial("tuner0")
    assert trial.hyperparameters.values == {"units": 7}, (
        "keras-tuner no longer draws a new trial's values through Oracle._random_values, "
        "which dlrecipes.tuning.tuners._DefaultsFirst overrides to try the defaults first."
    )


def test_keras_tuner_builds_its_initial_space_through_populate_initial_space():
    assert callable(getattr(keras_tuner.Tuner, "_populate_initial_space", None)), (
        "keras_tuner.Tuner._populate_initial_space is gone: dlrecipes.tuning.tuners._Tuner "
        "overrides it to declare the search space without building a model."
    )


def test_keras_tuner_tells_chief_and_workers_apart(monkeypatch):
    # dlrecipes.tuning.tuners.is_worker and the failure budget read these two.
    monkeypatch.delenv("KERASTUNER_TUNER_ID", raising=False)
    monkeypatch.delenv("KERASTUNER_ORACLE_IP", raising=False)
    assert not dist_utils.has_chief_oracle()
    monkeypatch.setenv("KERASTUNER_TUNER_ID", "tuner0")
    monkeypatch.setenv("KERASTUNER_ORACLE_IP", "127.0.0.1")
    monkeypatch.setenv("KERASTUNER_ORACLE_PORT", "8000")
    assert dist_utils.has_chief_oracle() and not dist_utils.is_chief_oracle()
    monkeypatch.setenv("KERASTUNER_TUNER_ID", "chief")
    assert dist_utils.is_chief_oracle()
