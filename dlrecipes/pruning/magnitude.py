"""Magnitude pruning during training, with built-in Keras only (no wrapper layers).

Each pruned weight gets a mask variable and, as its `constraint`, `MaskConstraint`: Keras 3
optimizers apply a variable's constraint right after every update, inside the compiled train step
(XLA or not, and per replica under a distribution strategy), so a pruned weight is exactly zero
after every step. The masks themselves change only at the steps the schedule names, where
`MagnitudePruning` (a callback, passed to `fit`) keeps the largest weights by magnitude.

A variable's `constraint` is not part of its layer's config, so checkpoints saved during training
are plain Keras models that reload in safe mode; `strip` removes masks and optimizer state.

Example:

>>> pruning = prune_low_magnitude(model, PolynomialDecay(0.0, 0.8, begin_step=0, end_step=500))
>>> model.compile(...)
>>> model.fit(data, epochs=3, callbacks=[pruning])
>>> small = strip(model)
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping

import keras
import numpy as np
from keras import ops

from dlrecipes.pruning.schedules import PruningSchedule
from dlrecipes.pruning.targets import Target, select


def magnitude_mask(weights: np.ndarray, sparsity: float) -> np.ndarray:
    """A 0/1 mask keeping the `k` weights of largest magnitude, zeroing the rest.

    `k = max(round(n * (1 - sparsity)), 1)` in float32, tfmot's count; unlike tfmot, ties at
    the threshold do not keep extra weights, so exactly `k` are kept.
    """
    flat = np.abs(weights).ravel()
    keep = max(int(np.round(np.float32(flat.size) * (np.float32(1) - np.float32(sparsity)))), 1)
    mask = np.zeros(flat.size, dtype=weights.dtype)
    if keep >= flat.size:
        mask[:] = 1
    else:
        mask[np.argpartition(-flat, keep - 1)[:keep]] = 1
    return mask.reshape(weights.shape)


class MaskConstraint(keras.constraints.Constraint):
    """Multiplies a weight by its mask after each optimizer step (after any constraint it had).

    Args:
        mask: a variable of the weight's shape holding 0 (pruned) or 1 (kept).
        inner: the constraint the weight had before pruning, applied first; None if none.
    """

    def __init__(self, mask: keras.Variable, inner=None) -> None:
        self.mask = mask
        self.inner = inner

    def __call__(self, w):
        if self.inner is not None:
            w = self.inner(w)
        return w * ops.cast(self.mask, w.dtype)


def _scope_of(variable: keras.Variable):
    """The distribution strategy scope `variable` was made in, so its mask is made alike."""
    strategy = getattr(variable.value, "_distribute_strategy", None)
    return strategy.scope() if strategy is not None else contextlib.nullcontext()


class MagnitudePruning(keras.callbacks.Callback):
    """Keeps the masks of a model's pruned weights up to date with their schedules.

    Made by `prune_low_magnitude`; pass it to `fit`, after `BackupAndRestore` if any. When
    training begins, the masks are where the weights are not zero (a restored backup brings its
    pruned weights back). Before the update at each step the schedule names, it recomputes every
    mask from the current weights and zeroes the pruned weights; the masks' constraints keep
    them zero in between.

    Args:
        model: a built model, not yet trained by `fit` (or retrained after this is made).
        targets: the weights to prune (`targets.select`).
    """

    def __init__(self, model: keras.Model, targets: list[Target]) -> None:
        super().__init__()
        self.targets = targets
        self.masks: dict[str, keras.Variable] = {}
        for target in targets:
            variable = target.variable
            with _scope_of(variable):
                mask = keras.Variable(
                    ops.convert_to_numpy(variable) != 0,
                    dtype=variable.dtype,
                    trainable=False,
                    name=f"{variable.name}_mask",
                )
            self.masks[target.name] = mask
            variable.constraint = MaskConstraint(mask, variable.constraint)
        # A train step traced before the constraints existed would not apply them.
        model.train_function = None

    def on_train_begin(self, logs: dict | None = None) -> None:
        # Weights restored from a backup (callbacks before this one) bring their zeros back.
        for target in self.targets:
            self.masks[target.name].assign(ops.convert_to_numpy(target.variable) != 0)

    def on_train_batch_begin(self, batch: int, logs: dict | None = None) -> None:
        self.update(int(ops.convert_to_numpy(self.model.optimizer.iterations)))

    def update(self, step: int) -> list[str]:
        """Recomputes the masks the schedules name at `step`; returns the weights updated."""
        updated = []
        for target in self.targets:
            should_prune, sparsity = target.schedule(step)
            if not should_prune:
                continue
            weights = ops.convert_to_numpy(target.variable)
            mask = magnitude_mask(weights, sparsity)
            self.masks[target.name].assign(mask)
            target.variable.assign(weights * mask)
            updated.append(target.name)
        return updated


def prune_low_magnitude(
    model: keras.Model,
    schedule: PruningSchedule,
    layers: Mapping[str, float | PruningSchedule | None] | None = None,
) -> MagnitudePruning:
    """Prepares `model` for magnitude pruning and returns the callback that drives it.

    Call it on a built model before `fit` (under the same distribution strategy scope as the
    model, if any), then pass the callback to `fit`. Weights that are zero already stay zero
    until their first mask update, so a resumed run continues where it was.

    Args:
        model: the model to prune, in place.
        schedule: the sparsity schedule of every chosen layer without one of its own.
        layers: None prunes every prunable layer the model trains; a mapping from layer names
            to None (use `schedule`), a final sparsity, or a schedule chooses layers and their
            sparsity. See `dlrecipes.pruning.targets.select`.

    Returns:
        The `MagnitudePruning` callback.

    Raises:
        ConfigError: a named layer does not exist or cannot be pruned.
    """
    return MagnitudePruning(model, select(model, schedule, layers))
