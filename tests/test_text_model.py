"""Text model builders: classifiers on token ids that XLA compiles and train, the end-to-end model
on raw strings that gives the token path's predictions on real snippets, vocabulary from training
texts only, recurrent layers Keras runs with cuDNN (a GPU faked) on masks cuDNN takes, safe-mode
reloads."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from dlrecipes import data
from dlrecipes.config import RecipeConfig
from dlrecipes.data import tokens
from dlrecipes.models import text
from tests.conftest import compile_as_recipes, reloaded_in_keras_alone

TRAIN = ["a truly great film", "great acting and a great story", "dull and boring", "boring mess"]
LABELS = [1, 1, 0, 0]


def _texts(items: list[str]) -> tf.data.Dataset:
    return tf.data.Dataset.from_tensor_slices(tf.constant(items))


def _vectorizer(texts: list[str] = TRAIN, sequence_length: int = 8) -> keras.layers.Layer:
    return text.vectorizer(_texts(texts), max_tokens=50, sequence_length=sequence_length)


def _small(builder, num_classes: int = 2, **kwargs) -> keras.Model:
    """A small classifier on token ids behind its vectorizer: raw strings in."""
    vectorize = _vectorizer()
    model = builder(num_classes, vectorize, _texts(TRAIN), embedding_dim=8, **kwargs)
    return text.end_to_end(vectorize, model)


def _classifier(model: keras.Model) -> keras.Model:
    """The classifier on token ids inside an end-to-end model."""
    return model.layers[-1]


@pytest.mark.parametrize(
    ("builder", "kwargs"),
    [
        (text.recurrent_classifier, {"cell": "lstm", "units": (4, 4)}),
        (text.recurrent_classifier, {"cell": "gru", "units": (4,), "pooling": "last"}),
        (text.transformer_classifier, {"heads": 2, "ff_dim": 8}),
    ],
)
def test_models_take_raw_strings_and_reload_in_safe_mode(tmp_path, builder, kwargs):
    model = _small(builder, num_classes=3, **kwargs)
    new = tf.constant(["a great story", "never seen words here", ""])
    probs = model.predict(new, verbose=0)
    assert probs.shape == (3, 3) and probs.dtype == np.float32
    np.testing.assert_allclose(probs.sum(-1), 1.0, rtol=1e-5)
    model.save(tmp_path / "model.keras")
    reloaded = keras.saving.load_model(tmp_path / "model.keras", safe_mode=True)
    np.testing.assert_allclose(reloaded.predict(new, verbose=0), probs, rtol=1e-5, atol=1e-6)


def test_vocabulary_comes_from_the_training_texts_only():
    model = _small(text.recurrent_classifier)
    vocabulary = model.get_layer("vectorizer").get_vocabulary()
    assert vocabulary[:2] == ["", "[UNK]"]
    assert set(vocabulary[2:]) == {w for t in TRAIN for w in t.split()}
    # Words never seen in training map to the out-of-vocabulary id; padding is 0 at the end.
    ids = model.get_layer("vectorizer")(tf.constant(["great unseenword"])).numpy()[0]
    assert ids[0] == vocabulary.index("great") and ids[1] == 1
    assert ids[2:].tolist() == [0] * 6


def test_words_with_line_separators_do_not_break_the_saved_vocabulary(tmp_path):
    # Keras reads a saved vocabulary back with str.splitlines; real snippets hold U+0085.
    odd = ["workplace ambition\x85 wins", "a\u2028b and c\x0cd", "plain words"]
    vectorize = text.vectorizer(_texts(odd), max_tokens=50, sequence_length=8)
    model = text.end_to_end(vectorize, text.recurrent_classifier(2, vectorize))
    model.save(tmp_path / "model.keras")
    reloaded = keras.saving.load_model(tmp_path / "model.keras", safe_mode=True)
    vocabulary = reloaded.get_layer("vectorizer").get_vocabulary()
    assert vocabulary == model.get_layer("vectorizer").get_vocabulary()
    assert "ambition" in vocabulary and "b" in vocabulary


@pytest.fixture
def fake_gpu(monkeypatch):
    """Keras decides when a recurrent layer is made whether it may run cuDNN, and only when a GPU
    is visible: make one visible."""
    logical = tf.config.list_logical_devices
    gpu = [tf.config.LogicalDevice("/device:GPU:0", "GPU")]
    monkeypatch.setattr(
        tf.config, "list_logical_devices", lambda kind=None: gpu if kind == "GPU" else logical(kind)
    )


def _recurrent(model: keras.Model) -> list[keras.layers.Layer]:
    return [
        direction
        for layer in _classifier(model).layers
        if isinstance(layer, keras.layers.Bidirectional)
        for direction in (layer.forward_layer, layer.backward_layer)
    ]


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_recurrent_layers_are_ones_keras_runs_with_cudnn(cell, fake_gpu):
    # Keras marks a layer it will run with cuDNN as not XLA-compilable (cuDNN ops are not).
    assert keras.layers.LSTM(4, activation="relu").supports_jit  # not eligible: the check bites
    assert not keras.layers.LSTM(4).supports_jit
    model = _small(text.recurrent_classifier, cell=cell, units=(4, 4))
    recurrent = _recurrent(model)
    assert len(recurrent) == 4 and not any(layer.supports_jit for layer in recurrent)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_recurrent_layers_get_masks_cudnn_accepts(cell, monkeypatch):
    """cuDNN takes right-padded masks with at least one step per text (Keras asserts so before
    its kernel runs); an empty text, or one of punctuation only, must not have an empty mask."""
    kind = {"lstm": keras.layers.LSTM, "gru": keras.layers.GRU}[cell]
    masks = []
    call = kind.call

    def recording(self, sequences, initial_state=None, mask=None, training=False):
        masks.append(np.asarray(mask))
        return call(self, sequences, initial_state=initial_state, mask=mask, training=training)

    monkeypatch.setattr(kind, "call", recording)
    model = _small(text.recurrent_classifier, cell=cell, units=(4, 4))
    model(tf.constant(["", "!!! ...", "a great film", "great acting and a great story here"]))
    assert len(masks) == 4  # two layers, two directions
    for mask in masks:
        steps = mask.sum(axis=1)
        assert steps.tolist() == [1, 1, 3, 7]
        assert (mask == (np.arange(mask.shape[1]) < steps[:, None])).all()  # right-padded


@pytest.mark.parametrize("builder", [text.recurrent_classifier, text.transformer_classifier])
def test_padding_does_not_change_a_prediction(builder):
    # The same ids padded to their longest text, to 8 and to 16: the masks keep the recurrent
    # layers, the pooling and attention off the padding, so the probabilities agree.
    vectorize = _vectorizer()
    model = builder(2, vectorize, embedding_dim=8, dropout=0.0)
    ids = tf.cast(vectorize(tf.constant(["great film", "", "dull boring great acting"])), "int32")
    longest = model.predict(ids[:, :4], verbose=0)
    for padded in (ids, tf.pad(ids, [[0, 0], [0, 8]])):
        np.testing.assert_allclose(model.predict(padded, verbose=0), longest, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    ("builder", "kwargs"),
    [
        (text.recurrent_classifier, {"cell": "lstm"}),
        (text.recurrent_classifier, {"cell": "gru", "pooling": "last"}),
        (text.transformer_classifier, {"heads": 2, "ff_dim": 8}),
    ],
)
def test_classifiers_on_token_ids_train_with_xla_and_learn(recwarn, builder, kwargs):
    vectorize = _vectorizer()
    model = builder(2, vectorize, embedding_dim=8, dropout=0.0, spatial_dropout=0.0, **kwargs)
    config = RecipeConfig(jit=True, optimizer="adam", learning_rate=0.05, schedule="constant")
    compile_as_recipes(model, config, 1)
    assert model.jit_compile is True  # no string op left in the model: XLA compiles its step
    pairs = tf.data.Dataset.from_tensor_slices((TRAIN, LABELS))
    ds = tokens.batches(pairs, vectorize, 4, training=False, boundaries=[9], pad_to_boundary=True)
    model.fit(ds.repeat(15), verbose=0, shuffle=False)
    assert model.jit_compile is True
    assert not [w for w in recwarn.list if "jit_compile" in str(w.message)]
    probs = text.end_to_end(vectorize, model).predict(tf.constant(TRAIN), verbose=0)
    assert probs.argmax(-1).tolist() == LABELS


@pytest.mark.parametrize("arch", ["bilstm", "transformer"])
def test_the_end_to_end_model_predicts_what_the_token_path_does_on_real_snippets(tmp_path, arch):
    """The saved model (strings in, fixed padding) against the training-time path (ids from
    the tf.data pipeline, grouped by length, each batch padded to its longest), reloaded in a
    process that imports Keras alone."""
    keras.utils.set_random_seed(0)  # whatever ran before in this worker
    splits = data.load_text("rt_snippets")
    train = splits.train.take(512)
    adapt = train.map(lambda t, y: t)
    vectorize = text.vectorizer(adapt, max_tokens=2_000, sequence_length=32)
    build = text.recurrent_classifier if arch == "bilstm" else text.transformer_classifier
    model = build(2, vectorize, adapt, embedding_dim=16)
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss="sparse_categorical_crossentropy")
    train_batches = tokens.batches(train, vectorize, 64, training=True)
    model.fit(train_batches, epochs=2, verbose=0, shuffle=False)
    test = splits.test.take(300)
    texts = [t.decode() for t, _ in test.as_numpy_iterator()]
    indexed = test.enumerate().map(lambda i, pair: (pair[0], i))
    batches = tokens.batches(
        indexed, vectorize, 32, training=False, boundaries=tokens.bucket_boundaries(32)
    )
    order = np.concatenate([i for _, i in batches.as_numpy_iterator()])
    token_path = np.empty((len(texts), 2), np.float32)
    token_path[order] = model.predict(batches.map(lambda ids, i: ids), verbose=0)
    strings = text.end_to_end(vectorize, model)
    np.testing.assert_allclose(
        strings.predict(tf.constant(texts), verbose=0), token_path, rtol=1e-5, atol=1e-6
    )
    assert token_path[:, 0].std() > 0.01  # the model tells texts apart
    reloaded_in_keras_alone(strings, texts, token_path, tmp_path)


@pytest.mark.parametrize("builder", [text.recurrent_classifier, text.transformer_classifier])
def test_l1_l2_add_weight_penalties_and_survive_a_reload(tmp_path, builder):
    assert not _small(builder).losses
    model = _small(builder, l2=1e-3)
    model(tf.constant(["great film"]))
    assert model.losses and float(sum(model.losses)) > 0
    model.save(tmp_path / "model.keras")
    reloaded = keras.saving.load_model(tmp_path / "model.keras", safe_mode=True)
    reloaded(tf.constant(["great film"]))
    assert len(reloaded.losses) == len(model.losses)


def test_unknown_cell_and_pooling_are_refused():
    with pytest.raises(ValueError, match="cell='rnn'"):
        _small(text.recurrent_classifier, cell="rnn")
    with pytest.raises(ValueError, match="pooling='mean'"):
        _small(text.recurrent_classifier, pooling="mean")


def test_pretrained_vectors_start_the_embedding_and_stay_fixed(tmp_path):
    """A fake vector source (one distinct row per word) shows which row each id gets."""

    def vectors(vocabulary: list[str], sentences: list[list[str]]) -> np.ndarray:
        return np.arange(len(vocabulary) * 3, dtype=np.float32).reshape(-1, 3)

    model = _small(text.recurrent_classifier, word_vectors=vectors, train_embeddings=False)
    layer = _classifier(model).get_layer("embedding")
    vocabulary = model.get_layer("vectorizer").get_vocabulary()
    assert layer.output_dim == 3 and not layer.trainable
    kept = layer.get_weights()[0]
    np.testing.assert_array_equal(kept[: len(vocabulary)], vectors(vocabulary, []))
    assert not kept[len(vocabulary) :].any()  # ids past the short vocabulary

    model.compile(optimizer=keras.optimizers.Adam(0.1), loss="sparse_categorical_crossentropy")
    model.fit(tf.constant(TRAIN), np.array(LABELS), epochs=2, verbose=0)
    np.testing.assert_array_equal(layer.get_weights()[0], kept)
    model.save(tmp_path / "m.keras")
    again = _classifier(keras.saving.load_model(tmp_path / "m.keras", safe_mode=True))
    np.testing.assert_array_equal(again.get_layer("embedding").get_weights()[0], kept)
    assert not again.get_layer("embedding").trainable


def test_vector_source_reads_the_training_texts_as_the_model_splits_them():
    given = []

    def vectors(vocabulary: list[str], sentences: list[list[str]]) -> np.ndarray:
        given.append((vocabulary, sentences))
        return np.ones((len(vocabulary), 2), np.float32)

    texts = _texts([*TRAIN, "Great, GREAT fun!"])
    text.recurrent_classifier(
        2,
        # the four words seen twice or more; the rest become "[UNK]"; and texts are cut where
        # the model cuts them
        text.vectorizer(texts, max_tokens=6, sequence_length=4),
        texts,
        word_vectors=vectors,
    )
    assert given == [
        (
            ["", "[UNK]", "great", "boring", "and", "a"],
            [
                ["a", "[UNK]", "great", "[UNK]"],
                ["great", "[UNK]", "and", "a"],
                ["[UNK]", "and", "boring"],
                ["boring", "[UNK]"],
                ["great", "great", "[UNK]"],
            ],
        )
    ]


def test_transformer_takes_its_width_from_the_pretrained_vectors():
    def vectors(vocabulary: list[str], sentences: list[list[str]]) -> np.ndarray:
        return np.ones((len(vocabulary), 6), np.float32)

    model = _small(text.transformer_classifier, heads=2, ff_dim=8, word_vectors=vectors)
    assert _classifier(model).get_layer("embedding").output_dim == 6
    assert _classifier(model).get_layer("position_embedding").output_dim == 6
    assert model.predict(tf.constant(["a great story"]), verbose=0).shape == (1, 2)
