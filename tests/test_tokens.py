"""Texts as token ids in tf.data, on the real Rotten Tomatoes snippets: the vocabulary comes from
the training texts only, each batch is padded to its own longest text, texts are grouped by
length, every text is kept once, and padding to the group's boundary bounds the shapes."""

from __future__ import annotations

import collections
import re

import numpy as np
import pytest
import tensorflow as tf

from dlrecipes import data
from dlrecipes.data import tokens
from dlrecipes.models import text

SEQUENCE_LENGTH = 48


@pytest.fixture(scope="module")
def snippets() -> data.Splits:
    return data.load_text("rt_snippets")


@pytest.fixture(scope="module")
def vectorize(snippets):
    return text.vectorizer(
        snippets.train.map(lambda t, y: t), max_tokens=20_000, sequence_length=SEQUENCE_LENGTH
    )


def _indexed(ds: tf.data.Dataset) -> tf.data.Dataset:
    """(text, label) -> (text, its position), so a batch says which texts it holds."""
    return ds.enumerate().map(lambda i, pair: (pair[0], i))


def _words(ds: tf.data.Dataset) -> set[str]:
    """The words of the texts as the vectorizer reads them: lower case (TensorFlow's, which
    leaves non-ASCII letters alone), no punctuation."""
    punctuation = re.compile(r"""[!"#$%&()\*\+,\-\./:;<=>?@\[\\\]\^_`{|}~']""")
    lower = ds.map(lambda t, y: tf.strings.lower(t))
    return {w for t in lower.as_numpy_iterator() for w in punctuation.sub("", t.decode()).split()}


def test_the_vocabulary_comes_from_the_training_texts_only(snippets, vectorize):
    vocabulary = vectorize.get_vocabulary()
    train_words = _words(snippets.train)
    assert set(vocabulary[2:]) <= train_words
    unseen = sorted(_words(snippets.test) - train_words)
    assert len(unseen) > 100  # real test texts hold words no training text has
    ids = np.concatenate([x.numpy().ravel() for x, _ in tokens.batches(
        snippets.test, vectorize, 256, training=False
    )])  # fmt: skip
    assert (ids == 1).any()  # and they become the out-of-vocabulary id
    assert vectorize(tf.constant([" ".join(unseen[:5])])).numpy()[0, :5].tolist() == [1] * 5


def test_tokenize_takes_the_padding_off_and_keeps_an_empty_text_one_step_long(vectorize):
    ds = tf.data.Dataset.from_tensor_slices(
        (["a moving film", "", "!!!", "the film"], [0, 1, 2, 3])
    )
    out = [
        (ids.tolist(), label) for ids, label in tokens.tokenize(ds, vectorize).as_numpy_iterator()
    ]
    vocabulary = vectorize.get_vocabulary()
    assert out[0] == ([vocabulary.index(w) for w in ("a", "moving", "film")], 0)
    assert out[1] == ([tokens.PAD_ID], 1) and out[2] == ([tokens.PAD_ID], 2)
    assert out[3] == ([vocabulary.index("the"), vocabulary.index("film")], 3)


def test_batches_are_grouped_by_length_and_padded_to_their_longest_text(snippets, vectorize):
    boundaries = tokens.bucket_boundaries(SEQUENCE_LENGTH)
    assert boundaries == [9, 17, 25, 33, 41, 49]
    ds = tokens.batches(
        _indexed(snippets.train), vectorize, 64, training=True, boundaries=boundaries
    )
    seen, widths, padded = [], [], 0
    for ids, index in ds.as_numpy_iterator():
        lengths = np.maximum((ids != tokens.PAD_ID).sum(axis=1), 1)
        assert ids.shape[1] == lengths.max()  # padded to its own longest text
        groups = np.searchsorted(boundaries, lengths, side="right")
        assert len(set(groups)) == 1  # texts of one length group
        assert (ids[np.arange(len(ids)), lengths - 1] != tokens.PAD_ID).sum() >= 1
        seen.extend(index.tolist())
        widths.append(ids.shape[1])
        padded += ids.size
    assert sorted(seen) == list(range(10_202))  # every training text, once
    assert int(ds.cardinality()) == len(widths)
    # Against today's fixed 48 ids a text: under half the ids to run through the model.
    assert padded < 0.5 * 10_202 * SEQUENCE_LENGTH


def test_each_epoch_is_shuffled_anew_with_the_same_batches(snippets, vectorize):
    ds = tokens.batches(
        _indexed(snippets.validation),
        vectorize,
        32,
        training=True,
        seed=3,
        boundaries=tokens.bucket_boundaries(SEQUENCE_LENGTH),
    )
    first, second = ([b.tolist() for _, b in ds.as_numpy_iterator()] for _ in range(2))
    assert first != second
    assert len(first) == len(second) == int(ds.cardinality())
    assert sorted(sum(first, [])) == sorted(sum(second, [])) == list(range(1275))


def test_padding_to_the_boundary_gives_two_shapes_a_group_at_most(snippets, vectorize):
    boundaries = tokens.bucket_boundaries(SEQUENCE_LENGTH, width=16)
    ds = tokens.batches(
        snippets.train, vectorize, 64, training=False, boundaries=boundaries, pad_to_boundary=True
    )
    shapes = collections.Counter(tuple(ids.shape) for ids, _ in ds.as_numpy_iterator())
    assert {width for _, width in shapes} == {b - 1 for b in boundaries}
    assert len(shapes) <= 2 * len(boundaries)
    assert sum(n for (rows, _), n in shapes.items() if rows == 64) > 0.95 * sum(shapes.values())


def test_texts_in_order_without_groups_and_too_long_ones_refused(snippets, vectorize):
    ds = tokens.batches(_indexed(snippets.test), vectorize, 100, training=False)
    index = np.concatenate([i for _, i in ds.as_numpy_iterator()])
    assert index.tolist() == list(range(1275)) and int(ds.cardinality()) == 13
    with pytest.raises(ValueError, match="needs all below the last boundary, 40"):
        tokens.batches(
            snippets.test, vectorize, 32, training=False, boundaries=[20, 40], pad_to_boundary=True
        )
