"""Labelled examples: exact-duplicate removal of texts, and deterministic stratified splits."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from sklearn.model_selection import train_test_split


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
    """Splits example indices into train / validation / test with scikit-learn's stratified
    `train_test_split`: each split keeps every class's share of the whole.

    Args:
        labels: one integer class per example; every class needs at least 3 examples.
        fractions: the validation and test fractions, each at least one example per class in
            all (a class too rare for its share may still get none).
        seed: the split's random state; the same labels and seed give the same split.

    Returns:
        `{"train": idx, "validation": idx, "test": idx}`, each sorted.
    """
    labels = np.asarray(labels)
    index = np.arange(len(labels))
    classes = len(np.unique(labels))
    n_val, n_test = (max(classes, round(f * len(labels))) for f in fractions)
    rest, test = train_test_split(index, test_size=n_test, stratify=labels, random_state=seed)
    train, validation = train_test_split(
        rest, test_size=n_val, stratify=labels[rest], random_state=seed
    )
    return {"train": np.sort(train), "validation": np.sort(validation), "test": np.sort(test)}
