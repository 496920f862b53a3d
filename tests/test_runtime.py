"""Runtime policies on every device list (GPUs faked), the recipes compiled under them, the
mirrored / mixed-precision / XLA combination trained on two logical CPUs, seeds, optimizers and
learning-rate schedules."""

from __future__ import annotations

import dataclasses
import json

import keras
import numpy as np
import pytest
import tensorflow as tf
from pytest import approx

from dlrecipes import data, optimizers, runtime
from dlrecipes.config import RecipeConfig
from dlrecipes.errors import ConfigError
from dlrecipes.tuning import launch as tuning_launch
from tests.conftest import recipe_module, run_cli


class FakeMirrored:
    """Stands in for tf.distribute.MirroredStrategy over devices this machine does not have."""

    def __init__(self, devices: list[str]) -> None:
        self.devices = devices
        self.num_replicas_in_sync = len(devices)


@pytest.fixture
def devices(monkeypatch):
    """`devices(n, capability)` makes runtime see n GPUs of that compute capability."""

    def fake(count: int, capability: tuple[int, int] = (8, 0)) -> None:
        found = [tf.config.PhysicalDevice(f"/physical_device:GPU:{i}", "GPU") for i in range(count)]
        logical = [tf.config.LogicalDevice(f"/device:GPU:{i}", "GPU") for i in range(count)]
        list_logical = tf.config.list_logical_devices
        monkeypatch.setattr(runtime, "gpus", lambda: found)
        monkeypatch.setattr(
            tf.config.experimental,
            "get_device_details",
            lambda device: {"compute_capability": capability},
        )
        monkeypatch.setattr(
            tf.config,
            "list_logical_devices",
            lambda kind=None: logical if kind == "GPU" else list_logical(kind),
        )
        monkeypatch.setattr(tf.distribute, "MirroredStrategy", FakeMirrored)

    yield fake
    keras.mixed_precision.set_global_policy("float32")


@pytest.mark.parametrize(
    ("gpus", "capability", "jit", "precision", "replicas"),
    [
        (0, None, runtime.JIT_ON_CPU, "float32", 1),  # CPU: XLA measured slower, float16 emulated
        (1, (8, 0), True, "mixed_float16", 1),  # one modern GPU: XLA and tensor cores
        (1, (6, 1), True, "float32", 1),  # a GPU without tensor cores: float16 gains nothing
        (2, (8, 0), False, "mixed_float16", 2),  # mirrored: XLA off, as Keras' own auto does
    ],
)
def test_auto_policies_follow_the_devices(devices, gpus, capability, jit, precision, replicas):
    devices(gpus, capability)
    strategy = runtime.strategy("auto")
    assert strategy.num_replicas_in_sync == replicas
    if replicas > 1:
        assert strategy.devices == ["/device:GPU:0", "/device:GPU:1"]
    assert runtime.use_jit(None, strategy.num_replicas_in_sync) is jit
    assert runtime.set_precision("auto") == precision
    assert keras.mixed_precision.global_policy().name == precision


def test_explicit_choices_win_where_they_can_run(devices):
    devices(2)
    assert runtime.strategy("default").num_replicas_in_sync == 1
    assert runtime.use_jit(True) is True and runtime.use_jit(False, 2) is False
    assert runtime.set_precision("float32") == "float32"
    with pytest.raises(ConfigError, match="keras-team/keras#20763.*--strategy default"):
        runtime.use_jit(True, replicas=2)
    with pytest.raises(ConfigError, match="strategy='tpu'"):
        runtime.strategy("tpu")


def test_mirrored_without_gpus_spreads_over_the_logical_cpus(monkeypatch):
    monkeypatch.setattr(runtime, "gpus", lambda: [])
    monkeypatch.setattr(tf.distribute, "MirroredStrategy", FakeMirrored)
    cpus = [d.name for d in tf.config.list_logical_devices("CPU")]
    assert runtime.strategy("mirrored").devices == cpus
    assert runtime.strategy("auto").num_replicas_in_sync == 1


def test_tuning_processes_share_a_gpu_with_memory_growth(monkeypatch):
    monkeypatch.delenv("TF_FORCE_GPU_ALLOW_GROWTH", raising=False)
    assert tuning_launch.tuner_env("tuner0", "127.0.0.1", 1)["TF_FORCE_GPU_ALLOW_GROWTH"] == "true"
    monkeypatch.setenv("TF_FORCE_GPU_ALLOW_GROWTH", "false")  # the caller's choice stands
    assert tuning_launch.tuner_env("chief", "127.0.0.1", 1)["TF_FORCE_GPU_ALLOW_GROWTH"] == "false"


def _texts_info() -> data.DataInfo:
    texts = tf.data.Dataset.from_tensor_slices(["a great film", "a dull film", "great acting"])
    return data.DataInfo("texts", ("fresh", "rotten"), (), adapt=texts)


RECIPE_FITS_WITH_JIT = """
import dataclasses, warnings
from dlrecipes import tuning
from tests.conftest import recipe_module
RUNS = [
    ("image_classification", {}),
    ("text_bilstm", {"word_vectors": "none"}),
    ("text_bilstm", {"word_vectors": "none", "arch": "bigru"}),
    ("text_bilstm", {"word_vectors": "none", "arch": "transformer"}),
]
for name, fields in RUNS:
    module = recipe_module(name)
    config = dataclasses.replace(module.Config(**fields).tiny(), jit=True, epochs=1)
    # What each recipe's fit trains on: images, or the texts as token ids made in tf.data.
    splits = module.training_data(config) if name == "text_bilstm" else module.load_data(config)
    splits = dataclasses.replace(
        splits, train=splits.train.take(2), validation=splits.validation.take(1)
    )
    model = module.build_model(config, splits.info)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")  # dlrecipes hides Keras' fallback warning; not here
        module.fit(model, config, splits, tuning.Trial(config, []))
    said = [str(w.message) for w in caught if "jit_compile" in str(w.message)]
    print(name, fields.get("arch", ""), "XLA", model.jit_compile, "warnings", said)
"""


@pytest.mark.slow
def test_every_recipe_model_trains_under_xla_when_asked():
    """`--jit` in the recipes' own `fit`: the image model and the text models, on token ids made
    in tf.data, every `--arch`, train under XLA with no "doesn't support jit_compile" fallback.
    In a fresh process, with every warning shown.
    (Fine-tuning's BERT on ids: tests/test_transfer.py; the distilled student:
    tests/test_distillation.py; pruning: tests/test_pruning.py.)"""
    out = run_cli("-c", RECIPE_FITS_WITH_JIT).stdout.splitlines()
    assert "image_classification  XLA True warnings []" in out
    for arch in ("", "bigru", "transformer"):
        assert f"text_bilstm {arch} XLA True warnings []" in out


MIRRORED_MIXED_XLA = """
import sys
from dlrecipes import runtime
runtime.split_cpu(2)
from tests.conftest import recipe_module
main = lambda *argv: recipe_module("image_classification").main(list(argv))
# float16 math is emulated on CPU: 8 steps of 8x8 digits keep the run to seconds.
flags = ["train", "--tiny", "--epochs", "1", "--batch-size", "500", "--image-size", "8,8",
         "--widths", "4,8", "--strategy", "mirrored", "--precision", "mixed_float16"]
print("exit", main(*flags, "--jit", "--run-dir", sys.argv[1] + "/jit"))
print("exit", main(*flags, "--run-dir", sys.argv[1] + "/auto"))
"""


@pytest.mark.slow
def test_mirrored_mixed_precision_on_two_logical_cpus_refuses_xla_and_trains_without(tmp_path):
    """`--jit` across two replicas crashed in the first step before the policy refused it:
    "Trying to access resource ... located in device CPU:1 from device CPU:0"."""
    proc = run_cli("-c", MIRRORED_MIXED_XLA, tmp_path)
    assert proc.stdout.count("exit 2") == 1 and proc.stdout.count("exit 0") == 1
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "--jit with 2 replicas" in errors[0]
    assert "2 replicas, XLA off, precision mixed_float16" in proc.stdout
    metrics = json.loads((tmp_path / "auto" / "metrics.json").read_text())
    assert metrics["num_examples"] == 500 and 0 <= metrics["accuracy"] <= 1
    history = (tmp_path / "auto" / "history.csv").read_text().splitlines()
    assert len(history) == 2 and "nan" not in history[1].lower()
    assert not (tmp_path / "jit" / "config.json").exists()


def test_seed_fixes_the_recipe_model_and_the_training_order():
    image = recipe_module("image_classification")
    config = image.Config().tiny()
    info = dataclasses.replace(_texts_info(), input_shape=(28, 28, 1), class_names=tuple("01"))
    pairs = tf.data.Dataset.from_tensor_slices((np.zeros((64, 28, 28, 1), np.uint8), np.arange(64)))

    def run(seed: int) -> tuple[np.ndarray, list[int]]:
        runtime.seed_everything(seed)
        kernel = image.build_model(dataclasses.replace(config, seed=seed), info).get_weights()[0]
        order = data.prepare(pairs, 8, training=True, seed=seed)
        return kernel, [int(y) for _, labels in order for y in labels]

    (kernel, order), (kernel_again, order_again), (other, other_order) = run(3), run(3), run(4)
    np.testing.assert_array_equal(kernel, kernel_again)
    assert order == order_again
    assert not np.array_equal(kernel, other) and order != other_order


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


@pytest.mark.parametrize(
    ("name", "kind", "expected"),
    [
        ("sgd", keras.optimizers.SGD, {"momentum": 0.0, "nesterov": False}),
        ("momentum", keras.optimizers.SGD, {"momentum": 0.8, "nesterov": True}),
        ("adagrad", keras.optimizers.Adagrad, {}),
        ("rmsprop", keras.optimizers.RMSprop, {"momentum": 0.8}),
        ("adam", keras.optimizers.Adam, {"weight_decay": None}),
        ("adamw", keras.optimizers.AdamW, {"weight_decay": 0.03}),
    ],
)
def test_each_optimizer_name_gets_the_config_values(name, kind, expected):
    config = RecipeConfig(optimizer=name, momentum=0.8, weight_decay=0.03, ema=0.9)
    opt = optimizers.optimizer(config, steps_per_epoch=5)
    assert type(opt) is kind
    settings = opt.get_config()
    assert {k: settings[k] for k in expected} == approx(expected)
    assert settings["use_ema"] is True and settings["ema_momentum"] == approx(0.9)
    # The config's schedule drives it: cosine decay over 10 epochs of 5 steps after 1 of warm-up.
    assert settings["learning_rate"]["class_name"] == "CosineDecay"
    assert settings["learning_rate"]["config"]["decay_steps"] == 45
    plain = optimizers.optimizer(dataclasses.replace(config, ema=0.0, schedule="constant"), 5)
    assert plain.get_config()["use_ema"] is False
    assert plain.get_config()["learning_rate"] == approx(config.learning_rate)
