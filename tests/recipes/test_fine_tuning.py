"""The fine-tuning recipe end to end on tiny settings: both phases into one run directory, a text
model that reloads in safe mode and reads raw sentences, a tiny image run as the base for digits,
the few-label study, a phased search (Bayesian; Hyperband refused), and bad input on the command
line."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

from dlrecipes import data, few_label_study
from dlrecipes.models import vision
from tests.conftest import recipe_module

RUN_FILES = ["config.json", "history.csv", "metrics.json", "model.keras", "curves.png", "report.md"]


def _main(*argv, recipe: str = "fine_tuning") -> int:
    """A recipe's command line, run in this process."""
    return recipe_module(recipe).main([str(a) for a in argv])


def _phases(run_dir: Path) -> list[str]:
    with (run_dir / "history.csv").open() as f:
        return [row["phase"] for row in csv.DictReader(f)]


@pytest.mark.slow
def test_tiny_text_run_writes_both_phases_and_a_model_that_reads_raw_sentences(tmp_path):
    run_dir = tmp_path / "run"
    assert _main("train", "--tiny", "--run-dir", run_dir) == 0
    for name in RUN_FILES:
        assert (run_dir / name).stat().st_size > 0, name
    assert not (run_dir / "backup").exists()
    assert _phases(run_dir) == ["head", "fine-tune"]
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["num_examples"] == 1275 and metrics["epochs_run"] == 2
    # Beside TF-IDF + logistic regression, fitted on the same 100 kept texts (each once).
    assert metrics["baseline"]["accuracy"] > 0.55 and "C=" in metrics["baseline"]["detail"]
    config = json.loads((run_dir / "config.json").read_text())
    assert config["base"] == "tiny-bert" and config["labels_per_class"] == 50

    model = keras.saving.load_model(run_dir / "model.keras", safe_mode=True)
    assert not model.compiled  # saved without the optimizer state of its phase
    probs = model.predict(tf.constant(["A wonderful, moving film.", "", "Dull."]), verbose=0)
    assert probs.shape == (3, 2)
    np.testing.assert_allclose(probs.sum(-1), 1.0, rtol=1e-5)
    assert _main("evaluate", "--model", run_dir / "model.keras") == 0
    scored = json.loads((run_dir / "eval-rt_snippets.json").read_text())
    assert scored["accuracy"] == pytest.approx(metrics["accuracy"])


@pytest.mark.slow
def test_an_image_run_fine_tuned_on_digits_reads_raw_8x8_images(tmp_path):
    # The base: the image recipe's tiny run, a convnet trained on MNIST for two short epochs.
    image_run = tmp_path / "image"
    assert _main("train", "--tiny", "--run-dir", image_run, recipe="image_classification") == 0
    run_dir = tmp_path / "run"
    status = _main(
        "train", "--tiny", "--base", image_run / "model.keras", "--dataset", "digits",
        "--margin", "0.143", "--run-dir", run_dir,
    )  # fmt: skip
    assert status == 0 and _phases(run_dir) == ["head", "fine-tune"]
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["num_examples"] == 539 and "baseline" not in metrics  # texts only
    config = json.loads((run_dir / "config.json").read_text())
    assert config["head_learning_rate"] == 3e-3 and config["dropout"] == 0.3  # image settings
    assert metrics["accuracy"] > 0.5  # chance is 0.1: what it learned on MNIST carries over
    model = keras.saving.load_model(run_dir / "model.keras", safe_mode=True)
    images, labels = next(data.load("digits").test.batch(100).as_numpy_iterator())
    assert model.input_shape == (None, 8, 8, 1)
    assert (model.predict(images, verbose=0).argmax(-1) == labels).mean() > 0.5


@pytest.fixture(scope="module")
def convnet(tmp_path_factory) -> Path:
    """An untrained image model of this project, saved: a base for checks of the machinery."""
    path = tmp_path_factory.mktemp("convnet") / "model.keras"
    vision.convnet((28, 28, 1), 10, widths=(4, 8), convs_per_stage=1, head="flatten").save(path)
    return path


@pytest.mark.slow
def test_few_label_study_compares_fine_tuning_with_scratch_and_resumes(convnet, tmp_path, capsys):
    run_dir = tmp_path / "study"
    args = ["--tiny", "--base", convnet, "--dataset", "digits", "--run-dir", run_dir]
    assert _main("train", *args, "--study", "5", "--study-seeds", "1", "--seed", "3") == 0
    summary = json.loads((run_dir / "study.json").read_text())
    assert summary["arms"] == ["fine-tuned", "from scratch"]
    assert [(r["arm"], r["seed"]) for r in summary["runs"]] == [
        ("fine-tuned", 3), ("from scratch", 3)
    ]  # fmt: skip
    for arm, run in zip(summary["arms"], summary["runs"], strict=True):
        assert summary["table"][0][arm]["mean"] == run["test_accuracy"]
    sub = run_dir / "from-scratch" / "5-per-class" / "seed-3"
    assert json.loads((sub / "config.json").read_text())["from_scratch"] is True
    assert _phases(sub) == ["from scratch"] * 2  # one phase, as long as the two of fine-tuning
    report = (run_dir / "report.md").read_text()
    assert "| 5 |" in report and "![accuracy against labels per class](study.png)" in report
    assert (run_dir / "study.png").stat().st_size > 0
    # Resumed, the finished runs are kept, not trained again.
    before = {p: p.stat().st_mtime for p in run_dir.rglob("metrics.json")}
    capsys.readouterr()
    assert _main("train", "--resume", "--run-dir", run_dir) == 0
    assert {p: p.stat().st_mtime for p in run_dir.rglob("metrics.json")} == before
    assert "fine-tuned - from scratch" in capsys.readouterr().out


@pytest.mark.slow
def test_a_text_study_puts_the_bag_of_words_beside_both_arms(tmp_path, capsys):
    run_dir = tmp_path / "study"
    args = ["--tiny", "--study", "5", "--study-seeds", "1", "--run-dir", run_dir]
    assert _main("train", *args) == 0
    summary = json.loads((run_dir / "study.json").read_text())
    fitted = [r["baseline_accuracy"] for r in summary["runs"]]
    assert len(fitted) == 2 and fitted[0] == fitted[1]  # both arms kept the same 5 a class
    assert summary["table"][0]["baseline"]["mean"] == fitted[0]
    assert summary["baseline_model"].startswith("TF-IDF")
    assert "(mean ± std, 1 seeds) |" in (run_dir / "report.md").read_text()
    won = fitted[0] >= summary["runs"][0]["test_accuracy"]
    assert ("did as well as fine-tuned or better" in capsys.readouterr().out) == won


def test_study_table_gives_mean_and_spread_over_seeds():
    rows = [
        {"arm": arm, "labels_per_class": count, "seed": seed, "test_accuracy": acc}
        for arm, count, seed, acc in [
            ("a", "5", 0, 0.90), ("b", "5", 0, 0.80), ("a", "5", 1, 0.94),
            ("b", "5", 1, 0.84), ("a", "all", 0, 0.99), ("b", "all", 0, 0.98),
            ("a", "all", 1, 0.97), ("b", "all", 1, 0.98),
        ]
    ]  # fmt: skip
    table = few_label_study._table(rows, ["a", "b"])
    assert [e["labels_per_class"] for e in table] == ["5", "all"]
    assert table[0]["a"]["mean"] == pytest.approx(0.92)
    assert table[0]["a"]["std"] == pytest.approx(np.std([0.90, 0.94], ddof=1))
    assert table[1]["b"] == {"mean": 0.98, "std": 0.0, "min": 0.98, "max": 0.98, "seeds": 2}
    markdown = few_label_study.table_markdown({"arms": ["a", "b"], "table": table})
    assert "| 5 | 92.0% ± 2.8 | 82.0% ± 2.8 | +10.0 |" in markdown
    assert "| all | 98.0% ± 1.4 | 98.0% ± 0.0 | +0.0 |" in markdown


def test_study_puts_the_baseline_beside_the_arms_and_says_where_it_won():
    rows = [
        {"arm": arm, "labels_per_class": count, "seed": seed, "test_accuracy": acc,
         "baseline_accuracy": base}
        for arm, count, seed, acc, base in [
            ("a", "5", 0, 0.60, 0.70), ("b", "5", 0, 0.55, 0.70), ("a", "5", 1, 0.64, 0.66),
            ("b", "5", 1, 0.57, 0.66), ("a", "all", 0, 0.90, 0.80), ("b", "all", 0, 0.85, 0.80),
        ]
    ]  # fmt: skip
    summary = {"arms": ["a", "b"], "table": few_label_study._table(rows, ["a", "b"])}
    assert summary["table"][0]["baseline"]["mean"] == pytest.approx(0.68)
    assert few_label_study.baseline_verdict(summary) == ""  # no baseline name: none fitted
    summary["baseline_model"] = "TF-IDF"
    markdown = few_label_study.table_markdown(summary)
    assert "| 5 | 62.0% ± 2.8 | 56.0% ± 1.4 | 68.0% ± 2.8 | +6.0 |" in markdown
    assert "| all | 90.0% ± 0.0 | 85.0% ± 0.0 | 80.0% ± 0.0 | +5.0 |" in markdown
    verdict = few_label_study.baseline_verdict(summary)
    assert "did as well as a or better at 5 labels per class" in verdict
    summary["table"][0]["baseline"]["mean"] = 0.61
    assert few_label_study.baseline_verdict(summary) == ""


@pytest.mark.slow
def test_search_trains_both_phases_of_every_trial_with_bayesian_by_default(convnet, tmp_path):
    directory = tmp_path / "tuning"
    status = _main(
        "tune", "--tiny", "--base", convnet, "--dataset", "digits",
        "--max-trials", "1", "--directory", directory,
    )  # fmt: skip
    assert status == 0
    best = json.loads((directory / "best_hparams.json").read_text())
    assert {"head_epochs", "unfreeze", "learning_rate"} <= set(best)
    # No --tuner: this recipe searches with Bayesian optimization, not Hyperband.
    report = (directory / "tuning_report.md").read_text()
    assert "bayesian search, objective `val_accuracy` (max)" in report


def test_tune_refuses_hyperband_in_one_line(convnet, tmp_path, capsys):
    """Hyperband grows a trial's epochs in rounds from its last weights; two fixed phases cannot
    follow that, so it is refused before anything is searched, naming the tuners to use."""
    directory = tmp_path / "tuning"
    args = ["--base", convnet, "--dataset", "digits", "--directory", directory]
    assert _main("tune", "--tiny", "--tuner", "hyperband", *args) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --tuner hyperband grows each trial's epochs in rounds")
    assert err.endswith("use --tuner bayesian (the default here) or --tuner random.\n")
    assert err.count("\n") == 1
    assert not directory.exists()


BAD_INPUT = {
    "missing base": (["--base", "{tmp}/nothing/model.keras"], "no such file"),
    "unreadable base": (["--base", "{tmp}/junk.keras"], "is not a readable Keras model"),
    "unknown base": (["--base", "bert"], "Unknown base 'bert'"),
    "text base, images": (["--dataset", "digits"], "reads text, but --dataset digits holds images"),
    "image base, text": (["--base", "{convnet}"], "reads images, but --dataset rt_snippets holds"),
    "too many labels": (
        ["--base", "{convnet}", "--dataset", "digits", "--labels-per-class", "500"],
        "--labels-per-class 500 is not possible",
    ),
    "unfreeze too deep": (
        ["--base", "{convnet}", "--dataset", "digits", "--unfreeze", "9"],
        "--unfreeze 9 is more than the base has: 2 layers",
    ),
    "offline weights": (["--base", "resnet50", "--dataset", "digits"], "needs its ImageNet"),
}


@pytest.mark.parametrize("case", BAD_INPUT)
@pytest.mark.usefixtures("offline")
def test_bad_input_is_one_line_and_leaves_no_finished_run(
    case, convnet, tmp_path, capsys, monkeypatch
):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))  # no cached ImageNet weights
    (tmp_path / "junk.keras").write_bytes(b"not a model")
    flags, expected = BAD_INPUT[case]
    flags = [f.format(tmp=tmp_path, convnet=convnet) for f in flags]
    run_dir = tmp_path / "run"
    assert _main("train", "--tiny", *flags, "--run-dir", run_dir) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and expected in err and "\n" not in err, err
    assert not (run_dir / "config.json").exists() and not (run_dir / "metrics.json").exists()
