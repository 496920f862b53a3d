"""The image recipe end to end on tiny settings: train, the run directory, reload, evaluate,
export, and a copy of the recipe trained outside the repository (cross-validation and the
refusals of the command line: tests/test_cli.py)."""

from __future__ import annotations

import json
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

from dlrecipes.data.idx import read_idx
from tests.conftest import ROOT, SHARED_DATA, recipe_main, run_cli

RECIPE = ROOT / "recipes" / "image_classification" / "recipe.py"
MAIN = recipe_main("image_classification")
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
    run_dir = tmp_path_factory.mktemp("image") / "run"
    proc = run_cli(RECIPE, "train", "--tiny", "--export", "--run-dir", run_dir)
    return run_dir, proc


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


def test_saved_model_reloads_in_safe_mode_and_reads_raw_digits(trained):
    run_dir, _ = trained
    model = keras.saving.load_model(run_dir / "model.keras", safe_mode=True)
    images = read_idx(next((SHARED_DATA / "mnist-test").glob("*images*")))[:200, ..., None]
    labels = read_idx(next((SHARED_DATA / "mnist-test").glob("*labels*")))[:200]
    probs = model.predict(images.astype(np.uint8), verbose=0)
    assert probs.shape == (200, 10)
    assert (probs.argmax(-1) == labels).mean() > 0.5


def test_export_serves_raw_uint8(trained):
    run_dir, _ = trained
    served = tf.saved_model.load(str(run_dir / "saved_model"))
    out = served.serve(tf.zeros((2, 28, 28, 1), tf.uint8))
    assert tuple(out.shape) == (2, 10)


def test_evaluate_on_the_official_test_split(trained):
    run_dir, _ = trained
    proc = run_cli(
        RECIPE,
        "evaluate",
        "--model",
        run_dir / "model.keras",
        "--dataset",
        f"idx:{SHARED_DATA / 'mnist-test'}",
    )
    out = json.loads(Path(proc.stdout.strip().splitlines()[-1]).read_text())
    assert out["num_examples"] == 10_000 and out["accuracy"] > 0.5


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


def test_copied_recipe_trains_outside_the_repository(tmp_path):
    project = tmp_path / "elsewhere"
    project.mkdir()
    proc = run_cli("-m", "dlrecipes", "copy", "image-classification", project, cwd=project)
    assert "pip install" in proc.stdout
    copied = project / "image_classification" / "recipe.py"
    assert copied.exists() and (copied.parent / "README.md").exists()
    train = run_cli(copied, "train", "--tiny", "--epochs", "1", "--run-dir", "runs/x", cwd=project)
    assert train.stdout.strip().splitlines()[-1] == "runs/x"
    assert (project / "runs" / "x" / "model.keras").exists()
    again = run_cli(
        "-m", "dlrecipes", "copy", "image_classification", project, cwd=project, check=False
    )
    assert again.returncode == 2 and "exists already" in again.stderr
