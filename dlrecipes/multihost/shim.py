"""The smallest patch that lets Keras 3's `fit` train under `MultiWorkerMirroredStrategy`.

Keras 3 (checked: 3.15.1 on TensorFlow 2.21.0) fails there, or trains workers apart, in three
places, and TensorFlow's CPU convolution breaks on the empty batches that strategy hands out.
Upstream: keras-team/keras#20585 (open) and tensorflow/tensorflow#72388 (closed as stale, "use
tf_keras"). Each part below is applied only while the bug is there (`bugs()`), only by
`dlrecipes.multihost.cluster` (that is, under `--strategy multi_host`), and each patched function
changes nothing unless the strategy spans several processes. `tests/test_multihost.py` fails as soon
as a bug is fixed upstream: then delete that part here, and this module once `bugs()` is empty.

1. `TensorFlowTrainer._maybe_symbolic_build` draws a first batch from the data and averages it
   over replicas with an eager `strategy.reduce("MEAN", batch)`. Across processes that is a
   collective over uint8 images or strings, and it fails; and the half-read iterator it leaves
   behind can cut short a `cache()` the data is being filled into. Building needs only shapes
   and dtypes: the patch builds from the dataset's `element_spec` and reads no data.
2. `reduce_per_replica` averages `fit`'s scalar logs with `strategy.reduce("MEAN", v, axis=0)` in
   multi-worker mode; a scalar has no axis 0. The patch averages with `axis=None`, as tf_keras did.
3. Layers create their non-trainable weights with aggregation "none", so BatchNormalization's
   moving mean and variance follow each process's own half of the data and the processes end with
   different models (tf_keras averaged them). Under a multi-process strategy the patch creates
   non-trainable float layer weights with aggregation "mean": each update is averaged over the
   processes, so every process holds the same statistics (two small all-reduces per batch-norm
   layer and step).
4. When a split's last batch is smaller than the number of processes, some get an empty batch
   (by design of tf.distribute). TensorFlow 2.21's oneDNN convolution returns its input's shape for
   an empty batch instead of the output's, and the next layer fails. The patch gives convolutions
   of an empty batch an empty output of the right shape.
"""

from __future__ import annotations

import contextlib
import functools
import types

import keras
import tensorflow as tf
from keras.src.backend.tensorflow import nn as tf_nn
from keras.src.backend.tensorflow import trainer as tf_trainer
from keras.src.layers.layer import Layer
from tensorflow.python.distribute import values as distributed_values

# Keras' own functions, before any patch: `bugs()` probes these.
_MAYBE_SYMBOLIC_BUILD = tf_trainer.TensorFlowTrainer._maybe_symbolic_build
_REDUCE_PER_REPLICA = tf_trainer.reduce_per_replica

_applied: set[str] = set()


class _Recorder(tf.distribute.MultiWorkerMirroredStrategy):
    """A multi-process strategy in name only (it forms no cluster): records the `axis` of each
    `reduce` Keras asks of it, so that `bugs()` can watch what Keras does across processes."""

    def __init__(self) -> None:
        self._extended = types.SimpleNamespace(_in_multi_worker_mode=lambda: True)
        self.reduced: list[int | None] = []

    def reduce(self, reduce_op, value, axis=None):
        self.reduced.append(axis)
        return value

    def scope(self) -> contextlib.AbstractContextManager:
        return contextlib.nullcontext()


class _EpochIterator(list):
    """What `fit` hands `_maybe_symbolic_build`: `(step, step, iterator)` triples, and the data."""

    data_adapter = types.SimpleNamespace(
        get_tf_dataset=lambda: tf.data.Dataset.from_tensors(tf.zeros((1,), tf.uint8))
    )


def bugs() -> list[str]:
    """The Keras bugs this module works around that the installed Keras still has, found by
    running Keras' own functions on a recording stand-in for a multi-process strategy."""
    found = []
    strategy = _Recorder()
    trainer = types.SimpleNamespace(
        _distribute_strategy=strategy,
        distribute_strategy=strategy,
        _symbolic_build=lambda data_batch: None,
    )
    first_batch = distributed_values.PerReplica((tf.zeros((1,), tf.uint8),))
    _MAYBE_SYMBOLIC_BUILD(trainer, iterator=_EpochIterator([(0, 0, iter([first_batch]))]))
    if strategy.reduced:  # a collective over the batch's data
        found.append("symbolic_build")
    strategy = _Recorder()
    _REDUCE_PER_REPLICA(tf.constant(0.5), strategy, "mean")
    if 0 in strategy.reduced:  # a scalar log averaged on its axis 0
        found.append("reduce_per_replica")
    layer = keras.layers.BatchNormalization()
    layer.build((None, 1))
    if layer.moving_mean.aggregation == "none":
        found.append("batch_norm_statistics")
    empty = tf_nn.conv(tf.zeros((0, 4, 4, 1)), tf.zeros((3, 3, 1, 2)), padding="same")
    if empty.shape[-1] != 2:
        found.append("empty_batch_conv")
    return found


def apply() -> list[str]:
    """Patches what `bugs()` finds (once per process) and returns the names patched."""
    patches = {
        "symbolic_build": _patch_symbolic_build,
        "reduce_per_replica": _patch_reduce_per_replica,
        "batch_norm_statistics": _patch_add_weight,
        "empty_batch_conv": _patch_conv,
    }
    for name in bugs():
        if name not in _applied:
            patches[name]()
            _applied.add(name)
    return sorted(_applied)


def _multi_worker(strategy: tf.distribute.Strategy) -> bool:
    return tf_trainer._collective_all_reduce_multi_worker(strategy)


def _patch_symbolic_build() -> None:
    original = tf_trainer.TensorFlowTrainer._maybe_symbolic_build

    @functools.wraps(original)
    def _maybe_symbolic_build(self, iterator=None, data_batch=None):
        strategy = self._distribute_strategy
        if strategy is None or iterator is None or not _multi_worker(strategy):
            return original(self, iterator, data_batch)
        spec = iterator.data_adapter.get_tf_dataset().element_spec
        with strategy.scope():
            self._symbolic_build(data_batch=spec)

    tf_trainer.TensorFlowTrainer._maybe_symbolic_build = _maybe_symbolic_build


def _patch_reduce_per_replica() -> None:
    original = tf_trainer.reduce_per_replica

    @functools.wraps(original)
    def reduce_per_replica(values, strategy, reduction):
        if _multi_worker(strategy) and reduction in ("auto", "mean"):
            return tf.nest.map_structure(lambda v: strategy.reduce("MEAN", v, axis=None), values)
        return original(values, strategy, reduction)

    # `_make_function` looks the name up in the module each time it traces a step.
    tf_trainer.reduce_per_replica = reduce_per_replica


def _patch_add_weight() -> None:
    original = Layer.add_weight

    @functools.wraps(original)
    def add_weight(self, *args, **kwargs):
        dtype = kwargs.get("dtype") or (args[2] if len(args) > 2 else None) or self.variable_dtype
        if (
            kwargs.get("trainable", True) is False
            and kwargs.get("aggregation", "none") == "none"
            and "float" in keras.backend.standardize_dtype(dtype)
            and _multi_worker(tf.distribute.get_strategy())
        ):
            kwargs["aggregation"] = "mean"
        return original(self, *args, **kwargs)

    Layer.add_weight = add_weight


def _patch_conv() -> None:
    original = tf_nn.conv

    @functools.wraps(original)
    def conv(inputs, kernel, *args, **kwargs):
        outputs = original(inputs, kernel, *args, **kwargs)
        if not _multi_worker(tf.distribute.get_strategy()):
            return outputs

        def empty_outputs():
            one = tf.zeros(tf.concat([[1], tf.shape(inputs)[1:]], 0), inputs.dtype)
            return original(one, kernel, *args, **kwargs)[:0]

        return tf.cond(tf.shape(inputs)[0] > 0, lambda: outputs, empty_outputs)

    # `keras.ops.conv` looks the name up in the backend module on every call.
    tf_nn.conv = conv
