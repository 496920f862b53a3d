"""Few-label training sets: keep N labelled examples of every class, chosen with a seed."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import tensorflow as tf

from dlrecipes.errors import DatasetError


def keep_per_class(
    ds: tf.data.Dataset, per_class: int, seed: int, class_names: Sequence[str], what: str = ""
) -> tf.data.Dataset:
    """The first `per_class` examples of every class after a seeded shuffle, in their old order.

    Args:
        ds: unbatched `(input, label)` pairs (a training split).
        per_class: examples kept of every class.
        seed: seed of the per-class choice; the same data and seed keep the same examples.
        class_names: names of the classes, for the error message.
        what: the dataset's name, for the error message.

    Raises:
        DatasetError: `per_class` is below 1 or above what the smallest class holds.
    """
    labels = np.concatenate([y for y in ds.map(lambda x, y: y).batch(4096).as_numpy_iterator()])
    counts = np.bincount(labels, minlength=len(class_names))
    if per_class < 1 or per_class > counts.min():
        smallest = int(counts.argmin())
        raise DatasetError(
            f"--labels-per-class {per_class} is not possible: the training split of {what} "
            f"holds {counts.min()} examples of class {class_names[smallest]!r}, its smallest. "
            f"Use 1 to {counts.min()}, or leave the flag out to train on every example."
        )
    rng = np.random.default_rng(seed)
    keep = np.zeros(len(labels), dtype=bool)
    for label in range(len(class_names)):
        members = np.flatnonzero(labels == label)
        keep[rng.choice(members, per_class, replace=False)] = True
    mask = tf.constant(keep)
    chosen = ds.enumerate().filter(lambda i, example: tf.gather(mask, i))
    return chosen.map(lambda i, example: example)


def class_counts(ds: tf.data.Dataset, num_classes: int) -> np.ndarray:
    """How many examples of every class `(input, label)` pairs hold, batched or not."""
    labels = ds.map(lambda x, y: tf.reshape(y, [-1])).unbatch().batch(4096)
    return np.bincount(
        np.concatenate([np.zeros(0, np.int64), *labels.as_numpy_iterator()]).astype(np.int64),
        minlength=num_classes,
    )
