"""K-fold cross-validation over a training set held as a `tf.data.Dataset`."""

from __future__ import annotations

import dataclasses

import numpy as np
import tensorflow as tf
from sklearn.model_selection import StratifiedKFold

from dlrecipes.data.splits import Splits, no_training_split


def kfold(
    pool: tf.data.Dataset, fold: int, folds: int, seed: int
) -> tuple[tf.data.Dataset, tf.data.Dataset]:
    """Returns (train, validation) for fold `fold` (0-based) of a stratified `folds`-way split.

    `pool` yields `(input, label)` pairs; its labels are read once to stratify. Both datasets
    know their length, so `fit` knows the steps of an epoch.
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
        # A filter forgets the length; without it Keras runs the first epoch until the data
        # runs out and warns "Your input ran out of data".
        size = int(in_fold.sum()) if keep else int((~in_fold).sum())
        return chosen.map(lambda i, ex: ex).apply(tf.data.experimental.assert_cardinality(size))

    return pick(False), pick(True)


def apply_fold(splits: Splits, fold: tuple[int, int], seed: int) -> Splits:
    """`splits` with train / validation replaced by fold `fold[0]` of a stratified `fold[1]`-way
    split of the two together; the test split is left as it is."""
    if set(splits.info.num_examples) == {"test"}:
        raise no_training_split(splits.info)
    train, validation = kfold(splits.train.concatenate(splits.validation), *fold, seed=seed)
    return dataclasses.replace(splits, train=train, validation=validation)
