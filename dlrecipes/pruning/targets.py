"""Which weights of a model magnitude pruning may zero: kernels, never biases or normalization.

Prunable: the kernels of `Dense`, `EinsumDense`, convolutions (1D/2D/3D, transposed, depthwise,
separable), the vectors of `Embedding`, and the input and recurrent kernels of recurrent layers
(`LSTM`, `GRU`, `SimpleRNN`), also inside `Bidirectional`. Layers are named as in `model.layers`
(layers of a nested model by their own names).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Mapping

import keras
from keras import layers

from dlrecipes.errors import ConfigError
from dlrecipes.pruning.schedules import PruningSchedule

_KERNEL_LAYERS = (
    layers.Dense,
    layers.EinsumDense,
    layers.Conv1D,
    layers.Conv2D,
    layers.Conv3D,
    layers.Conv1DTranspose,
    layers.Conv2DTranspose,
    layers.Conv3DTranspose,
    layers.DepthwiseConv1D,
    layers.DepthwiseConv2D,
)


@dataclasses.dataclass(frozen=True)
class Target:
    """One weight to prune: the layer it belongs to, the variable, and its schedule."""

    layer: str
    variable: keras.Variable
    schedule: PruningSchedule

    @property
    def name(self) -> str:
        """`layer/weight`, e.g. `bilstm_1/forward_lstm/lstm_cell/kernel`."""
        return self.variable.path


def prunable_weights(layer: keras.layers.Layer) -> list[keras.Variable]:
    """The weights of `layer` that magnitude pruning may zero ([] for any other layer)."""
    if isinstance(layer, layers.Bidirectional):
        return prunable_weights(layer.forward_layer) + prunable_weights(layer.backward_layer)
    if isinstance(layer, layers.RNN) and hasattr(layer.cell, "recurrent_kernel"):
        return [layer.cell.kernel, layer.cell.recurrent_kernel]
    if isinstance(layer, (layers.SeparableConv1D, layers.SeparableConv2D)):
        return [layer.depthwise_kernel, layer.pointwise_kernel]
    if isinstance(layer, _KERNEL_LAYERS):
        return [layer.kernel]
    if isinstance(layer, layers.Embedding):
        return [layer.embeddings]
    return []


def walk(model: keras.Model) -> Iterator[keras.layers.Layer]:
    """Every layer of `model`, the layers of nested models included (not the models)."""
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            yield from walk(layer)
        else:
            yield layer


def select(
    model: keras.Model,
    schedule: PruningSchedule,
    layers_: Mapping[str, float | PruningSchedule | None] | None = None,
) -> list[Target]:
    """The weights to prune and the schedule of each.

    Args:
        model: a built model.
        schedule: the schedule of every chosen layer without one of its own.
        layers_: None prunes every prunable layer the model trains (frozen ones, such as fixed
            pretrained word vectors, are left alone unless named). A mapping names the layers
            to prune, each with None (use `schedule`), a final sparsity (`schedule` ending
            there) or a schedule of its own.

    Raises:
        ConfigError: a named layer does not exist or has no prunable weights.
    """
    by_name = {layer.name: layer for layer in walk(model)}
    prunable = [name for name, layer in by_name.items() if prunable_weights(layer)]
    if layers_ is None:
        layers_ = {name: None for name in prunable if by_name[name].trainable}
    targets = []
    for name, choice in layers_.items():
        if name not in by_name:
            raise ConfigError(
                f"No layer named {name!r} in {model.name}; prunable layers: {', '.join(prunable)}."
            )
        if name not in prunable:
            kind = type(by_name[name]).__name__
            raise ConfigError(
                f"Layer {name!r} ({kind}) has no weights magnitude pruning can zero (biases and "
                f"normalization are left alone); prunable layers: {', '.join(prunable)}."
            )
        if choice is None:
            layer_schedule = schedule
        elif isinstance(choice, PruningSchedule):
            layer_schedule = choice
        else:
            layer_schedule = schedule.with_final_sparsity(float(choice))
        targets += [Target(name, v, layer_schedule) for v in prunable_weights(by_name[name])]
    return targets
