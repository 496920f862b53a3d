"""When to prune and to what sparsity: constant, and polynomial decay (Zhu & Gupta 2017).

A schedule maps the optimizer's step (the number of updates done before the current one) to
`(should_prune, sparsity)`. Masks are recomputed only at steps where `should_prune` is true: every
`frequency` steps from `begin_step` up to and including `end_step`. The values are those of
TensorFlow Model Optimization's `ConstantSparsity` and `PolynomialDecay` for the same arguments,
computed in float32 like theirs, so a schedule tuned with tfmot carries over unchanged.

Example:

>>> schedule = PolynomialDecay(0.0, 0.8, begin_step=0, end_step=1000, frequency=100)
>>> should_prune, sparsity = schedule(500)
>>> should_prune, round(sparsity, 4)
(True, 0.7)
"""

from __future__ import annotations

import dataclasses

import numpy as np

from dlrecipes.errors import ConfigError


def _check_sparsity(name: str, value: float) -> None:
    if not 0.0 <= value < 1.0:
        raise ConfigError(
            f"{name} must be in [0, 1) (a fraction of the weights set to zero); got {value}."
        )


def _check_steps(begin_step: int, end_step: int, frequency: int, forever_ok: bool) -> None:
    if begin_step < 0:
        raise ConfigError(f"begin_step must be >= 0; got {begin_step}.")
    if end_step == -1 and not forever_ok:
        raise ConfigError(
            "end_step=-1 (prune forever) needs a constant sparsity; a polynomial decay "
            "needs the step where it reaches its final sparsity."
        )
    if end_step != -1 and end_step < begin_step:
        raise ConfigError(
            f"end_step ({end_step}) is before begin_step ({begin_step}); pruning would never "
            "run. Pass an end_step >= begin_step (or -1 with a constant sparsity)."
        )
    if frequency <= 0:
        raise ConfigError(f"frequency must be a positive number of steps; got {frequency}.")


class PruningSchedule:
    """The steps at which masks are updated, and to what sparsity; subclasses say which.

    Subclasses have `begin_step` (first step at which masks are computed), `end_step` (the last,
    inclusive; -1 = no end), `frequency` (every that many steps from `begin_step`) and
    `final_sparsity`.
    """

    begin_step: int
    end_step: int
    frequency: int
    final_sparsity: float

    def should_prune(self, step: int) -> bool:
        """Whether masks are recomputed before the update at `step` (tfmot's rule)."""
        in_range = step >= self.begin_step and (step <= self.end_step or self.end_step < 0)
        return in_range and (step - self.begin_step) % self.frequency == 0

    def sparsity(self, step: int) -> float:
        """The fraction of weights to set to zero at `step`."""
        raise NotImplementedError

    def with_final_sparsity(self, sparsity: float) -> PruningSchedule:
        """The same schedule ending at `sparsity` instead (for a per-layer choice)."""
        raise NotImplementedError

    def __call__(self, step: int) -> tuple[bool, float]:
        """`(should_prune, sparsity)` at `step`."""
        return self.should_prune(step), self.sparsity(step)


@dataclasses.dataclass(frozen=True)
class ConstantSparsity(PruningSchedule):
    """The same sparsity at every pruning step, as tfmot's `ConstantSparsity`.

    Args:
        target_sparsity: fraction of weights set to zero, in [0, 1).
        begin_step, end_step, frequency: as in `PruningSchedule`; `end_step=-1` prunes for as
            long as training runs.
    """

    target_sparsity: float = 0.5
    begin_step: int = 0
    end_step: int = -1
    frequency: int = 100

    def __post_init__(self) -> None:
        _check_steps(self.begin_step, self.end_step, self.frequency, forever_ok=True)
        _check_sparsity("target_sparsity", self.target_sparsity)

    def sparsity(self, step: int) -> float:
        return float(np.float32(self.target_sparsity))

    @property
    def final_sparsity(self) -> float:
        return self.target_sparsity

    def with_final_sparsity(self, sparsity: float) -> ConstantSparsity:
        return dataclasses.replace(self, target_sparsity=sparsity)


@dataclasses.dataclass(frozen=True)
class PolynomialDecay(PruningSchedule):
    """Sparsity rising fast at first, then levelling off: Zhu & Gupta 2017.

    `s_t = s_f + (s_i - s_f) * (1 - p)^power` with `p = clip((t - t0) / (t_end - t0), 0, 1)`,
    in float32 as in tfmot's `PolynomialDecay`. Before `begin_step` it is `s_i`, after
    `end_step` `s_f`. One difference: with `begin_step == end_step` tfmot divides 0 by 0 at that
    step and gets NaN; here it is `s_f` there.

    Args:
        initial_sparsity: sparsity at `begin_step`, in [0, 1).
        final_sparsity: sparsity from `end_step` on, in [0, 1).
        begin_step, end_step, frequency: as in `PruningSchedule`; `end_step` must be given.
        power: the exponent; 3 in the paper.
    """

    initial_sparsity: float = 0.0
    final_sparsity: float = 0.5
    begin_step: int = 0
    end_step: int = 1000
    power: float = 3.0
    frequency: int = 100

    def __post_init__(self) -> None:
        _check_steps(self.begin_step, self.end_step, self.frequency, forever_ok=False)
        _check_sparsity("initial_sparsity", self.initial_sparsity)
        _check_sparsity("final_sparsity", self.final_sparsity)

    def sparsity(self, step: int) -> float:
        f32 = np.float32
        span = self.end_step - self.begin_step
        if span == 0:
            p = f32(0.0 if step < self.begin_step else 1.0)
        else:
            p = np.minimum(f32(1.0), np.maximum(f32(0.0), f32(step - self.begin_step) / f32(span)))
        s_i, s_f = f32(self.initial_sparsity), f32(self.final_sparsity)
        return float((s_i - s_f) * np.power(f32(1.0) - p, f32(self.power)) + s_f)

    def with_final_sparsity(self, sparsity: float) -> PolynomialDecay:
        return dataclasses.replace(
            self,
            final_sparsity=sparsity,
            initial_sparsity=min(self.initial_sparsity, sparsity),
        )
