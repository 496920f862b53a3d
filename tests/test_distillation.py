"""Distillation's parts: soft targets and the loss against numbers computed here, the transfer set
(augmentation, and no validation or test text in it), the teacher's checks and its cached
predictions, and a student on token ids that XLA compiles."""

from __future__ import annotations

import json
import re

import keras
import keras_hub
import numpy as np
import pytest
import tensorflow as tf

from dlrecipes import data, distillation, optimizers
from dlrecipes.config import RecipeConfig
from dlrecipes.distillation import transfer
from dlrecipes.errors import CheckpointError
from dlrecipes.models import text

TEXTS = ["a fine and moving film", "dull and far too long", "great fun", "an awful mess"]


def softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


@pytest.mark.parametrize("temperature", [0.5, 1.0, 2.0, 5.0])
def test_soft_targets_from_probabilities_equal_softmax_of_logits_over_t(temperature):
    logits = np.array([[2.0, 0.0, -1.0], [0.3, 0.1, 4.0], [-3.0, 5.0, 5.0]])
    got = np.asarray(distillation.soft_targets(softmax(logits), temperature))
    np.testing.assert_allclose(got, softmax(logits / temperature), rtol=1e-5, atol=1e-6)


def test_soft_targets_at_two_by_hand():
    # softmax(log([0.9, 0.1]) / 2) = [sqrt(.9), sqrt(.1)] / (sqrt(.9) + sqrt(.1)) = [0.75, 0.25]
    got = np.asarray(distillation.soft_targets(np.array([[0.9, 0.1]]), 2.0))
    np.testing.assert_allclose(got, [[0.75, 0.25]], rtol=1e-6)


def test_loss_is_label_cross_entropy_plus_t_squared_kl_of_the_softened_outputs():
    teacher_logits = np.array([[2.0, -1.0], [0.5, 0.2], [-1.0, 3.0]])
    student_logits = np.array([[0.4, 0.1], [1.5, -0.5], [0.0, 0.2]])
    labels = np.array([0, 1, 1])
    t, w = 2.0, 0.3
    soft_t, soft_s = softmax(teacher_logits / t), softmax(student_logits / t)
    kl = (soft_t * np.log(soft_t / soft_s)).sum(axis=1)
    student = softmax(student_logits)
    ce = -np.log(student[np.arange(3), labels])
    expected = np.mean(w * ce + (1 - w) * t**2 * kl)

    y_true = distillation.pack(labels, softmax(teacher_logits))
    loss = distillation.SoftTargetLoss(temperature=t, label_weight=w)
    got = float(loss(tf.constant(y_true), tf.constant(student, tf.float32)))
    assert got == pytest.approx(expected, rel=1e-4)
    # Without the labels' share, 0.34 for the example of soft_targets' docstring, never 0.
    pure = distillation.SoftTargetLoss(temperature=2.0)
    probe = distillation.pack(np.array([0]), np.array([[0.9, 0.1]]))
    assert float(pure(tf.constant(probe), tf.constant([[0.6, 0.4]]))) == pytest.approx(
        0.3410, abs=1e-3
    )


def test_label_accuracy_reads_the_label_part_of_packed_targets():
    y_true = distillation.pack(np.array([0, 1, 1]), np.array([[0.1, 0.9]] * 3))
    y_pred = np.array([[0.8, 0.2], [0.3, 0.7], [0.6, 0.4]])
    metric = distillation.LabelAccuracy()
    metric.update_state(tf.constant(y_true), tf.constant(y_pred, tf.float32))
    assert metric.name == "accuracy" and float(metric.result()) == pytest.approx(2 / 3)


def test_augmenter_masks_swaps_and_keeps_ngrams():
    rng = np.random.default_rng(0)
    swap_to = lambda word, rng: "X"  # noqa: E731
    words = ["one", "two", "three", "four", "five", "six", "seven"]
    sentence = " ".join(words)
    assert transfer.Augmenter(mask=1.0, ngram=0.0)(sentence, swap_to, rng) == " ".join(
        [transfer.MASK] * 7
    )
    assert transfer.Augmenter(mask=0.0, swap=1.0, ngram=0.0)(sentence, swap_to, rng) == " ".join(
        ["X"] * 7
    )
    for _ in range(20):
        kept = transfer.Augmenter(mask=0.0, swap=0.0, ngram=1.0, max_ngram=3)(
            sentence, swap_to, rng
        ).split()
        assert 1 <= len(kept) <= 3
        start = words.index(kept[0])
        assert words[start : start + len(kept)] == kept  # a run of the sentence's words


def test_transfer_set_never_holds_a_validation_or_test_text():
    train = ["A moving film.", "far too long", "great fun indeed", "an awful, awful mess"]
    labels = [0, 1, 0, 1]
    # Copies that are n-grams of the training texts would read like these held-out texts.
    held_out = ["Moving film!", "Too long.", "GREAT FUN", "awful"]
    build = dict(
        copies=30, replace=transfer.corpus_words(train), augmenter=transfer.Augmenter(), seed=0
    )
    unfiltered, _ = transfer.build(train, labels, held_out=[], **build)
    blocked = {transfer.normalize(t) for t in held_out}
    assert blocked & {transfer.normalize(t) for t in unfiltered}  # they do come up

    texts, hard = transfer.build(train, labels, held_out=held_out, **build)
    normalized = [transfer.normalize(t) for t in texts]
    assert not blocked & set(normalized)
    assert len(set(normalized)) == len(normalized)  # no duplicates either
    assert texts[:4] == train and hard[:4].tolist() == labels and (hard[4:] == -1).all()
    assert len(texts) > 2 * len(train)

    # A training text that reads like a test text is left out as well.
    texts, hard = transfer.build(train, labels, held_out=["a moving FILM"], **build)
    assert "A moving film." not in texts and hard[:3].tolist() == [1, 0, 1]


def test_neighbour_words_swaps_a_word_for_a_near_one():
    vectors = {"good": [1, 0.1, 0], "great": [1, 0.2, 0], "bad": [0, 1, 0.1], "awful": [0, 1, 0.2]}
    replace = transfer.neighbour_words(
        ["Good film", "great, bad and awful"] * 2,
        lambda words: np.array([vectors.get(w, [0, 0, 1]) for w in words], np.float32),
        k=1,
    )
    rng = np.random.default_rng(0)
    assert replace("Good!", rng) == "great"
    assert replace("awful", rng) == "bad"
    assert replace("unseen", rng) in [
        "Good",
        "film",
        "great,",
        "bad",
        "and",
        "awful",
    ]  # a corpus word


# --- the teacher -----------------------------------------------------------------------------


def tiny_text_model(
    num_classes: int = 2, seed: int = 0, activation: str | None = None, texts=TEXTS
) -> keras.Model:
    """A small text classifier behind its vectorizer: raw strings in, as a teacher is saved."""
    keras.utils.set_random_seed(seed)
    vectorize = text.vectorizer(
        tf.data.Dataset.from_tensor_slices(texts), max_tokens=500, sequence_length=8
    )
    model = text.recurrent_classifier(num_classes, vectorize, embedding_dim=4, units=(4,))
    if activation:  # a head that outputs something else than probabilities
        model.get_layer("predictions").activation = keras.activations.get(activation)
    return text.end_to_end(vectorize, model)


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("DLRECIPES_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache" / "teacher-predictions"


def test_teacher_predictions_are_cached_and_recomputed_for_another_teacher(tmp_path, cache, capsys):
    path = tmp_path / "teacher" / "model.keras"
    path.parent.mkdir()
    tiny_text_model(seed=0).save(path)
    teacher = distillation.Teacher(path, ["neg", "pos"])
    first = teacher.predict(TEXTS)
    assert first.shape == (4, 2) and len(list(cache.glob("*.npy"))) == 1
    # Labelled by length on its ids, as the whole model on strings labels them.
    np.testing.assert_allclose(first, teacher.serve(tf.constant(TEXTS)), rtol=1e-5, atol=1e-6)
    said = capsys.readouterr().out.splitlines()  # what, then done, how fast (a log has no bar)
    assert said[0].startswith("Teacher predictions for 4 texts (cached next time in ")
    assert re.fullmatch(r"  done in \d+s \([\d,]+ texts/s\)\.", said[1])

    again = distillation.Teacher(path, ["neg", "pos"])
    again.serve = again.on_ids = None  # the teacher is not called again: the cache answers
    np.testing.assert_array_equal(again.predict(TEXTS), first)
    with pytest.raises(TypeError):  # other texts are not in the cache
        again.predict(TEXTS[:2])

    tiny_text_model(seed=1).save(path)  # another teacher in the same file
    other = distillation.Teacher(path, ["neg", "pos"]).predict(TEXTS)
    assert len(list(cache.glob("*.npy"))) == 2
    assert not np.allclose(other, first)

    next(cache.glob("*.npy")).write_bytes(b"damaged")  # computed anew, not a crash
    assert distillation.Teacher(path, ["neg", "pos"]).predict(TEXTS).shape == (4, 2)


def test_a_keras_hub_classifier_with_its_tokenizer_is_a_teacher(tmp_path, cache):
    vocabulary = [
        "[PAD]",
        "[UNK]",
        "[CLS]",
        "[SEP]",
        "[MASK]",
        *sorted(set(" ".join(TEXTS).split())),
    ]
    tokenizer = keras_hub.tokenizers.BertTokenizer(vocabulary=vocabulary, lowercase=True)
    backbone = keras_hub.models.BertBackbone(
        vocabulary_size=len(vocabulary),
        num_layers=1,
        num_heads=2,
        hidden_dim=8,
        intermediate_dim=16,
        max_sequence_length=16,
    )
    model = keras_hub.models.BertTextClassifier(
        backbone,
        num_classes=2,
        preprocessor=keras_hub.models.BertTextClassifierPreprocessor(tokenizer, sequence_length=16),
        activation="softmax",
    )
    path = tmp_path / "bert.keras"
    model.save(path)
    teacher = distillation.Teacher(path, ["neg", "pos"])
    expected = model.predict(TEXTS, verbose=0)
    np.testing.assert_allclose(teacher.predict(TEXTS), expected, rtol=1e-5, atol=1e-6)


def test_unusable_teachers_are_refused_with_one_line(tmp_path, cache):
    def refusal(model, classes=("neg", "pos"), metrics=None) -> str:
        path = tmp_path / f"t{len(list(tmp_path.iterdir()))}" / "model.keras"
        path.parent.mkdir()
        if model is not None:
            model.save(path)
        if metrics:
            (path.parent / "metrics.json").write_text(json.dumps(metrics))
        with pytest.raises(CheckpointError) as err:
            distillation.Teacher(path, list(classes))
        assert "\n" not in str(err.value)
        return str(err.value)

    assert "no such file" in refusal(None)
    image = keras.Sequential([keras.Input((8, 8, 1), dtype="uint8"), keras.layers.Flatten()])
    assert "does not classify raw text" in refusal(image)
    assert "the data has 2 classes" in refusal(tiny_text_model(num_classes=3))
    assert "does not output probabilities" in refusal(tiny_text_model(activation="linear"))
    message = refusal(tiny_text_model(), metrics={"class_names": ["cats", "dogs"]})
    assert "['cats', 'dogs'] (its metrics.json)" in message
    (tmp_path / "junk.keras").write_bytes(b"not a zip")
    with pytest.raises(CheckpointError, match="not a readable Keras model"):
        distillation.Teacher(tmp_path / "junk.keras", ["neg", "pos"])


def test_a_student_on_token_ids_learns_the_soft_targets_with_xla(tmp_path, cache, recwarn):
    """The transfer set tokenized in the pipeline by the student's vectorizer, on real
    snippets: batches of ids grouped by length, and a training step XLA compiles."""
    snippets = data.load_text("rt_snippets")
    splits = data.Splits(
        train=snippets.train.take(192),
        validation=snippets.validation.take(64),
        test=snippets.test.take(64),
        info=snippets.info,
    )
    texts = [t.decode() for t, _ in splits.train.as_numpy_iterator()]
    path = tmp_path / "teacher" / "model.keras"
    path.parent.mkdir()
    tiny_text_model(texts=texts).save(path)
    vectorize = text.vectorizer(
        splits.train.map(lambda t, y: t), max_tokens=500, sequence_length=32
    )
    d = distillation.distill(
        path,
        splits,
        copies=1,
        temperature=2.0,
        label_weight=0.0,
        batch_size=32,
        tokenizer=vectorize,
        boundaries=[33],
        pad_to_boundary=True,
    )
    for ids, targets in d.train.take(3).as_numpy_iterator():
        assert ids.dtype == np.int32 and ids.shape[1] == 32  # the group's boundary less one
        assert targets.shape[1] == 4  # label, then the teacher's probabilities
    student = text.recurrent_classifier(2, vectorize, embedding_dim=8, units=(4,))
    config = RecipeConfig(jit=True, optimizer="adam", learning_rate=1e-2, schedule="constant")
    steps = int(d.train.cardinality())
    assert steps == data.count_batches(d.train) > 6  # the copies are in it
    student.compile(
        optimizer=optimizers.optimizer(config, steps),
        loss=d.loss,
        metrics=[d.metric],
        jit_compile=True,
    )
    assert student.jit_compile is True
    history = student.fit(d.train, validation_data=d.validation, epochs=2, verbose=0, shuffle=False)
    assert student.jit_compile is True
    assert not [w for w in recwarn.list if "jit_compile" in str(w.message)]
    assert history.history["loss"][-1] < history.history["loss"][0]
    assert 0.0 <= history.history["val_accuracy"][-1] <= 1.0
