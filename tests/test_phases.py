"""Fine-tuning's two phases, as its recipe's `fit` trains them: what each phase trains (a
keras.applications base with batch norm, built with weights=None: no download, on scikit-learn's
real 8x8 digits), where phase 2 starts, and a run stopped in either phase or between them
continuing from its backups."""

from __future__ import annotations

import csv
import dataclasses
import functools
import json

import keras
import numpy as np
import pytest
import tensorflow as tf
from sklearn.datasets import load_digits

import dlrecipes
from dlrecipes import tuning
from dlrecipes.data import DataInfo, Splits
from dlrecipes.models import bases, transfer, vision
from tests.conftest import recipe_module

FINE_TUNING = recipe_module("fine_tuning")


@pytest.fixture(scope="module")
def digits() -> Splits:
    x, y = load_digits(return_X_y=True)
    images = np.clip(x * 16, 0, 255).astype("uint8").reshape(-1, 8, 8, 1)
    data = tf.data.Dataset.from_tensor_slices((images[:64], y[:64])).batch(64)
    info = DataInfo("digits", tuple("0123456789"), (8, 8, 1))
    return Splits(data, data, data, info)


class Snapshots(keras.callbacks.Callback):
    """The model's weights, by variable path, as every epoch begins and ends."""

    def __init__(self) -> None:
        super().__init__()
        self.begin: list[dict[str, np.ndarray]] = []
        self.after: list[dict[str, np.ndarray]] = []

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self.begin.append({w.path: w.numpy().copy() for w in self.model.weights})

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        self.after.append({w.path: w.numpy().copy() for w in self.model.weights})


def _changed(before: dict, after: dict, paths) -> list[str]:
    return [p for p in paths if not np.array_equal(before[p], after[p])]


def _config(**overrides):
    values = {
        "head_epochs": 1,
        "epochs": 1,
        "head_learning_rate": 1e-2,
        "learning_rate": 1e-2,
        "warmup_epochs": 0.0,
    }
    return dataclasses.replace(FINE_TUNING.Config(), **(values | overrides))


@pytest.mark.slow
def test_phase_one_trains_the_head_alone_and_phase_two_the_top_with_fixed_statistics(digits):
    base = bases.load("mobilenet_v3_small", pretrained=False, input_size=32)
    model = transfer.classifier(base, digits.info, dropout=0.0)
    initial = {w.path: w.numpy().copy() for w in model.weights}
    snapshots = Snapshots()
    trial = tuning.Trial(_config(unfreeze="3"), [snapshots])
    FINE_TUNING.fit(model, trial.config, digits, trial)
    assert trial.history.epoch == [0, 1]
    after_head, after_tuning = snapshots.after
    layers = transfer.leaves(model.get_layer("base"))
    first = layers.index(transfer.units(model)[-3])  # the lowest unit phase 2 trains
    norms = [
        w.path
        for layer in layers
        if isinstance(layer, keras.layers.BatchNormalization)
        for w in layer.weights
    ]
    top = [w.path for layer in layers[first:] for w in layer.weights if w.path not in norms]
    below = [w.path for layer in layers[:first] for w in layer.weights]
    head = ["predictions/kernel", "predictions/bias"]
    assert len(norms) > 40 and any(p.endswith("/moving_variance") for p in norms)
    # Phase 1: the head alone; every weight of the base as it was, moving statistics included.
    assert _changed(initial, after_head, top + below) == [] and _changed(initial, after_head, head)
    # Phase 2: every kernel of the top moves; nothing below does, and no batch-norm weight
    # anywhere: frozen, batch norm runs in inference mode and keeps its moving statistics.
    kernels = [p for p in top if p.endswith("kernel")]
    assert len(kernels) >= 3 and set(_changed(after_head, after_tuning, kernels)) == set(kernels)
    assert _changed(after_head, after_tuning, below) == []
    assert _changed(initial, after_tuning, norms) == []


def test_phase_two_starts_from_the_best_weights_of_phase_one_averaged(digits, tmp_path):
    path = tmp_path / "model.keras"
    vision.convnet((8, 8, 1), 10, widths=(4,), convs_per_stage=1, head="avg").save(path)
    model = transfer.classifier(bases.load(str(path)), digits.info, dropout=0.0)
    snapshots = Snapshots()
    # With an average, the weights validated and kept are the average, not the last step's.
    trial = tuning.Trial(_config(head_epochs=2, ema=0.9, unfreeze="all"), [snapshots])
    FINE_TUNING.fit(model, trial.config, digits, trial)
    best = int(np.argmax(trial.history.history["val_accuracy"][:2]))
    start = snapshots.begin[2]  # phase 2's first epoch
    kept = snapshots.after[best]  # as validated: the average swapped in at the epoch's end
    for path, value in start.items():
        np.testing.assert_array_equal(value, kept[path], err_msg=path)
    assert any(np.abs(v).sum() > 0 for v in start.values())  # not the new optimizer's zeros


class Killed(Exception):
    """Stands for the process being killed."""


class KillAt(keras.callbacks.Callback):
    """Kills the run as epoch `epoch` (0-based, counted across phases) begins, remembering the
    weights and optimizer step it had then."""

    def __init__(self, epoch: int) -> None:
        super().__init__()
        self.epoch = epoch

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        if epoch == self.epoch:
            self.weights = self.model.get_weights()
            self.step = int(self.model.optimizer.iterations.numpy())
            raise Killed


class FirstEpoch(keras.callbacks.Callback):
    """What a resumed run starts its first epoch with."""

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        if not hasattr(self, "epoch"):
            self.epoch = epoch
            self.weights = self.model.get_weights()
            self.step = int(self.model.optimizer.iterations.numpy())


@pytest.fixture(scope="module")
def image_base(tmp_path_factory):
    path = tmp_path_factory.mktemp("base") / "model.keras"
    vision.convnet((28, 28, 1), 10, widths=(4, 8), convs_per_stage=1, head="flatten").save(path)
    return path


@pytest.mark.slow
def test_a_run_stopped_in_either_phase_or_between_them_resumes_from_its_backups(
    image_base, tmp_path, monkeypatch
):
    config = dataclasses.replace(
        FINE_TUNING.Config().tiny(),
        base=str(image_base),
        dataset="digits",
        margin=4 / 28,
        labels_per_class=2,
        batch_size=100,  # one epoch: 1,000 examples, 10 steps
        head_epochs=2,
        epochs=2,
        unfreeze="all",
    )
    run_dir = tmp_path / "run"
    extra: list[keras.callbacks.Callback] = []
    callbacks = dlrecipes.Run.callbacks
    monkeypatch.setattr(
        dlrecipes.Run, "callbacks", lambda self, *a, **k: [*callbacks(self, *a, **k), *extra]
    )
    killed = KillAt(1)  # in phase 1, as its second epoch begins
    extra[:] = [killed]
    with pytest.raises(Killed):
        FINE_TUNING.train(config, run_dir)
    # Resumed, stopped again as phase 2 begins, and again inside phase 2, then to the end.
    for next_kill, step in ((2, 10), (3, 0), (None, 10)):
        first = FirstEpoch()
        more = [KillAt(next_kill)] if next_kill else []
        extra[:] = [first, *more]
        resume = functools.partial(FINE_TUNING.train, config, run_dir, resume=True)
        if next_kill:
            with pytest.raises(Killed):
                resume()
        else:
            result = resume()
        # It goes on with the next epoch, the weights and the optimizer step it was stopped
        # with: 10 steps into phase 1, or phase 2's fresh optimizer, or 10 steps into phase 2.
        assert first.epoch == killed.epoch
        for ours, theirs in zip(first.weights, killed.weights, strict=True):
            np.testing.assert_array_equal(ours, theirs)
        assert first.step == killed.step == step
        killed = more[0] if more else None
    with (run_dir / "history.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert [int(r["epoch"]) for r in rows] == [0, 1, 2, 3]
    assert [r["phase"] for r in rows] == ["head", "head", "fine-tune", "fine-tune"]
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics == result.metrics and metrics["epochs_run"] == 4
    assert not (run_dir / "backup").exists()
