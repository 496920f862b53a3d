"""K-fold cross-validation over a training set held as a `tf.data.Dataset`."""

from __future__ import annotations

import numpy as np
import tensorflow as tf
from sklearn.model_selection import StratifiedKFold


def kfold(
    pool: tf.data.Dataset, fold: int, folds: int, seed: int
) -> tuple[tf.data.Dataset, tf.data.Dataset]:
    """Returns (train, validation) for fold `fold` (0-based) of a stratified `folds`-way split.

    `pool` yields `(input, label)` pairs; its labels are read once to stratify.
    """
    if folds < 2 or not 0 <= fold < folds:
        raise ValueError(
            f"fold must be in [0, folds) with folds >= 2; got fold={fold}, folds={folds}"
        )
    labels = np.concatenate([y for y in pool.map(lambda x, y: y).batch(4096).as_numpy_iterator()])
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    _, held_out = list(splitter.split(np.zeros(len(labels)), labels))[fold]
    in_fold = np.zeros(len(labels), dtype=bool)
    in_fold[held_out] = True
    mask = tf.constant(in_fold)

    def pick(keep: bool) -> tf.data.Dataset:
        chosen = pool.enumerate().filter(lambda i, ex: tf.equal(tf.gather(mask, i), keep))
        return chosen.map(lambda i, ex: ex)

    return pick(False), pick(True)
