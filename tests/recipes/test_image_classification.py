"""The image recipe end to end on tiny settings: train, the run directory, reload, evaluate,
export and predict (cross-validation and the refusals of the command line: tests/test_cli.py;
a copy trained outside the repository: tests/test_packaging.py)."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

from dlrecipes.data.idx import read_idx
from tests.conftest import MNIST_TEST_DIR, ROOT, recipe_module, run_cli

RECIPE = ROOT / "recipes" / "image_classification" / "recipe.py"


def MAIN(*argv) -> int:
    """The image recipe's command line, run in this process."""
    return recipe_module("image_classification").main([str(a) for a in argv])


RUN_FILES = [
    "config.json",
    "history.csv",
    "metrics.json",
    "model.keras",
    "curves.png",
    "confusion.png",
    "report.md",
]


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> tuple:
    """A tiny run, started as a new user's `make demo` would: its data not prepared yet, and
    without the TF_CPP_MIN_LOG_LEVEL the tests set."""
    run_dir = tmp_path_factory.mktemp("image") / "run"
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    env["TFDS_DATA_DIR"] = str(tmp_path_factory.mktemp("unprepared"))
    export = ["--export", "saved_model,litert,onnx"]
    proc = run_cli(RECIPE, "train", "--tiny", *export, "--run-dir", run_dir, env=env)
    return run_dir, proc


@pytest.mark.slow
def test_the_console_shows_the_run_and_nothing_else(trained):
    """No TensorFlow start-up or CUDA lines, no TFDS size lines or progress bars, no Keras
    warnings: the data being prepared and when that is done, one line per epoch, the result,
    the run directory."""
    run_dir, proc = trained
    assert proc.stderr == ""
    lines = proc.stdout.splitlines()
    assert len(lines) == 7, proc.stdout
    assert re.fullmatch(r"Preparing mnist_sample once under \S+ \.\.\.", lines[0])
    assert re.fullmatch(r"  done in \d+s\.", lines[1])
    assert re.fullmatch(
        r"Training image_classification on mnist_sample: 63 steps/epoch, \d replicas?, "
        rf"XLA (on|off), precision \w+; writing {re.escape(str(run_dir))}",
        lines[2],
    )
    for epoch, line in enumerate(lines[3:5], start=1):
        assert re.fullmatch(rf"Epoch {epoch}/2 - [\d.]+s - accuracy [\d.]+ - loss .*", line)
    assert lines[5].startswith("test accuracy: ") and lines[6] == str(run_dir)


@pytest.mark.slow
def test_train_writes_every_file_of_the_run_directory(trained):
    run_dir, proc = trained
    assert proc.stdout.strip().splitlines()[-1] == str(run_dir)
    for name in RUN_FILES:
        assert (run_dir / name).stat().st_size > 0, name
    assert any((run_dir / "tensorboard").rglob("events.out.tfevents.*"))
    assert not (run_dir / "backup").exists()
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["num_examples"] == 500
    assert metrics["accuracy"] > 0.5  # two tiny epochs already learn real digits
    assert np.sum(metrics["confusion_matrix"]) == 500
    assert set(metrics["per_class"]) == {str(i) for i in range(10)}
    assert f"{metrics['accuracy']:.4f}" in (run_dir / "report.md").read_text()
    config = json.loads((run_dir / "config.json").read_text())
    assert config["dataset"] == "mnist_sample" and config["widths"] == [16, 32]


@pytest.mark.slow
def test_saved_model_reloads_in_safe_mode_and_reads_raw_digits(trained):
    run_dir, _ = trained
    model = keras.saving.load_model(run_dir / "model.keras", safe_mode=True)
    images = read_idx(next(MNIST_TEST_DIR.glob("*images*")))[:200, ..., None]
    labels = read_idx(next(MNIST_TEST_DIR.glob("*labels*")))[:200]
    probs = model.predict(images.astype(np.uint8), verbose=0)
    assert probs.shape == (200, 10)
    assert (probs.argmax(-1) == labels).mean() > 0.5


@pytest.mark.slow
def test_every_export_serves_raw_uint8_and_was_checked_on_the_test_split(trained):
    run_dir, _ = trained
    metrics = json.loads((run_dir / "metrics.json").read_text())
    rows = {row["format"]: row for row in metrics["exports"]}
    assert list(rows) == ["keras", "saved_model", "litert", "litert-int8", "onnx"]
    for kind in ("saved_model", "litert", "onnx"):
        assert rows[kind]["agreement"] == 1.0 and rows[kind]["max_abs_diff"] < 1e-4, rows[kind]
    assert rows["litert-int8"]["accuracy"] > metrics["accuracy"] - 0.05
    assert (
        "| litert-int8 | model-int8.tflite | uint8 images |" in (run_dir / "report.md").read_text()
    )
    served = tf.saved_model.load(str(run_dir / "saved_model"))
    images = read_idx(next(MNIST_TEST_DIR.glob("*images*")))[:200, ..., None]
    model = keras.saving.load_model(run_dir / "model.keras", safe_mode=True)
    expected = model.predict(images, verbose=0)
    np.testing.assert_allclose(served.serve(tf.constant(images)), expected, atol=1e-5)


@pytest.mark.slow
def test_evaluate_on_the_official_test_split(trained):
    run_dir, _ = trained
    proc = run_cli(
        RECIPE,
        "evaluate",
        "--model",
        run_dir / "model.keras",
        "--dataset",
        f"idx:{MNIST_TEST_DIR}",
    )
    out = json.loads(Path(proc.stdout.strip().splitlines()[-1]).read_text())
    assert out["num_examples"] == 1_000 and out["accuracy"] > 0.5


@pytest.mark.slow
def test_evaluate_refuses_data_of_another_shape(trained, tmp_path, capsys):
    run_dir, _ = trained
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        for i in range(3):
            tf.io.write_file(
                str(tmp_path / name / f"{i}.png"), tf.io.encode_png(tf.zeros((8, 8, 3), tf.uint8))
            )
    status = MAIN(
        "evaluate",
        "--model",
        run_dir / "model.keras",
        "--dataset",
        f"folder:{tmp_path}",
        "--image-size",
        "8,8",
    )
    err = capsys.readouterr().err
    assert status == 2
    assert "(28, 28, 1)" in err and "(8, 8, 3)" in err


def test_bad_flag_value_is_named(tmp_path, capsys):
    assert MAIN("train", "--optimizer", "adamx", "--run-dir", tmp_path / "r") == 2
    assert "optimizer='adamx'" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


@pytest.mark.slow
def test_predict_names_the_digit_in_image_files_and_folders(trained, tmp_path, capsys):
    run_dir, _ = trained
    images = read_idx(next(MNIST_TEST_DIR.glob("*images*")))[:8, ..., None]
    labels = read_idx(next(MNIST_TEST_DIR.glob("*labels*")))[:8]
    folder = tmp_path / "digits"
    folder.mkdir()
    for i, image in enumerate(images):
        tf.io.write_file(str(folder / f"{i}.png"), tf.io.encode_png(image))
    # A colour image twice the size: read as grey and resized, as the model expects.
    big = tmp_path / "big.jpg"
    colour = tf.image.resize(tf.image.grayscale_to_rgb(tf.constant(images[0])), (56, 56))
    tf.io.write_file(str(big), tf.io.encode_jpeg(tf.cast(colour, tf.uint8)))
    model = run_dir / "model.keras"

    assert MAIN("predict", "--model", model, folder, big, "--json") == 0
    results = json.loads(capsys.readouterr().out)
    assert [r["input"] for r in results] == [str(folder / f"{i}.png") for i in range(8)] + [
        str(big)
    ]
    for r in results:
        assert r["class"] == max(r["probabilities"], key=r["probabilities"].get)
        assert r["probability"] == max(r["probabilities"].values())
        assert sum(r["probabilities"].values()) == pytest.approx(1, abs=1e-4)
    predicted = [int(r["class"]) for r in results]
    assert np.mean(np.array(predicted[:8]) == labels) >= 0.5  # two tiny epochs: most are right
    assert predicted[8] == predicted[0]

    # The plain output says the same, one line per image.
    assert MAIN("predict", "--model", model, folder, big) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == len(results)
    for line, r in zip(lines, results, strict=True):
        label, probability, path = line.split()
        assert (label, path) == (r["class"], r["input"])
        assert float(probability) == pytest.approx(r["probability"], abs=1e-4)


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("notes.png", b"not an image", "notes.png is not an image TensorFlow can decode"),
        ("missing.png", None, "missing.png: no such file or folder"),
    ],
)
@pytest.mark.slow
def test_predict_refuses_what_is_no_image(trained, tmp_path, capsys, name, content, message):
    if content is not None:
        (tmp_path / name).write_bytes(content)
    assert MAIN("predict", "--model", trained[0] / "model.keras", tmp_path / name) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: ") and message in err
