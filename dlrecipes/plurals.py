"""Counting things in messages: `count(1, "step")` is "1 step", `count(2, "step")` "2 steps"."""

from __future__ import annotations


def count(n: int, noun: str, plural: str | None = None) -> str:
    """`n` and `noun`, the noun in the plural unless `n` is 1.

    Example:

    >>> count(1, "trial"), count(3, "trial"), count(2, "copy", "copies")
    ('1 trial', '3 trials', '2 copies')
    """
    return f"{n} {noun if n == 1 else plural or noun + 's'}"
