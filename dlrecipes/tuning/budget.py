"""What a Hyperband search costs before it starts: its trials and the epochs they train in all.

keras-tuner's `HyperbandOracle` (1.4.8) runs brackets `b = B-1 ... 0`, where `B` counts how many
times `max_epochs` divides by `factor` down to 1. Bracket `b` starts `size(b, 0)` trials of
`epochs(b, 0)` epochs; each later round `r` keeps the best `size(b, r)` of the round before and
trains them on from `epochs(b, r - 1)` to `epochs(b, r)` epochs (a continued trial trains only
the difference: `tuner/epochs - tuner/initial_epoch`). The formulas below are the oracle's own
(`_get_num_brackets`, `_get_size`, `_get_epochs`), written the same way so they round the same;
`tests/test_tuning.py` checks them against the oracle itself.

Example:

>>> hyperband_budget(20)
Budget(trials=30, epochs=226)
"""

from __future__ import annotations

import math
from typing import NamedTuple

from dlrecipes.tuning.tuners import HYPERBAND_FACTOR


class Budget(NamedTuple):
    """A search's size: trials started, and epochs trained over all of them."""

    trials: int
    epochs: int


def hyperband_budget(max_epochs: int, factor: int = HYPERBAND_FACTOR) -> Budget:
    """The trials and epochs of one Hyperband iteration with `max_epochs`, as keras-tuner runs it
    (when every trial completes and its random draws do not run out of new values).

    Args:
        max_epochs: epochs of the longest trial (`tune --max-epochs`).
        factor: the fraction kept, and the growth of epochs, from one round to the next.
    """
    brackets, epochs_left = 0, max_epochs
    while epochs_left >= 1:
        epochs_left = epochs_left / factor
        brackets += 1
    bracket0_end_size = math.ceil(1 + math.log(max_epochs, factor))

    def size(bracket: int, round_num: int) -> int:
        bracket_end_size = bracket0_end_size / (bracket + 1)
        return math.ceil(bracket_end_size * factor ** (bracket - round_num))

    def epochs(bracket: int, round_num: int) -> int:
        return math.ceil(max_epochs / factor ** (bracket - round_num))

    trials = trained = 0
    for bracket in range(brackets):
        for round_num in range(bracket + 1):
            before = epochs(bracket, round_num - 1) if round_num else 0
            trials += size(bracket, round_num)
            trained += size(bracket, round_num) * (epochs(bracket, round_num) - before)
    return Budget(trials, trained)
