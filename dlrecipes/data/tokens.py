"""Texts as token ids in the tf.data pipeline: tokenized in parallel, grouped by length, and
each batch padded to its own longest text.

The model then trains on integer ids only, which XLA compiles; the tokenizer runs on the CPU in
tf.data workers, overlapping the training step, and once per text (the ids are cached). This is
keras-io's "text classification from scratch" and what keras-hub's `Task.fit` does. The saved
model puts the same tokenizer in front again (`dlrecipes.models.text.end_to_end`), so users still
give raw strings.

A tokenizer is any Keras layer (or model) from a batch of strings to `(batch, length)` integer
ids, right-padded with `PAD_ID`: a `TextVectorization` layer (`models.text.vectorizer`), or
WordPiece + `[CLS] ... [SEP]` packing (`models.transfer.tokenizer`). Its padding is taken off
again here, so each batch is padded only as far as its longest text. Grouping texts of similar
length (`bucket_boundaries`) keeps that padding small; under XLA, whose compiled step is per
input shape, padding to the group's upper boundary instead (`pad_to_boundary`) bounds the
shapes, and so the compilations, to two per group (full batches and the last, shorter one).

Example:

>>> vectorize = text.vectorizer(train_texts, max_tokens=20_000, sequence_length=48)
>>> train = tokens.batches(splits.train, vectorize, 64, training=True,
...                        boundaries=tokens.bucket_boundaries(48))
>>> model.fit(train, ...)  # (int32 ids (64, longest), labels) batches
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import tensorflow as tf

AUTOTUNE = tf.data.AUTOTUNE
PAD_ID = 0  # TextVectorization's padding, and MiniLM's [PAD]
# Texts tokenized per call: the tokenizers work on batches, far faster than one text at a time.
CHUNK = 1024
# strings (batch,) -> int ids (batch, length), right-padded with PAD_ID
Tokenizer = Callable[[tf.Tensor], tf.Tensor]


def tokenize(ds: tf.data.Dataset, tokenizer: Tokenizer) -> tf.data.Dataset:
    """Unbatched `(text, target)` pairs -> unbatched `(int32 ids, target)`, padding taken off.

    Tokenizes `CHUNK` texts per call, in parallel tf.data workers. Every text keeps at least
    one id (a padding id when it has no token at all), so no batch is ever zero steps long.
    """

    def ids(texts: tf.Tensor, targets: tf.Tensor):
        dense = tf.cast(tokenizer(texts), tf.int32)
        lengths = tf.reduce_sum(tf.cast(tf.not_equal(dense, PAD_ID), tf.int32), axis=1)
        # Right-padded: a text's ids are its first `length` entries.
        return dense, tf.maximum(lengths, 1), targets

    return (
        ds.batch(CHUNK)
        .map(ids, num_parallel_calls=AUTOTUNE)
        .unbatch()
        .map(lambda dense, length, target: (dense[:length], target))
    )


def bucket_boundaries(max_length: int, width: int = 8) -> list[int]:
    """Upper length boundaries (exclusive) of groups `width` ids wide, up to `max_length`.

    `bucket_boundaries(48)` is `[9, 17, 25, 33, 41, 49]`: lengths 1-8, 9-16, ..., 41-48.
    """
    if max_length < 1 or width < 1:
        raise ValueError(f"max_length and width must be positive; got {max_length}, {width}.")
    return list(range(width + 1, max_length + 1, width)) + [max_length + 1]


def batches(
    ds: tf.data.Dataset,
    tokenizer: Tokenizer,
    batch_size: int,
    *,
    training: bool,
    seed: int = 0,
    boundaries: Sequence[int] | None = None,
    pad_to_boundary: bool = False,
    shuffle_buffer: int = 10_000,
) -> tf.data.Dataset:
    """Unbatched `(text, target)` pairs -> `(int32 ids, target)` batches ready for `fit`.

    Tokenized once (`tokenize`, cached), shuffled when `training`, then batched: with
    `boundaries`, texts are grouped by length (`tf.data.Dataset.bucket_by_sequence_length`) and
    each batch padded to its longest text, or to its group's boundary less one with
    `pad_to_boundary`; without, batches are formed in order and padded to their longest text.

    Args:
        ds: unbatched `(string, target)` pairs; a target may be a label or a vector.
        tokenizer: the layer from strings to right-padded ids (see the module's docstring).
        batch_size: texts per batch.
        training: shuffle (each epoch anew).
        seed: seed of the shuffling.
        boundaries: upper length boundaries of the groups, increasing (`bucket_boundaries`);
            the last must exceed the tokenizer's longest output when `pad_to_boundary`.
        pad_to_boundary: pad to the group's boundary less one, not to the batch's longest text:
            a fixed set of shapes, for XLA.
        shuffle_buffer: texts shuffled at once.

    Returns:
        The batches, prefetched, their number known to tf.data (the same every epoch: each
        group keeps its texts).
    """
    ds = tokenize(ds, tokenizer).cache()
    # One pass tokenizes every text into the cache and gives the lengths, hence the batches per
    # epoch: Keras then knows the epoch's length (and warns of no "input ran out of data").
    lengths = sizes(ds)
    if boundaries:
        boundaries = list(boundaries)
        if pad_to_boundary and lengths.size and lengths.max() >= boundaries[-1]:
            raise ValueError(
                f"A text has {lengths.max()} ids, but pad_to_boundary needs all below the last "
                f"boundary, {boundaries[-1]}."
            )
        groups = np.bincount(np.searchsorted(boundaries, lengths, side="right"))
        count = int(sum(-(-n // batch_size) for n in groups))
    else:
        count = -(-lengths.size // batch_size)
    if training:
        ds = ds.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
    if boundaries:
        ds = ds.bucket_by_sequence_length(
            lambda ids, target: tf.size(ids),
            boundaries,
            [batch_size] * (len(boundaries) + 1),
            padding_values=(PAD_ID, None),
            pad_to_bucket_boundary=pad_to_boundary,
        )
    else:
        ds = ds.padded_batch(batch_size, padding_values=(PAD_ID, None))
    return ds.apply(tf.data.experimental.assert_cardinality(count)).prefetch(AUTOTUNE)


def sizes(ids: tf.data.Dataset) -> np.ndarray:
    """The number of ids of every text of unbatched `(ids, target)` pairs (`tokenize`'s)."""
    return np.concatenate(
        [np.zeros(0, np.int32), *ids.map(lambda ids, _: tf.size(ids)).batch(CHUNK)]
    )


def fitting_length(
    lengths: np.ndarray, *, at_least: int, at_most: int, percentile: float = 99.0, width: int = 8
) -> int:
    """A sequence length that keeps `percentile` % of texts of these `lengths` whole, rounded up
    to a multiple of `width` (the groups of `bucket_boundaries`), within `[at_least, at_most]`.

    Batches grouped by length are padded to their own longest text, so a long limit costs only
    the few long texts it keeps whole.
    """
    need = int(np.ceil(np.percentile(lengths, percentile) / width)) * width
    return min(max(need, at_least), at_most)
