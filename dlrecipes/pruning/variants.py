"""The models a pruning run compares, and how each is made from the source model.

- `source`: the source model itself, dense (the reference of every ratio);
- `magnitude`: its kernels pruned to a sparsity while it is fine-tuned (`magnitude_pruning`);
- `channels`: a fraction of its channels removed (`structured.narrow`), then fine-tuned;
- `baseline`: a narrower copy of its architecture with as many weights as a magnitude-pruned
  model has non-zeros (`small_dense`), trained from scratch, then fine-tuned like the others.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

import keras
import numpy as np

from dlrecipes.errors import ConfigError
from dlrecipes.pruning.magnitude import MagnitudePruning, prune_low_magnitude
from dlrecipes.pruning.schedules import ConstantSparsity, PolynomialDecay
from dlrecipes.pruning.structured import channel_scores, resize, scaled_widths
from dlrecipes.pruning.targets import select


@dataclasses.dataclass(frozen=True)
class Variant:
    """One model of the comparison: its `name` (its folder in the run), `kind` and `amount`
    (sparsity or fraction of channels; for `baseline`, the sparsity whose non-zeros it matches)."""

    name: str
    kind: str
    amount: float = 0.0


def plan(
    source: keras.Model,
    sparsities: tuple[float, ...],
    channel_fractions: tuple[float, ...],
    baseline_sparsity: float,
    per_layer: Mapping[str, float] | None = None,
) -> list[Variant]:
    """Every variant a run makes, dense first; structured ones only for a model with channels
    to rank (batch-norm convnets).

    Raises:
        ConfigError: `per_layer` (`--layer-sparsity`) names a layer the magnitude variants
            cannot prune: refused here, before the run starts, not once the dense model is done.
    """
    select(source, ConstantSparsity(), per_layer or {})
    out = [Variant("dense", "source")]
    out += [Variant(f"unstructured-{round(100 * s)}", "magnitude", s) for s in sparsities]
    if channel_scores(source):
        out += [Variant(f"structured-{round(100 * f)}", "channels", f) for f in channel_fractions]
    out.append(Variant("small-dense", "baseline", baseline_sparsity))
    return out


def layer_sparsity(items: tuple[str, ...]) -> dict[str, float]:
    """`("predictions=0.5", ...)` (the `--layer-sparsity` flag) as {layer name: sparsity}."""
    pairs = {}
    for item in items:
        name, _, value = item.partition("=")
        try:
            pairs[name.strip()] = float(value)
        except ValueError:
            raise ConfigError(
                f"--layer-sparsity {item!r} is not NAME=FRACTION, e.g. predictions=0.5."
            ) from None
    return pairs


def magnitude_pruning(
    model: keras.Model,
    sparsity: float,
    steps: int,
    *,
    end: float,
    frequency: int,
    dense_below: int,
    per_layer: Mapping[str, float],
) -> MagnitudePruning:
    """Prepares `model` to reach `sparsity` over the first `end` of `steps` training steps
    (Zhu & Gupta's cubic, masks recomputed every `frequency` steps) and returns the callback
    that drives it (pass it to `fit` after the backup callbacks).

    Layers with fewer than `dense_below` weights stay dense; `per_layer` gives layers a
    sparsity of their own (0: dense).
    """
    schedule = PolynomialDecay(
        initial_sparsity=0.0,
        final_sparsity=sparsity,
        begin_step=0,
        end_step=max(1, round(end * steps) - 1),
        frequency=frequency,
    )
    select(model, schedule, per_layer)  # refuses names that cannot be pruned
    sizes: dict[str, int] = {}
    for target in select(model, schedule):
        sizes[target.layer] = sizes.get(target.layer, 0) + int(np.prod(target.variable.shape))
    chosen = {name: None for name, n in sizes.items() if n >= dense_below} | dict(per_layer)
    chosen = {name: s for name, s in chosen.items() if s != 0}
    return prune_low_magnitude(model, schedule, chosen)


def small_dense(source: keras.Model, weights: int) -> keras.Model:
    """A fresh copy of `source`'s architecture, every layer narrowed by one factor (found by
    bisection) so that it has about `weights` weights."""
    low, high = 0.0, 1.0
    for _ in range(12):
        mid = (low + high) / 2
        size = resize(source, scaled_widths(source, mid), copy_fixed=False).count_params()
        low, high = (mid, high) if size < weights else (low, mid)
    return resize(source, scaled_widths(source, high))


def pick_best(rows: list[dict], tolerance: float) -> dict:
    """The smallest pruned model (magnitude or channels; by gzip size) within `tolerance` of the
    dense model's validation accuracy, else the most accurate pruned one."""
    pruned = [r for r in rows if r["kind"] in ("magnitude", "channels")]
    close = [r for r in pruned if r["val_accuracy"] >= rows[0]["val_accuracy"] - tolerance]
    if close:
        return min(close, key=lambda r: (r["gzip_kb"], -r["val_accuracy"]))
    return max(pruned, key=lambda r: r["val_accuracy"])
