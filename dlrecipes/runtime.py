"""Where and how training runs: device, distribution strategy, XLA, precision, seeds, run dir."""

from __future__ import annotations

import datetime
import logging
from pathlib import Path

import keras
import tensorflow as tf

from dlrecipes.errors import ConfigError
from dlrecipes.multihost import cluster

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
            of TF_CONFIG; see `dlrecipes.multihost.cluster`).
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


def use_jit(jit: bool | None, replicas: int = 1) -> bool:
    """Whether to compile the training step with XLA.

    Args:
        jit: the explicit choice (`--jit` / `--no-jit`), or None for the policy: on for one GPU,
            off on CPU (`JIT_ON_CPU`, measured) and off across several replicas, as Keras' own
            `jit_compile="auto"` decides under `tf.distribute`.
        replicas: devices the model is mirrored over (`strategy.num_replicas_in_sync`).

    Raises:
        ConfigError: `jit=True` across several replicas. XLA under `MirroredStrategy` fails in
            the first training step (seen here over two logical CPUs: "Trying to access resource
            ... located in device CPU:1 from device CPU:0"; on GPUs with mixed precision,
            keras-team/keras#20763, still open).
    """
    if replicas > 1:
        if jit:
            raise ConfigError(
                f"--jit with {replicas} replicas: XLA under MirroredStrategy fails in the first "
                "training step (keras-team/keras#20763). Drop --jit (XLA stays off across "
                "replicas), or train on one device with --strategy default."
            )
        return False
    if jit is not None:
        return jit
    return bool(gpus()) or JIT_ON_CPU


# Tensor cores, which make float16 math fast, came with compute capability 7.0 (Volta).
MIXED_PRECISION_CAPABILITY = (7, 0)


def set_precision(precision: str = "auto") -> str:
    """Sets Keras' global dtype policy and returns its name.

    `auto` is `mixed_float16` when every GPU has tensor cores (compute capability 7.0 or newer:
    faster math, half the activation memory), else `float32`: on CPU float16 math is emulated
    and slower, and older GPUs gain nothing from it.
    """
    if precision == "auto":
        found = gpus()
        fast = found and all(
            tuple(tf.config.experimental.get_device_details(gpu).get("compute_capability", (0, 0)))
            >= MIXED_PRECISION_CAPABILITY
            for gpu in found
        )
        precision = "mixed_float16" if fast else "float32"
    keras.mixed_precision.set_global_policy(precision)
    return precision


def seed_everything(seed: int, deterministic: bool = False) -> None:
    """Seeds Python, NumPy and the backend; `deterministic` also makes TF ops deterministic."""
    keras.utils.set_random_seed(seed)
    if deterministic:
        tf.config.experimental.enable_op_determinism()


def new_run_dir(root: str | Path, recipe: str, run_id: str | None = None) -> Path:
    """Creates and returns a new, empty `root/<recipe>/<run_id>` (a timestamp by default).

    The directory is made with one `mkdir`, which fails if it exists, so two runs started in the
    same second never share one: the second gets `<run_id>-2`, the next `-3`, and so on.
    """
    run_id = run_id or datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    parent = Path(root) / recipe
    parent.mkdir(parents=True, exist_ok=True)
    path, n = parent / run_id, 1
    while True:
        try:
            path.mkdir()
            return path
        except FileExistsError:
            n += 1
            path = parent / f"{run_id}-{n}"


def split_cpu(count: int) -> None:
    """Splits the CPU into `count` logical devices, so MirroredStrategy can be exercised on CPU.

    Must run before TensorFlow initializes its devices (before any op runs).
    """
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration() for _ in range(count)]
    )
