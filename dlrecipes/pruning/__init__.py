"""Pruning for Keras 3: magnitude pruning during training and structured (channel) pruning.

- `schedules`: `ConstantSparsity`, `PolynomialDecay` (tfmot's values for the same arguments).
- `magnitude`: `prune_low_magnitude(model, schedule, layers)` -> the callback to pass to `fit`;
  masks applied after every optimizer step through variable constraints.
- `strip`: `strip(model)` -> a plain model with the zeros in place, no masks, no optimizer state.
- `stats`: per-layer `sparsity_report`, parameter and non-zero `count`, `flops`.
- `structured`: `narrow(model, fraction)` -> a physically narrower model; `resize` for a fresh one.
- `measure`, `compare`: gzip size and CPU speed, models side by side (TFLite latency too); the
  kept model's exports go through `dlrecipes.exporting`, as every recipe's do.
"""

from dlrecipes.pruning.magnitude import MagnitudePruning, MaskConstraint, prune_low_magnitude
from dlrecipes.pruning.schedules import ConstantSparsity, PolynomialDecay, PruningSchedule
from dlrecipes.pruning.stats import count, flops, sparsity_report
from dlrecipes.pruning.strip import strip, without_optimizer
from dlrecipes.pruning.structured import (
    channel_scores,
    layer_widths,
    narrow,
    resize,
    scaled_widths,
)
from dlrecipes.pruning.targets import prunable_weights, select

__all__ = [
    "ConstantSparsity",
    "MagnitudePruning",
    "MaskConstraint",
    "PolynomialDecay",
    "PruningSchedule",
    "channel_scores",
    "count",
    "flops",
    "layer_widths",
    "narrow",
    "prunable_weights",
    "prune_low_magnitude",
    "resize",
    "scaled_widths",
    "select",
    "sparsity_report",
    "strip",
    "without_optimizer",
]
