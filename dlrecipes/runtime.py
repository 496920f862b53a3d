"""Where and how training runs: device, distribution strategy, XLA, precision, seeds, run dir."""

from __future__ import annotations

import datetime
import logging
from pathlib import Path

import keras
import tensorflow as tf

from dlrecipes import cluster
from dlrecipes.errors import ConfigError

log = logging.getLogger(__name__)

# XLA on CPU: measured by `make bench` (benchmarks/results/xla_cpu.json). On this 2-core CPU the
# recipe's convnet trained slower with XLA than without, so XLA is off on CPU unless asked for.
JIT_ON_CPU = False


def gpus() -> list[tf.config.PhysicalDevice]:
    """The GPUs TensorFlow can see."""
    return tf.config.list_physical_devices("GPU")


def strategy(name: str = "auto") -> tf.distribute.Strategy:
    """The distribution strategy.

    Args:
        name: `auto` (`multi_host` when TF_CONFIG names several processes, else MirroredStrategy
            over every GPU when there are several, else the default strategy), `default` (one
            device), `mirrored` (MirroredStrategy over every GPU, or over every logical CPU device
            when there is no GPU), or `multi_host` (MultiWorkerMirroredStrategy over the processes
            of TF_CONFIG; see `dlrecipes.cluster`).
    """
    task = cluster.task(name)
    if task is not None:
        return cluster.join(task)
    if name == "default" or (name == "auto" and len(gpus()) < 2):
        return tf.distribute.get_strategy()
    if name in ("auto", "mirrored"):
        devices = [d.name for d in tf.config.list_logical_devices("GPU")] or [
            d.name for d in tf.config.list_logical_devices("CPU")
        ]
        return tf.distribute.MirroredStrategy(devices)
    raise ConfigError(f"strategy={name!r} is not one of auto, default, mirrored, multi_host.")


def use_jit(jit: bool | None) -> bool:
    """Whether to use XLA: the explicit choice, else on for GPU and `JIT_ON_CPU` for CPU."""
    if jit is not None:
        return jit
    return bool(gpus()) or JIT_ON_CPU


def set_precision(precision: str = "auto") -> str:
    """Sets Keras' global dtype policy and returns its name.

    `auto` is `mixed_float16` on GPU (tensor cores, half the activation memory) and `float32` on
    CPU, where float16 math is emulated and slower.
    """
    if precision == "auto":
        precision = "mixed_float16" if gpus() else "float32"
    keras.mixed_precision.set_global_policy(precision)
    return precision


def seed_everything(seed: int, deterministic: bool = False) -> None:
    """Seeds Python, NumPy and the backend; `deterministic` also makes TF ops deterministic."""
    keras.utils.set_random_seed(seed)
    if deterministic:
        tf.config.experimental.enable_op_determinism()


def new_run_dir(root: str | Path, recipe: str, run_id: str | None = None) -> Path:
    """`root/<recipe>/<run_id>`, with a timestamp as the default run id."""
    run_id = run_id or datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    return Path(root) / recipe / run_id


def split_cpu(count: int) -> None:
    """Splits the CPU into `count` logical devices, so MirroredStrategy can be exercised on CPU.

    Must run before TensorFlow initializes its devices (before any op runs).
    """
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration() for _ in range(count)]
    )
