"""Structured pruning: remove whole channels and rebuild a physically narrower model.

Each convolution or dense layer whose channels flow only through channel-wise layers (batch norm,
activations, dropout, pooling, depthwise convolutions, `Flatten`) into other convolutions or dense
layers can lose channels: the layer loses filters (units), and everything downstream loses the
matching batch-norm entries, depthwise filters and input weights. Layers that feed a merge
(`Add`, `Concatenate`), a model output or any other operation keep their width.

Channels are ranked by the scale of the batch norm right after the layer (|gamma|, as in Liu et al.
2017, "network slimming"), or, without one, by the L1 norm of their filters (Li et al. 2017).
The result is a plain functional model of the same layers with smaller shapes; fine-tune it.

Example:

>>> narrow_model = narrow(model, 0.5)         # half the channels of every narrowable layer
>>> narrow_model.count_params() < model.count_params()
True
"""

from __future__ import annotations

import math
import tempfile
from collections.abc import Mapping

import keras
import numpy as np
from keras import layers, ops

from dlrecipes.errors import ConfigError

# Layers whose output channel c depends only on input channel c (their weights, if any, are
# per channel and cut with it).
_CHANNELWISE = (
    layers.BatchNormalization,
    layers.Activation,
    layers.ReLU,
    layers.LeakyReLU,
    layers.ELU,
    layers.PReLU,
    layers.Softmax,
    layers.Dropout,
    layers.SpatialDropout1D,
    layers.SpatialDropout2D,
    layers.SpatialDropout3D,
    layers.GaussianNoise,
    layers.MaxPooling1D,
    layers.MaxPooling2D,
    layers.MaxPooling3D,
    layers.AveragePooling1D,
    layers.AveragePooling2D,
    layers.AveragePooling3D,
    layers.GlobalAveragePooling1D,
    layers.GlobalAveragePooling2D,
    layers.GlobalAveragePooling3D,
    layers.GlobalMaxPooling1D,
    layers.GlobalMaxPooling2D,
    layers.GlobalMaxPooling3D,
    layers.ZeroPadding1D,
    layers.ZeroPadding2D,
    layers.ZeroPadding3D,
    layers.Cropping1D,
    layers.Cropping2D,
    layers.Cropping3D,
    layers.UpSampling1D,
    layers.UpSampling2D,
    layers.UpSampling3D,
    layers.DepthwiseConv1D,
    layers.DepthwiseConv2D,
)
_CONVS = (layers.Conv1D, layers.Conv2D, layers.Conv3D)
# Layers that read every input channel through a kernel whose input axis is -2.
_READERS = (*_CONVS, layers.Dense)


def _is_reader(op) -> bool:
    return isinstance(op, _READERS) and getattr(op, "groups", 1) == 1


def _width_key(layer) -> str:
    return "units" if isinstance(layer, layers.Dense) else "filters"


class _Graph:
    """The operations of a functional model in topological order, with their consumers."""

    def __init__(self, model: keras.Model) -> None:
        graph = model
        if isinstance(model, keras.Sequential):
            graph = getattr(model, "_functional", None)  # a built Sequential holds a functional
        if graph is None or not hasattr(graph, "outputs"):
            raise ConfigError(
                f"Structured pruning needs a functional or built Sequential model; {model.name} "
                "is a subclassed model. Rebuild it with the functional API."
            )
        self.order: list = []
        self.inputs: dict[int, list] = {}  # id(op) -> producers of its inputs
        self.consumers: dict[int, list] = {}
        seen: set[int] = set()

        def visit(op, node_index: int) -> None:
            if id(op) in seen:
                return
            seen.add(id(op))
            node = op._inbound_nodes[node_index]
            producers = []
            for tensor in node.input_tensors:
                parent, parent_node, _ = tensor._keras_history
                visit(parent, parent_node)
                producers.append(parent)
                self.consumers.setdefault(id(parent), []).append(op)
            self.inputs[id(op)] = producers
            self.order.append(op)

        for tensor in graph.outputs:
            op, node_index, _ = tensor._keras_history
            visit(op, node_index)
        self.output_ops = {id(t._keras_history[0]) for t in graph.outputs}

    def narrowable(self, op) -> bool:
        """Whether `op`'s output channels reach only channel-wise layers and kernel readers."""
        if not (_is_reader(op) and id(op) not in self.output_ops):
            return False
        stack = [op]
        while stack:
            for consumer in self.consumers.get(id(stack.pop()), []):
                if _is_reader(consumer) and len(self.inputs[id(consumer)]) == 1:
                    continue
                is_passthrough = isinstance(consumer, (*_CHANNELWISE, layers.Flatten))
                if not is_passthrough or id(consumer) in self.output_ops:
                    return False
                if getattr(consumer, "depth_multiplier", 1) != 1:
                    return False
                stack.append(consumer)
        return True

    def candidates(self) -> list:
        """The layers whose channels can be removed, in topological order."""
        return [op for op in self.order if self.narrowable(op)]


def channel_scores(model: keras.Model) -> dict[str, np.ndarray]:
    """How much each output channel of each narrowable layer matters (higher: keep).

    |gamma| of a `BatchNormalization` that alone follows the layer, else the L1 norm of each
    channel's weights.
    """
    graph = _Graph(model)
    scores = {}
    for op in graph.candidates():
        consumers = graph.consumers.get(id(op), [])
        if len(consumers) == 1 and isinstance(consumers[0], layers.BatchNormalization):
            bn = consumers[0]
            gamma = bn.gamma if bn.scale else ops.ones(bn.moving_mean.shape)
            scores[op.name] = np.abs(ops.convert_to_numpy(gamma))
        else:
            kernel = ops.convert_to_numpy(op.kernel)
            scores[op.name] = np.abs(kernel).reshape(-1, kernel.shape[-1]).sum(0)
    return scores


def _kept(scores: np.ndarray, fraction: float) -> np.ndarray:
    keep = max(1, round(len(scores) * (1 - fraction)))
    return np.sort(np.argsort(-scores, kind="stable")[:keep])


def plan(model: keras.Model, fraction: float | Mapping[str, float]) -> dict[str, np.ndarray]:
    """The channels each narrowable layer keeps: layer name -> sorted channel indices.

    Args:
        model: a functional (or built Sequential) model.
        fraction: the fraction of channels to remove from every narrowable layer, or a
            mapping from layer names to fractions (unnamed layers keep every channel).

    Raises:
        ConfigError: a fraction outside [0, 1), or a named layer that cannot be narrowed.
    """
    scores = channel_scores(model)
    if not isinstance(fraction, Mapping):
        fraction = {name: fraction for name in scores}
    for name, f in fraction.items():
        if not 0 <= f < 1:
            raise ConfigError(f"The fraction of channels to remove must be in [0, 1); got {f}.")
        if name not in scores:
            raise ConfigError(
                f"Layer {name!r} cannot lose channels (it feeds a merge, an output or an "
                f"unsupported layer, or is not a convolution or dense layer); layers that can: "
                f"{', '.join(scores) or 'none'}."
            )
    return {name: _kept(scores[name], f) for name, f in fraction.items()}


def narrow(model: keras.Model, fraction: float | Mapping[str, float]) -> keras.Model:
    """A physically narrower copy of `model`, its weights cut to the channels kept.

    Args:
        model: a functional (or built Sequential) model of built-in layers.
        fraction: as in `plan`.

    Returns:
        An uncompiled model of the same layers with fewer filters / units; with nothing removed,
        it computes what `model` computes.
    """
    kept = plan(model, fraction)
    narrower = resize(model, {name: len(idx) for name, idx in kept.items()}, copy_fixed=False)
    graph = _Graph(model)
    selection: dict[int, np.ndarray | None] = {}  # id(op) -> original channels of its output
    for op in graph.order:
        producers = graph.inputs[id(op)]
        incoming = selection.get(id(producers[0])) if len(producers) == 1 else None
        selection[id(op)] = _copy_weights(op, narrower, incoming, kept.get(op.name))
    return narrower


def _copy_weights(op, narrower: keras.Model, incoming, own) -> np.ndarray | None:
    """Copies `op`'s weights into its namesake in `narrower`, cut to the channels kept;
    returns the original channels its output holds (None: all of them)."""
    if not isinstance(op, keras.layers.Layer) or isinstance(op, keras.layers.InputLayer):
        return None
    new = narrower.get_layer(op.name)
    weights = [ops.convert_to_numpy(w) for w in op.weights]
    if _is_reader(op):
        if incoming is not None:
            weights[0] = np.take(weights[0], incoming, axis=weights[0].ndim - 2)
        if own is not None:
            weights = [np.take(w, own, axis=-1) for w in weights]
        new.set_weights(weights)
        return own
    if isinstance(op, layers.Flatten) and incoming is not None:
        channels = op.input.shape[-1]
        positions = math.prod(op.input.shape[1:-1])
        return (np.arange(positions)[:, None] * channels + incoming[None, :]).ravel()
    if incoming is not None and isinstance(op, layers.DepthwiseConv1D | layers.DepthwiseConv2D):
        weights = [np.take(w, incoming, axis=-2 if w.ndim > 1 else 0) for w in weights]
    elif incoming is not None:  # per-channel weights (batch norm, PReLU): cut the channel axis
        weights = [np.take(w, incoming, axis=-1) for w in weights]
    if weights:
        new.set_weights(weights)
    _copy_assets(op, new)
    return incoming


def _without_build_configs(config):
    """`config` without the input shapes layers were built with (wrapped layers' included):
    those are the old widths; the layers build when called."""
    if isinstance(config, dict):
        return {k: _without_build_configs(v) for k, v in config.items() if k != "build_config"}
    if isinstance(config, list):
        return [_without_build_configs(v) for v in config]
    return config


def _copy_assets(old, new) -> None:
    """Copies state Keras saves as assets, not weights (a TextVectorization's vocabulary)."""
    if hasattr(old, "save_assets") and hasattr(new, "load_assets"):
        with tempfile.TemporaryDirectory() as tmp:
            old.save_assets(tmp)
            new.load_assets(tmp)


def layer_widths(model: keras.Model) -> dict[str, int]:
    """The widths `resize` can change: filters or units of every convolution, dense and
    recurrent layer that does not produce a model output, and the vector size of every
    embedding the model trains (fixed pretrained vectors keep theirs)."""
    graph = _Graph(model)
    found = {}
    for op in graph.order:
        if id(op) in graph.output_ops:
            continue
        layer = op.forward_layer if isinstance(op, layers.Bidirectional) else op
        if isinstance(layer, layers.RNN) and hasattr(layer.cell, "units"):
            found[op.name] = layer.cell.units
        elif isinstance(op, layers.Embedding) and op.trainable:
            found[op.name] = op.output_dim
        elif _is_reader(op):
            found[op.name] = op.units if isinstance(op, layers.Dense) else op.filters
    return found


def scaled_widths(model: keras.Model, factor: float) -> dict[str, int]:
    """Every width of `layer_widths(model)` times `factor`, rounded, at least 1."""
    return {name: max(1, round(w * factor)) for name, w in layer_widths(model).items()}


def resize(model: keras.Model, widths: Mapping[str, int], copy_fixed: bool = True) -> keras.Model:
    """A fresh copy of `model`'s architecture with other widths (filters, units).

    Trainable layers start from new random weights; what the model does not train (frozen
    layers such as fixed pretrained word vectors, a vectorizer's vocabulary) is copied.

    Args:
        model: a functional or Sequential model of built-in layers.
        widths: layer name -> its new number of filters, units (recurrent layers too, also
            inside `Bidirectional`) or embedding vector size.
        copy_fixed: copy the frozen layers' weights and the assets; False only counts.
    """
    config = _without_build_configs(model.get_config())
    found = set()
    for entry in config["layers"]:
        name = entry["config"]["name"]
        if name in widths:
            inner = entry["config"]
            if entry["class_name"] == "Bidirectional":
                for part in ("layer", "backward_layer"):
                    if part in inner and inner[part]:
                        inner[part]["config"]["units"] = widths[name]
            else:
                key = next(k for k in ("units", "filters", "output_dim") if k in inner)
                inner[key] = widths[name]
            found.add(name)
    missing = set(widths) - found
    if missing:
        raise ConfigError(f"No layer named {sorted(missing)} to resize in {model.name}.")
    resized = model.__class__.from_config(config)
    for old in model.layers if copy_fixed else []:
        new = resized.get_layer(old.name)
        shapes = [tuple(w.shape) for w in old.weights]
        if not old.trainable and shapes == [tuple(w.shape) for w in new.weights]:
            new.set_weights(old.get_weights())  # fixed parts, e.g. pretrained word vectors
        _copy_assets(old, new)
    return resized
