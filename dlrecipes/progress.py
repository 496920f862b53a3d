"""Progress bars for long steps, on a terminal only.

Keras' own bar (`fit(verbose=1)`) is recorded by a log as escape codes, so recipes fit with
`verbose=0` and `dlrecipes.callbacks.EpochProgress`; TFDS shows tqdm bars while it prepares a
dataset. Steps of our own that take more than a few seconds (a transformer pass over the
training texts, a teacher's predictions, pruning passes) use `bar`, which is tqdm with a count,
a rate and the time left on a terminal and silent in a log that is not one, inside `step`,
which says what the step does and, in a log too, when it is done.

Example:

>>> with progress.step("MiniLM word vectors"):
...     for batch in progress.bar(batches, desc="MiniLM word vectors", unit="batch"):
...         ...
"""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Iterable, Iterator
from typing import TextIO, TypeVar

from tqdm import auto as tqdm

T = TypeVar("T")


def interactive() -> bool:
    """Whether standard error is a terminal (where TFDS draws its bars)."""
    return sys.stderr.isatty()


def terminal() -> TextIO | None:
    """The stream bars are drawn on: standard error when it is a terminal, else standard output
    when it is one (`2> errors.log`), else None (a log: no bars)."""
    if interactive():
        return sys.stderr
    return sys.stdout if sys.stdout is not None and sys.stdout.isatty() else None


def new_bar(*, total: int | None, desc: str, unit: str = "it") -> tqdm.tqdm | None:
    """A tqdm bar (count, rate, time left) on the terminal, to `update` by hand; None in a log.

    The bar is cleared when closed (`leave=False`): what stays is the line the caller prints.
    """
    stream = terminal()
    if stream is None:
        return None
    return tqdm.tqdm(
        total=total, desc=desc, unit=unit, leave=False, file=stream, dynamic_ncols=True
    )


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
    if total is None and hasattr(items, "__len__"):
        total = len(items)
    shown = new_bar(total=total, desc=desc, unit=unit)
    if shown is None:
        yield from items
        return
    with shown:
        for item in items:
            yield item
            shown.update(1)


@contextlib.contextmanager
def step(what: str, *, count: int | None = None, unit: str = "") -> Iterator[None]:
    """Prints `<what> ...` before the block and `  done in 12s.` after it, so a log (where no bar
    is drawn) still says what takes the time, and how long it took.

    Args:
        what: what the block does, e.g. "Teacher predictions for 47,500 texts".
        count, unit: with both, the rate too: `  done in 415s (115 texts/s).`
    """
    print(f"{what} ...", flush=True)
    started = time.monotonic()
    yield
    seconds = time.monotonic() - started
    rate = f" ({count / max(seconds, 1e-9):,.0f} {unit}/s)" if count and unit else ""
    print(f"  done in {seconds:.0f}s{rate}.", flush=True)
