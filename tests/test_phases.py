"""Training in phases: what each phase trains (a keras.applications base with batch norm, built
with weights=None: no download), and a fine-tuning run killed in either phase, or between them,
continuing from its backup."""

from __future__ import annotations

import csv
import dataclasses
import functools
import json

import keras
import numpy as np
import pytest
import tensorflow as tf

import dlrecipes
from dlrecipes import phases, training
from dlrecipes.data import DataInfo
from dlrecipes.models import bases, transfer, vision
from tests.conftest import recipe, recipe_module

INFO = DataInfo("noise", tuple("0123"), (8, 8, 1))


class Snapshots(keras.callbacks.Callback):
    """The model's weights, by variable path, after every epoch."""

    def __init__(self) -> None:
        super().__init__()
        self.after: list[dict[str, np.ndarray]] = []

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        self.after.append({w.path: w.numpy().copy() for w in self.model.weights})


def _changed(before: dict, after: dict, paths) -> list[str]:
    return [p for p in paths if not np.array_equal(before[p], after[p])]


@pytest.mark.slow
def test_phase_one_trains_the_head_alone_and_phase_two_the_top_with_fixed_statistics():
    base = bases.load("mobilenet_v3_small", pretrained=False, input_size=32)
    model = transfer.classifier(base, INFO, dropout=0.0)
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (32, 8, 8, 1), dtype=np.uint8)
    data = tf.data.Dataset.from_tensor_slices((images, rng.integers(0, 4, 32))).batch(32)
    config = dlrecipes.RecipeConfig(epochs=1, learning_rate=1e-2, warmup_epochs=0.0)
    plan = [
        phases.Phase("head", config, lambda m: transfer.unfreeze(m, 0)),
        phases.Phase("fine-tune", config, lambda m: transfer.unfreeze(m, 3)),
    ]
    initial = {w.path: w.numpy().copy() for w in model.weights}
    snapshots = Snapshots()
    history = phases.fit(
        model,
        plan,
        data,
        None,
        steps=1,
        compile=training.compile_model,
        callbacks=[snapshots],
        verbose=0,
        shuffle=False,
    )
    assert history.epoch == [0, 1] and history.history["phase"] == [1, 2]
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


class Starts(keras.callbacks.Callback):
    """The first layer's kernel as every epoch begins (after the EMA swap, when there is one)."""

    def __init__(self) -> None:
        super().__init__()
        self.kernels: list[np.ndarray] = []

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self.kernels.append(self.model.layers[0].kernel.numpy().copy())


def test_weight_averaging_carries_over_into_the_next_phase():
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(4), keras.layers.Dense(2)])
    x = np.random.default_rng(0).normal(size=(8, 3)).astype("float32")
    data = tf.data.Dataset.from_tensor_slices((x, (x[:, 0] > 0).astype("int64"))).batch(8)
    config = dlrecipes.RecipeConfig(epochs=1, ema=0.9, warmup_epochs=0.0)

    def train_only_last(m):
        m.layers[0].trainable = False

    def train_both(m):
        m.layers[0].trainable = True

    plan = [phases.Phase("head", config, train_only_last), phases.Phase("all", config, train_both)]
    initial = model.layers[0].kernel.numpy().copy()
    starts = Starts()
    swap = keras.callbacks.SwapEMAWeights(swap_on_epoch=True)
    phases.fit(
        model, plan, data, data, steps=1, compile=training.compile_model,
        callbacks=[swap, starts], verbose=0, shuffle=False,
    )  # fmt: skip
    # Phase 2 starts with the weights phase 1 left (the frozen layer's: untouched), not with
    # the new optimizer's average, which is zeros until its first step.
    np.testing.assert_array_equal(starts.kernels[1], initial)


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
def test_a_run_killed_in_either_phase_or_between_them_resumes_from_its_backup(image_base, tmp_path):
    module = recipe_module("fine_tuning")
    fine_tuning = recipe("fine_tuning")
    config = dataclasses.replace(
        module.Config().tiny(),
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
    killed = KillAt(1)  # in phase 1, as its second epoch begins
    with pytest.raises(Killed):
        training.train(fine_tuning, config, run_dir, extra_callbacks=[killed])
    # Resumed, killed again as phase 2 begins, and again inside phase 2, then to the end.
    for next_kill, step in ((2, 10), (3, 0), (None, 10)):
        first = FirstEpoch()
        more = [KillAt(next_kill)] if next_kill else []
        watch = [first, *more]
        resume = functools.partial(
            training.train, fine_tuning, config, run_dir, resume=True, extra_callbacks=watch
        )
        if next_kill:
            with pytest.raises(Killed):
                resume()
        else:
            result = resume()
        # It goes on with the next epoch, the weights and the optimizer step it was killed with:
        # 10 steps into phase 1, or phase 2's fresh optimizer, or 10 steps into phase 2.
        assert first.epoch == killed.epoch
        for ours, theirs in zip(first.weights, killed.weights, strict=True):
            np.testing.assert_array_equal(ours, theirs)
        assert first.step == killed.step == step
        killed = more[0] if more else None
    with (run_dir / "history.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert [int(r["epoch"]) for r in rows] == [0, 1, 2, 3]
    assert [r["phase"] for r in rows] == ["1", "1", "2", "2"]
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics == result.metrics and metrics["epochs_run"] == 4
    assert not (run_dir / "backup").exists()
