"""Runtime policies, and the GPU-only code paths exercised on CPU: XLA, mixed precision,
MirroredStrategy over logical CPU devices."""

from __future__ import annotations

import keras
import numpy as np
import pytest
from pytest import approx

from dlrecipes import optimizers, runtime
from dlrecipes.config import RecipeConfig
from tests.conftest import run_cli


def test_policies_on_this_cpu():
    assert runtime.gpus() == []
    assert runtime.use_jit(None) is runtime.JIT_ON_CPU
    assert runtime.use_jit(True) is True and runtime.use_jit(False) is False
    assert runtime.set_precision("auto") == "float32"
    assert runtime.strategy("auto").num_replicas_in_sync == 1
    with pytest.raises(ValueError, match="strategy"):
        runtime.strategy("tpu")


def _tiny_fit(jit: bool, precision: str) -> keras.Model:
    runtime.set_precision(precision)
    try:
        rng = np.random.default_rng(0)
        x = rng.normal(size=(64, 4)).astype("float32")
        y = (x[:, 0] > 0).astype("int64")
        model = keras.Sequential(
            [
                keras.Input((4,)),
                keras.layers.Dense(8, activation="relu"),
                keras.layers.Dense(2, activation="softmax", dtype="float32"),
            ]
        )
        model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", jit_compile=jit)
        model.fit(x, y, epochs=2, batch_size=16, verbose=0)
        return model
    finally:
        runtime.set_precision("float32")


def test_xla_compiles_and_trains_on_cpu():
    model = _tiny_fit(jit=True, precision="float32")
    assert model.jit_compile is True
    assert np.isfinite(model.evaluate(np.zeros((4, 4)), np.zeros(4), verbose=0))


def test_mixed_precision_trains_on_cpu_with_float32_output():
    model = _tiny_fit(jit=False, precision="mixed_float16")
    assert model.layers[0].compute_dtype == "float16"
    assert model.layers[0].kernel.dtype == "float32"  # master weights stay float32
    assert model.predict(np.zeros((2, 4)), verbose=0).dtype == np.float32


def test_seed_makes_runs_repeatable():
    weights = []
    for _ in range(2):
        runtime.seed_everything(3)
        weights.append(_tiny_fit(jit=False, precision="float32").get_weights()[0])
    np.testing.assert_array_equal(weights[0], weights[1])


@pytest.mark.parametrize(
    ("schedule", "check"),
    [
        ("constant", lambda lr: lr(0) == lr(99) == 0.1),
        ("cosine", lambda lr: lr(0) == 0 and lr(10) == approx(0.1) and lr(99) < 1e-3),
        ("step", lambda lr: lr(10) == approx(0.1) and lr(60) == approx(0.01) and lr(90) < 0.002),
    ],
)
def test_schedules(schedule, check):
    config = RecipeConfig(learning_rate=0.1, epochs=10, schedule=schedule, warmup_epochs=1)
    lr = optimizers.schedule(config, steps_per_epoch=10)

    def at(step: int) -> float:
        return float(lr(step)) if callable(lr) else lr

    assert check(at)


@pytest.mark.parametrize("name", ["sgd", "momentum", "adagrad", "rmsprop", "adam", "adamw"])
def test_every_optimizer_builds(name):
    opt = optimizers.optimizer(RecipeConfig(optimizer=name), steps_per_epoch=5)
    assert isinstance(opt, keras.optimizers.Optimizer)


MIRRORED = """
from dlrecipes import runtime
runtime.split_cpu(2)
import keras, numpy as np
strategy = runtime.strategy("mirrored")
with strategy.scope():
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2, activation="softmax")])
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
x = np.random.default_rng(0).normal(size=(64, 4)).astype("float32")
model.fit(x, (x[:, 0] > 0).astype("int64"), batch_size=16, epochs=1, verbose=0)
print("replicas", strategy.num_replicas_in_sync, type(strategy).__name__)
"""


def test_mirrored_strategy_over_two_logical_cpus():
    out = run_cli("-c", MIRRORED).stdout
    assert "replicas 2 MirroredStrategy" in out
