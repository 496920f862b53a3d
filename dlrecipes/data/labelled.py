"""Lists of labelled texts: exact-duplicate removal and deterministic stratified splits."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

SPLITS = ("train", "validation", "test")


def dedupe(texts: Sequence[str], labels: Sequence[int]) -> tuple[list[int], list[int]]:
    """Indices to keep after removing exact duplicate texts, and indices of conflicting texts.

    The first copy of a duplicated text is kept when every copy carries the same label. A text
    that appears with two different labels says nothing reliable about either, so every copy of
    it is dropped; those indices are returned second, so callers can say so.
    """
    label_sets: dict[str, set[int]] = {}
    for text, label in zip(texts, labels, strict=True):
        label_sets.setdefault(text, set()).add(int(label))
    keep, conflicting, seen = [], [], set()
    for i, text in enumerate(texts):
        if len(label_sets[text]) > 1:
            conflicting.append(i)
        elif text not in seen:
            seen.add(text)
            keep.append(i)
    return keep, conflicting


def stratified_split(
    labels: Sequence[int], fractions: tuple[float, float] = (0.1, 0.1), seed: int = 0
) -> dict[str, np.ndarray]:
    """Splits example indices into train / validation / test, class by class.

    Args:
        labels: one integer class per example.
        fractions: the validation and test fractions taken from every class (at least one
            example each).
        seed: seed of the per-class shuffle; the same labels and seed give the same split.

    Returns:
        `{"train": idx, "validation": idx, "test": idx}`, each sorted.
    """
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    out: dict[str, list[int]] = {name: [] for name in SPLITS}
    for label in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == label))
        n_val = max(1, round(fractions[0] * len(members)))
        n_test = max(1, round(fractions[1] * len(members)))
        out["validation"] += members[:n_val].tolist()
        out["test"] += members[n_val : n_val + n_test].tolist()
        out["train"] += members[n_val + n_test :].tolist()
    return {name: np.sort(np.asarray(idx, dtype=np.int64)) for name, idx in out.items()}
