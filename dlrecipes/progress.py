"""Progress bars for long steps outside `fit`, on a terminal only.

Keras shows a bar for `fit`; TFDS shows tqdm bars while it prepares a dataset. Steps of our own
that take more than a few seconds (a transformer pass over the training texts, a teacher's
predictions, pruning passes) use `bar`, which is tqdm with a count and time left on a terminal
and silent in a log that is not one.

Example:

>>> for batch in progress.bar(batches, total=len(batches), desc="MiniLM vectors"):
...     ...
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator
from typing import TypeVar

from tqdm import auto as tqdm

T = TypeVar("T")


def interactive() -> bool:
    """Whether standard error is a terminal (bars are drawn only there)."""
    return sys.stderr.isatty()


def bar(
    items: Iterable[T], *, total: int | None = None, desc: str = "", unit: str = "it"
) -> Iterator[T]:
    """`items`, with a tqdm bar (count, rate, time left) on a terminal; unchanged elsewhere.

    Args:
        items: what to iterate over.
        total: how many items there are, when `items` has no length.
        desc: what the bar counts, e.g. "MiniLM vectors".
        unit: the unit of one item, e.g. "batch".
    """
    if not interactive():
        yield from items
        return
    yield from tqdm.tqdm(items, total=total, desc=desc, unit=unit, leave=False, file=sys.stderr)
