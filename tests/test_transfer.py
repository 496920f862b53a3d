"""Pretrained bases and the classifier built on them: MiniLM against an independent numpy forward
pass, the tokenizer inside the model across a safe-mode reload, units and unfreezing, saved-model
bases, and the refusals (unknown name, missing or unreadable file, ImageNet weights offline)."""

from __future__ import annotations

import functools
import json

import keras
import numpy as np
import pytest
import safetensors.numpy
import tensorflow as tf

from dlrecipes.data import DataInfo, word_vectors
from dlrecipes.errors import CheckpointError, ConfigError, WeightsUnavailable
from dlrecipes.models import bases, transfer, vision

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
    model = transfer.classifier(bases.load("minilm"), TEXT_INFO)
    ours = features(model).predict(tf.constant(SENTENCES), verbose=0)
    tokenizer = word_vectors.tokenizer()  # the Hugging Face tokenizer, not the one in the model
    for sentence, vector in zip(SENTENCES, ours, strict=True):
        ids = tokenizer.encode(sentence).ids
        np.testing.assert_allclose(vector, minilm_numpy(ids), atol=1e-5)
        # keras-hub's GELU is the tanh approximation: within 2e-3 of the exact-GELU original.
        np.testing.assert_allclose(vector, minilm_numpy(ids, exact_gelu=True), atol=2e-3)
    assert np.abs(ours[0] - ours[1]).max() > 0.1  # different sentences, different vectors


@pytest.mark.slow
def test_text_model_keeps_its_tokenizer_across_a_safe_mode_reload(tmp_path):
    model = transfer.classifier(bases.load("tiny-bert"), TEXT_INFO, sequence_length=16)
    before = model.predict(tf.constant(SENTENCES), verbose=0)
    model.save(tmp_path / "m.keras")
    again = keras.saving.load_model(tmp_path / "m.keras", safe_mode=True)
    after = again.predict(tf.constant(SENTENCES), verbose=0)
    np.testing.assert_array_equal(after, before)
    np.testing.assert_allclose(after.sum(-1), 1.0, rtol=1e-5)
    # The word pieces are MiniLM's: the packed ids start with [CLS] and the words' pieces.
    pack = keras.Model(again.inputs, again.get_layer("pack").output[0])
    ids = pack.predict(tf.constant(["unwatchable film"]), verbose=0)[0]
    expected = word_vectors.tokenizer().encode("unwatchable film").ids  # [CLS] ... [SEP]
    assert ids.tolist() == expected + [0] * (16 - len(expected))


def test_units_are_blocks_and_unfreeze_counts_them_from_the_top():
    model = transfer.classifier(bases.load("tiny-bert"), TEXT_INFO, sequence_length=16)
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
