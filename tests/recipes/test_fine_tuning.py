"""The fine-tuning recipe end to end on tiny settings: both phases into one run directory, a text
model that reloads in safe mode and reads raw sentences, a tiny image run as the base for digits,
the few-label study, a phased search, and bad input on the command line."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

from dlrecipes import data
from tests.conftest import recipe_main

RUN_FILES = ["config.json", "history.csv", "metrics.json", "model.keras", "curves.png", "report.md"]


_main = recipe_main("fine_tuning")


def _phases(run_dir: Path) -> list[str]:
    with (run_dir / "history.csv").open() as f:
        return [row["phase"] for row in csv.DictReader(f)]


@pytest.fixture(scope="module")
def text_run(tmp_path_factory) -> Path:
    run_dir = tmp_path_factory.mktemp("text") / "run"
    assert _main("train", "--tiny", "--run-dir", run_dir) == 0
    return run_dir


def test_tiny_text_run_writes_both_phases_into_one_run(text_run):
    for name in RUN_FILES:
        assert (text_run / name).stat().st_size > 0, name
    assert not (text_run / "backup").exists()
    assert _phases(text_run) == ["1", "2"]
    metrics = json.loads((text_run / "metrics.json").read_text())
    assert metrics["num_examples"] == 1275 and metrics["epochs_run"] == 2
    config = json.loads((text_run / "config.json").read_text())
    assert config["base"] == "tiny-bert" and config["labels_per_class"] == 50


def test_text_model_reloads_in_safe_mode_and_scores_like_training(text_run, capsys):
    model = keras.saving.load_model(text_run / "model.keras", safe_mode=True)
    assert not model.compiled  # saved without the optimizer state of its phase
    probs = model.predict(tf.constant(["A wonderful, moving film.", "", "Dull."]), verbose=0)
    assert probs.shape == (3, 2)
    np.testing.assert_allclose(probs.sum(-1), 1.0, rtol=1e-5)
    assert _main("evaluate", "--model", text_run / "model.keras") == 0
    scored = json.loads((text_run / "eval-rt_snippets.json").read_text())
    trained = json.loads((text_run / "metrics.json").read_text())
    assert scored["accuracy"] == pytest.approx(trained["accuracy"])


@pytest.fixture(scope="module")
def image_base(tmp_path_factory) -> Path:
    """The image recipe's tiny run: a convnet trained on MNIST digits for two short epochs."""
    run_dir = tmp_path_factory.mktemp("image") / "run"
    assert recipe_main("image_classification")("train", "--tiny", "--run-dir", run_dir) == 0
    return run_dir / "model.keras"


def test_an_image_run_fine_tuned_on_digits_reads_raw_8x8_images(image_base, tmp_path):
    run_dir = tmp_path / "run"
    status = _main(
        "train", "--tiny", "--base", image_base, "--dataset", "digits", "--margin", "0.143",
        "--run-dir", run_dir,
    )  # fmt: skip
    assert status == 0 and _phases(run_dir) == ["1", "2"]
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["num_examples"] == 539
    assert metrics["accuracy"] > 0.5  # chance is 0.1: what it learned on MNIST carries over
    model = keras.saving.load_model(run_dir / "model.keras", safe_mode=True)
    images, labels = next(data.load("digits").test.batch(100).as_numpy_iterator())
    assert model.input_shape == (None, 8, 8, 1)
    assert (model.predict(images, verbose=0).argmax(-1) == labels).mean() > 0.5


def test_few_label_study_compares_fine_tuning_with_scratch_and_resumes(
    image_base, tmp_path, capsys
):
    run_dir = tmp_path / "study"
    args = ["--tiny", "--base", image_base, "--dataset", "digits", "--run-dir", run_dir]
    assert _main("train", *args, "--study", "5", "--study-seeds", "2") == 0
    summary = json.loads((run_dir / "study.json").read_text())
    assert summary["arms"] == ["fine-tuned", "from scratch"]
    assert [(r["arm"], r["seed"]) for r in summary["runs"]] == [
        ("fine-tuned", 0), ("from scratch", 0), ("fine-tuned", 1), ("from scratch", 1)
    ]  # fmt: skip
    for arm in summary["arms"]:
        runs = [r["test_accuracy"] for r in summary["runs"] if r["arm"] == arm]
        assert summary["table"][0][arm]["mean"] == pytest.approx(np.mean(runs))
        assert summary["table"][0][arm]["std"] == pytest.approx(np.std(runs, ddof=1))
    sub = run_dir / "from-scratch" / "5-per-class" / "seed-1"
    assert json.loads((sub / "config.json").read_text())["from_scratch"] is True
    assert _phases(sub) == ["1", "1"]  # one phase, as long as the two of fine-tuning
    report = (run_dir / "report.md").read_text()
    assert "| 5 |" in report and "![accuracy against labels per class](study.png)" in report
    assert (run_dir / "study.png").stat().st_size > 0
    # Resumed, the finished runs are kept, not trained again.
    before = {p: p.stat().st_mtime for p in run_dir.rglob("metrics.json")}
    capsys.readouterr()
    assert _main("train", "--resume", "--run-dir", run_dir) == 0
    assert {p: p.stat().st_mtime for p in run_dir.rglob("metrics.json")} == before
    assert "fine-tuned - from scratch" in capsys.readouterr().out


def test_search_trains_both_phases_of_every_trial(image_base, tmp_path):
    directory = tmp_path / "tuning"
    status = _main(
        "tune", "--tiny", "--base", image_base, "--dataset", "digits", "--tuner", "random",
        "--max-trials", "1", "--directory", directory,
    )  # fmt: skip
    assert status == 0
    best = json.loads((directory / "best_hparams.json").read_text())
    assert {"head_epochs", "unfreeze", "learning_rate"} <= set(best)


BAD_INPUT = {
    "missing base": (["--base", "{tmp}/nothing/model.keras"], "no such file"),
    "unreadable base": (["--base", "{tmp}/junk.keras"], "is not a readable Keras model"),
    "unknown base": (["--base", "bert"], "Unknown base 'bert'"),
    "text base, images": (["--dataset", "digits"], "reads text, but --dataset digits holds images"),
    "image base, text": (
        ["--base", "{image}"],
        "reads images, but --dataset rt_snippets holds text",
    ),
    "too many labels": (
        ["--base", "{image}", "--dataset", "digits", "--labels-per-class", "500"],
        "--labels-per-class 500 is not possible",
    ),
    "unfreeze too deep": (
        ["--base", "{image}", "--dataset", "digits", "--unfreeze", "9"],
        "--unfreeze 9 is more than the base has: 2 layers",
    ),
    "offline weights": (
        ["--base", "resnet50", "--dataset", "digits"],
        "needs its ImageNet weights",
    ),
}


@pytest.mark.parametrize("case", BAD_INPUT)
def test_bad_input_is_one_line_and_leaves_no_finished_run(
    case, image_base, tmp_path, capsys, monkeypatch
):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))  # no cached ImageNet weights
    (tmp_path / "junk.keras").write_bytes(b"not a model")
    flags, expected = BAD_INPUT[case]
    flags = [f.format(tmp=tmp_path, image=image_base) for f in flags]
    run_dir = tmp_path / "run"
    assert _main("train", "--tiny", *flags, "--run-dir", run_dir) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and expected in err and "\n" not in err, err
    assert not (run_dir / "config.json").exists() and not (run_dir / "metrics.json").exists()
