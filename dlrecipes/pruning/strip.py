"""From a model being pruned to a plain Keras model: zeros in place, no masks, no optimizer."""

from __future__ import annotations

import tempfile
from pathlib import Path

import keras
from keras import ops

from dlrecipes.pruning.magnitude import MaskConstraint


def without_optimizer(model: keras.Model) -> keras.Model:
    """A copy of `model` with its weights and nothing else: no optimizer, no compile state.

    It goes through a `.keras` file and back in safe mode, so what it returns is what a saved
    file of it gives: compare file sizes of such copies, or a size measures optimizer state.
    """
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.keras"
        model.save(path)
        return keras.saving.load_model(path, compile=False, safe_mode=True)


def strip(model: keras.Model) -> keras.Model:
    """A plain copy of a pruned model: pruned weights zero, no masks, no optimizer state.

    `model` itself keeps its weights but loses its masks: it trains on as a dense model.

    Returns:
        A new uncompiled model of built-in layers that saves small and reloads in safe mode.
    """
    for variable in model.variables:
        if isinstance(variable.constraint, MaskConstraint):
            masked = variable.constraint(variable)
            variable.constraint = variable.constraint.inner
            variable.assign(ops.convert_to_numpy(masked))
    return without_optimizer(model)
