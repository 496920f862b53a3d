"""Pretrained bases and the classifier built on them: MiniLM against an independent numpy forward
pass, a BERT classifier on WordPiece ids that XLA compiles and that, behind its tokenizer, predicts
on raw strings what the tf.data path does and reloads in safe mode; units and unfreezing,
saved-model bases (a text model's on its token ids), and the refusals (unknown name, missing or
unreadable file, ImageNet weights offline)."""

from __future__ import annotations

import functools
import json

import keras
import numpy as np
import pytest
import safetensors.numpy
import tensorflow as tf

from dlrecipes import data
from dlrecipes.config import RecipeConfig
from dlrecipes.data import DataInfo, tokens, word_vectors
from dlrecipes.errors import CheckpointError, ConfigError, WeightsUnavailable
from dlrecipes.models import bases, text, transfer, vision
from tests.conftest import compile_as_recipes, reloaded_in_keras_alone

TEXT_INFO = DataInfo("texts", ("fresh", "rotten"), ())
DIGITS_INFO = DataInfo("digits", tuple("0123456789"), (8, 8, 1))
SENTENCES = [
    "A wonderful, moving film with superb acting.",
    "Dull and far too long; I wanted my two hours back!",
    "Unwatchable.",
]


def features(model: keras.Model) -> keras.Model:
    """The classifier up to its head: the pooled output of the base."""
    return keras.Model(model.inputs, model.get_layer("head_dropout").input)


def _layer_norm(x: np.ndarray, gamma: np.ndarray, beta: np.ndarray) -> np.ndarray:
    mean, var = x.mean(-1, keepdims=True), x.var(-1, keepdims=True)
    return (x - mean) / np.sqrt(var + 1e-12) * gamma + beta


def _gelu(x: np.ndarray, exact: bool) -> np.ndarray:
    if exact:  # Hugging Face BERT
        from scipy.special import erf

        return 0.5 * x * (1 + erf(x / np.sqrt(2)))
    # keras-hub BERT, like Google's original: the tanh approximation
    return 0.5 * x * (1 + np.tanh(np.sqrt(2 / np.pi) * (x + 0.044715 * x**3)))


@functools.cache
def _minilm_files() -> tuple[dict[str, np.ndarray], dict]:
    wv = word_vectors
    weights = safetensors.numpy.load(wv._file(wv.WEIGHTS, wv.WEIGHTS_SHA256))
    return weights, json.loads(wv._file(wv.CONFIG, wv.CONFIG_SHA256))


def minilm_numpy(ids: list[int], exact_gelu: bool = False) -> np.ndarray:
    """Mean-pooled all-MiniLM-L6-v2 output of one sequence of token ids, in plain numpy from the
    safetensors weights and the Hugging Face config (BERT: post-LN, 12 heads)."""
    w, config = _minilm_files()
    heads = config["num_attention_heads"]

    def dense(x, name):
        return x @ w[f"{name}.weight"].T + w[f"{name}.bias"]

    x = (
        w["embeddings.word_embeddings.weight"][ids]
        + w["embeddings.position_embeddings.weight"][: len(ids)]
        + w["embeddings.token_type_embeddings.weight"][0]
    )
    x = _layer_norm(x, w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"])
    for i in range(config["num_hidden_layers"]):
        p = f"encoder.layer.{i}"
        q, k, v = (dense(x, f"{p}.attention.self.{n}") for n in ("query", "key", "value"))
        split = [t.reshape(len(ids), heads, -1).transpose(1, 0, 2) for t in (q, k, v)]
        scores = split[0] @ split[1].transpose(0, 2, 1) / np.sqrt(split[0].shape[-1])
        weights = np.exp(scores - scores.max(-1, keepdims=True))
        weights /= weights.sum(-1, keepdims=True)
        attended = (weights @ split[2]).transpose(1, 0, 2).reshape(len(ids), -1)
        x = _layer_norm(
            x + dense(attended, f"{p}.attention.output.dense"),
            w[f"{p}.attention.output.LayerNorm.weight"],
            w[f"{p}.attention.output.LayerNorm.bias"],
        )
        hidden = _gelu(dense(x, f"{p}.intermediate.dense"), exact_gelu)
        x = _layer_norm(
            x + dense(hidden, f"{p}.output.dense"),
            w[f"{p}.output.LayerNorm.weight"],
            w[f"{p}.output.LayerNorm.bias"],
        )
    return x.mean(0)


@pytest.mark.slow
def test_minilm_inside_the_model_matches_an_independent_numpy_forward_pass():
    base = bases.load("minilm")
    model = text.end_to_end(
        transfer.tokenizer(base, 64), features(transfer.classifier(base, TEXT_INFO))
    )
    ours = model.predict(tf.constant(SENTENCES), verbose=0)
    tokenizer = word_vectors.tokenizer()  # the Hugging Face tokenizer, not the one in the model
    for sentence, vector in zip(SENTENCES, ours, strict=True):
        ids = tokenizer.encode(sentence).ids
        np.testing.assert_allclose(vector, minilm_numpy(ids), atol=1e-5)
        # keras-hub's GELU is the tanh approximation: within 2e-3 of the exact-GELU original.
        np.testing.assert_allclose(vector, minilm_numpy(ids, exact_gelu=True), atol=2e-3)
    assert np.abs(ours[0] - ours[1]).max() > 0.1  # different sentences, different vectors


@pytest.fixture(scope="module")
def snippets() -> data.Splits:
    return data.load_text("rt_snippets")


def test_the_tokenizer_gives_minilm_word_pieces_packed_and_right_padded():
    ids = transfer.tokenizer(bases.load("tiny-bert"), 16).predict(
        tf.constant(["unwatchable film", "A wonderful, moving film with superb acting."]),
        verbose=0,
    )
    for row, sentence in zip(ids, ["unwatchable film", SENTENCES[0]], strict=True):
        expected = word_vectors.tokenizer().encode(sentence).ids  # [CLS] ... [SEP]
        assert row.tolist() == expected + [tokens.PAD_ID] * (16 - len(expected))


@pytest.mark.slow
def test_a_bert_classifier_on_token_ids_trains_with_xla(recwarn, snippets):
    base = bases.load("tiny-bert")
    model = transfer.classifier(base, TEXT_INFO, dropout=0.0)
    config = RecipeConfig(jit=True, optimizer="adam", learning_rate=3e-3, schedule="constant")
    compile_as_recipes(model, config, 8)
    assert model.jit_compile is True  # no string op in the model: XLA compiles its step
    # One length group padded to its boundary: one shape, one compilation.
    train = tokens.batches(
        snippets.train.take(512),
        transfer.tokenizer(base, 32),
        64,
        training=True,
        boundaries=[33],
        pad_to_boundary=True,
    )
    history = model.fit(train, epochs=3, verbose=0, shuffle=False)
    assert model.jit_compile is True
    assert not [w for w in recwarn.list if "jit_compile" in str(w.message)]
    losses = history.history["loss"]
    assert losses[-1] < losses[0]  # it trains


@pytest.mark.slow
def test_the_bert_behind_its_tokenizer_predicts_what_the_token_path_does(tmp_path, snippets):
    """The saved model (strings in, packed to 32 pieces) against the training-time path
    (WordPiece in tf.data, grouped by length, each batch padded to its longest text), and
    reloaded in safe mode in a process that imports Keras alone: keras-hub's layers load
    by their module."""
    base = bases.load("tiny-bert")
    tokenizer = transfer.tokenizer(base, 32)
    model = transfer.classifier(base, TEXT_INFO)
    test = snippets.test.take(300)
    texts = [t.decode() for t, _ in test.as_numpy_iterator()]
    batches = tokens.batches(
        test.enumerate().map(lambda i, pair: (pair[0], i)),
        tokenizer,
        32,
        training=False,
        boundaries=tokens.bucket_boundaries(32),
    )
    order = np.concatenate([i for _, i in batches.as_numpy_iterator()])
    assert len({ids.shape[1] for ids, _ in batches.as_numpy_iterator()}) > 2
    token_path = np.empty((len(texts), 2), np.float32)
    token_path[order] = model.predict(batches.map(lambda ids, i: ids), verbose=0)
    strings = text.end_to_end(tokenizer, model)
    np.testing.assert_allclose(
        strings.predict(tf.constant(texts), verbose=0), token_path, rtol=1e-5, atol=1e-6
    )
    assert token_path[:, 0].std() > 1e-3  # texts get different outputs
    # Asked for XLA, a model holding the tokenizer's string ops is compiled without it.
    compiled = text.end_to_end(tokenizer, model)
    compile_as_recipes(compiled, RecipeConfig(jit=True), 1)
    assert compiled.jit_compile is False
    reloaded_in_keras_alone(strings, texts, token_path, tmp_path, imports="import tensorflow_text")


@pytest.mark.slow
def test_a_saved_text_model_becomes_a_base_on_its_token_ids(tmp_path, snippets):
    texts = snippets.train.take(256).map(lambda t, y: t)
    vectorize = text.vectorizer(texts, max_tokens=500, sequence_length=16)
    saved = text.end_to_end(vectorize, text.recurrent_classifier(2, vectorize, units=(4,)))
    saved.save(tmp_path / "model.keras")
    assert bases.kind(str(tmp_path / "model.keras")) == "text"
    base = bases.load(str(tmp_path / "model.keras"))
    assert base.reads == "ids" and base.kind == "text"
    tokenizer = transfer.tokenizer(base, 64)  # its own vectorizer, with its own length
    assert tokenizer.get_vocabulary() == vectorize.get_vocabulary()
    model = transfer.classifier(base, TEXT_INFO)
    assert model.inputs[0].dtype == "int32"
    sentences = tf.constant(SENTENCES)
    pooled = text.end_to_end(tokenizer, features(model)).predict(sentences, verbose=0)
    inner = saved.layers[-1]
    expected = keras.Model(inner.inputs, inner.get_layer("predictions").input)
    np.testing.assert_allclose(
        pooled, expected.predict(vectorize(sentences), verbose=0), rtol=1e-5, atol=1e-6
    )


def test_units_are_blocks_and_unfreeze_counts_them_from_the_top():
    model = transfer.classifier(bases.load("tiny-bert"), TEXT_INFO)
    names = [layer.name for layer in transfer.units(model)]
    assert names[-1] == "transformer_layer_0" and len(names) == 5  # 4 embedding layers, 1 block
    transfer.unfreeze(model, 0)
    assert [w.path for w in model.trainable_weights] == ["predictions/kernel", "predictions/bias"]
    transfer.unfreeze(model, 1)
    paths = [w.path for w in model.trainable_weights]
    assert any(p.startswith("transformer_layer_0/") for p in paths)
    assert not any(p.startswith("embeddings_layer_norm/") for p in paths)
    transfer.unfreeze(model, "all")
    assert len(model.trainable_weights) == len(model.weights)
    with pytest.raises(ConfigError, match="--unfreeze 6 is more than the base has: 5 layers"):
        transfer.unfreeze(model, 6)
    # Behind its tokenizer, the classifier's base is still found and unfrozen.
    strings = text.end_to_end(transfer.tokenizer(bases.load("tiny-bert"), 16), model)
    transfer.unfreeze(strings, 0)
    assert [w.path for w in strings.trainable_weights] == ["predictions/kernel", "predictions/bias"]


def _saved_convnet(path) -> None:
    model = vision.convnet((28, 28, 1), 10, widths=(4, 8), convs_per_stage=1, head="flatten")
    model.save(path)


def test_a_saved_image_model_becomes_a_base_without_its_head(tmp_path):
    _saved_convnet(tmp_path / "model.keras")
    assert bases.kind(str(tmp_path / "model.keras")) == "images"
    base = bases.load(str(tmp_path / "model.keras"))
    assert base.reads == "images" and base.model.name == "base"
    assert isinstance(base.model.layers[-1], keras.layers.Flatten)  # dropout and Dense are gone
    saved = keras.saving.load_model(tmp_path / "model.keras")
    for ours, theirs in zip(base.model.get_weights(), saved.get_weights()[:-2], strict=True):
        np.testing.assert_array_equal(ours, theirs)
    fresh = bases.load(str(tmp_path / "model.keras"), pretrained=False)
    assert [w.shape for w in fresh.model.weights] == [w.shape for w in base.model.weights]
    assert not np.array_equal(fresh.model.weights[0].numpy(), base.model.weights[0].numpy())

    # 8x8 digits go into the 28x28 input as MNIST digits sit in it: a 20x20 box in the middle.
    model = transfer.classifier(base, DIGITS_INFO, margin=4 / 28)
    placed = keras.Model(model.inputs, model.get_layer("margin").output)
    image = np.full((1, 8, 8, 1), 255, np.uint8)
    canvas = placed.predict(image, verbose=0)[0, ..., 0]
    assert canvas.shape == (28, 28)
    assert not canvas[:4].any() and not canvas[-4:].any() and canvas[4:24, 4:24].min() > 254


@pytest.mark.usefixtures("offline")
def test_bad_bases_are_refused_with_what_to_do(tmp_path, monkeypatch):
    with pytest.raises(ConfigError, match="Unknown base 'bert'. Use one of minilm"):
        bases.load("bert")
    with pytest.raises(CheckpointError, match="no such file"):
        bases.load(str(tmp_path / "missing.keras"))
    (tmp_path / "junk.keras").write_bytes(b"not a model")
    with pytest.raises(CheckpointError, match="is not a readable Keras model"):
        bases.kind(str(tmp_path / "junk.keras"))
    with pytest.raises(CheckpointError, match="is not a readable Keras model"):
        bases.load(str(tmp_path / "junk.keras"))
    # Offline (the `offline` fixture): the ImageNet weights fail at once, saying what to do.
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    with pytest.raises(WeightsUnavailable, match="copy .*notop.h5 to the same place here"):
        bases.load("resnet50")
