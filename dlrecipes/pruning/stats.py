"""How sparse and how big a model is: per-layer sparsity, parameters, non-zeros, FLOPs."""

from __future__ import annotations

import math

import keras
import numpy as np
from keras import layers, ops

from dlrecipes.pruning.targets import prunable_weights, walk


def _nonzero_fraction(variable: keras.Variable) -> float:
    values = ops.convert_to_numpy(variable)
    return np.count_nonzero(values) / max(1, values.size)


def sparsity_report(model: keras.Model) -> list[dict]:
    """One row per prunable weight: layer, weight, shape, parameters, zeros, sparsity."""
    rows = []
    for layer in walk(model):
        for variable in prunable_weights(layer):
            values = ops.convert_to_numpy(variable)
            zeros = int(values.size - np.count_nonzero(values))
            rows.append(
                {
                    "layer": layer.name,
                    "weight": variable.path,
                    "shape": list(variable.shape),
                    "params": int(values.size),
                    "zeros": zeros,
                    "sparsity": zeros / max(1, values.size),
                }
            )
    return rows


def count(model: keras.Model) -> dict[str, int]:
    """Parameters (every weight, moving statistics included) and how many are not zero."""
    params = nonzeros = 0
    for variable in model.weights:
        values = ops.convert_to_numpy(variable)
        params += values.size
        nonzeros += int(np.count_nonzero(values))
    return {"params": params, "nonzeros": nonzeros}


def _spatial(shape) -> int:
    """Positions an output is computed at: every dimension but batch and channels."""
    return math.prod(d for d in shape[1:-1] if d is not None)


def _input_shape(layer: keras.layers.Layer) -> tuple:
    """The shape of the layer's (first) input; masks passed along are not counted."""
    inputs = layer.input
    return tuple((inputs[0] if isinstance(inputs, list | tuple) else inputs).shape)


def _layer_flops(layer: keras.layers.Layer) -> tuple[float, float]:
    """(dense, sparse) FLOPs of one example through `layer`: 2 per multiply-add, the sparse
    count skipping multiplications by pruned (zero) weights."""
    if isinstance(layer, layers.Bidirectional):
        f, s = _rnn_flops(layer.forward_layer, _input_shape(layer))
        bf, bs = _rnn_flops(layer.backward_layer, _input_shape(layer))
        return f + bf, s + bs
    if isinstance(layer, layers.RNN) and hasattr(layer.cell, "recurrent_kernel"):
        return _rnn_flops(layer, _input_shape(layer))
    weights = prunable_weights(layer)
    if not weights or isinstance(layer, layers.Embedding):
        return 0.0, 0.0
    positions = _spatial(layer.output.shape)
    if isinstance(layer, (layers.SeparableConv1D, layers.SeparableConv2D)):
        dense = 2.0 * positions * sum(math.prod(w.shape) for w in weights)
        sparse = 2.0 * positions * sum(math.prod(w.shape) * _nonzero_fraction(w) for w in weights)
        return dense, sparse
    kernel = weights[0]
    macs = positions * math.prod(kernel.shape)
    if isinstance(layer, (layers.Conv1DTranspose, layers.Conv2DTranspose, layers.Conv3DTranspose)):
        macs = _spatial(_input_shape(layer)) * math.prod(kernel.shape)
    return 2.0 * macs, 2.0 * macs * _nonzero_fraction(kernel)


def _rnn_flops(layer: keras.layers.Layer, input_shape) -> tuple[float, float]:
    steps = input_shape[1] or 1
    cell = layer.cell
    dense = sparse = 0.0
    for w in (cell.kernel, cell.recurrent_kernel):
        n = math.prod(w.shape)
        dense += 2.0 * steps * n
        sparse += 2.0 * steps * n * _nonzero_fraction(w)
    return dense, sparse


def flops(model: keras.Model) -> dict[str, float]:
    """FLOPs per example of the layers with kernels (convolutions, dense, recurrent).

    Returns:
        `flops`, what a dense kernel computes, and `sparse_flops`, what remains when products
        with zero weights are skipped (what sparse kernels could reach; CPUs running dense
        kernels do not).
    """
    dense = sparse = 0.0
    for layer in walk(model):
        d, s = _layer_flops(layer)
        dense += d
        sparse += s
    return {"flops": dense, "sparse_flops": sparse}
