"""The text recipe end to end on tiny settings: train on the real snippets, the report, a safe-mode
reload that classifies new sentences, evaluate, a multi-class CSV, and bad input on the command
line."""

from __future__ import annotations

import json

import keras
import numpy as np
import pytest
import tensorflow as tf

import dlrecipes
from dlrecipes import baselines
from dlrecipes.models import text
from tests.conftest import ROOT, recipe_module, run_cli

RECIPE = ROOT / "recipes" / "text_bilstm" / "recipe.py"


def main(*argv) -> int:
    """The text recipe's command line, run in this process."""
    return recipe_module("text_bilstm").main([str(a) for a in argv])


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> tuple:
    run_dir = tmp_path_factory.mktemp("text") / "run"
    # --jit: the model trains on token ids made in tf.data, so XLA compiles it, and the log says so.
    proc = run_cli(RECIPE, "train", "--tiny", "--jit", "--run-dir", run_dir)
    return run_dir, proc


@pytest.mark.slow
def test_train_writes_the_run_and_a_report_with_the_worst_mistakes(trained):
    run_dir, proc = trained
    assert proc.stdout.strip().splitlines()[-1] == str(run_dir)
    assert ", XLA on, " in proc.stdout and "XLA off" not in proc.stdout
    assert "jit_compile" not in proc.stderr  # no Keras fallback warning either
    for name in ("config.json", "history.csv", "metrics.json", "model.keras", "confusion.png"):
        assert (run_dir / name).stat().st_size > 0, name
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["num_examples"] == 1275
    assert metrics["accuracy"] > 0.65  # above the 57.8% of always answering "fresh"
    # TF-IDF + logistic regression on the same split, beside the model, in the last lines too.
    baseline = metrics["baseline"]
    assert baseline["accuracy"] > 0.7 and baseline["name"] == baselines.BAG_OF_WORDS
    gap = 100 * (metrics["accuracy"] - baseline["accuracy"])
    assert baseline["difference_points"] == pytest.approx(gap, abs=0.01)
    last = proc.stdout.strip().splitlines()[-4:-1]
    assert any(line.startswith(f"baseline {baselines.BAG_OF_WORDS}: ") for line in last)
    report = (run_dir / "report.md").read_text()
    assert f"{baseline['difference_points']:+.2f} points" in report
    matrix = metrics["confusion_matrix"]
    assert f"| **fresh** | {matrix[0][0]} | {matrix[0][1]} |" in report
    assert "| rotten |" in report  # the per-class table
    worst = report.split("## The ten most confidently wrong test texts")[1]
    rows = [line for line in worst.splitlines() if line.startswith("| 0.") or "| 1.0" in line]
    assert len(rows) == 10
    confidences = [float(r.split("|")[1]) for r in rows]
    assert confidences == sorted(confidences, reverse=True) and confidences[0] > 0.5


@pytest.mark.slow
def test_model_reloads_in_safe_mode_and_classifies_new_raw_sentences(trained):
    run_dir, _ = trained
    model = keras.saving.load_model(run_dir / "model.keras", safe_mode=True)
    sentences = tf.constant(
        ["A wonderful, moving film with superb acting.", "", "Dull, lifeless and far too long."]
    )
    probs = model.predict(sentences, verbose=0)
    assert probs.shape == (3, 2)
    np.testing.assert_allclose(probs.sum(-1), 1.0, rtol=1e-5)


@pytest.mark.slow
def test_evaluate_scores_the_saved_model_like_training_did(trained, capsys):
    run_dir, _ = trained
    assert main("evaluate", "--model", run_dir / "model.keras") == 0
    scored = json.loads((run_dir / "eval-rt_snippets.json").read_text())
    trained_metrics = json.loads((run_dir / "metrics.json").read_text())
    assert scored["accuracy"] == pytest.approx(trained_metrics["accuracy"])
    assert "test accuracy on rt_snippets" in capsys.readouterr().out


@pytest.mark.slow
def test_multiclass_csv_trains_and_bad_csv_fails_with_a_message(tmp_path, capsys):
    rows = ["text,label"] + [
        f"{word} {word} story number {i},{label}"
        for label, word in (("cats", "meow"), ("dogs", "woof"), ("fish", "blub"))
        for i in range(40)
    ]
    good = tmp_path / "pets.csv"
    good.write_text("\n".join(rows) + "\n")
    argv = ["train", "--tiny", "--dataset", f"csv:{good}", "--run-dir", str(tmp_path / "run")]
    assert main(*argv, "--epochs", "3") == 0
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["class_names"] == ["cats", "dogs", "fish"]
    assert np.asarray(metrics["confusion_matrix"]).shape == (3, 3)

    bad = tmp_path / "bad.csv"
    bad.write_text("review,stars\ngreat,5\n")
    argv = ["train", "--tiny", "--dataset", f"csv:{bad}", "--run-dir", str(tmp_path / "bad")]
    capsys.readouterr()
    assert main(*argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: csv:") and "no 'text' or 'label' column" in err
    assert "Traceback" not in err


@pytest.mark.slow
def test_predict_classifies_texts_and_files_of_texts(trained, tmp_path, capsys):
    run_dir, _ = trained
    model = str(run_dir / "model.keras")
    reviews = tmp_path / "reviews.txt"
    reviews.write_text("A wonderful, moving film.\n\nDull, lifeless and far too long.\n")
    assert main("predict", "--model", model, "Superb.", reviews) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 3 and lines[2].endswith("Dull, lifeless and far too long.")
    assert all(line.split()[0] in ("fresh", "rotten") for line in lines)

    assert main("predict", "--model", model, "--json", "Superb.", reviews) == 0
    results = json.loads(capsys.readouterr().out)
    assert [r.get("source") for r in results] == [None, f"{reviews}:1", f"{reviews}:3"]
    assert results[1]["input"] == "A wonderful, moving film."
    probs = keras.saving.load_model(model, safe_mode=True).predict(
        tf.constant([r["input"] for r in results]), verbose=0
    )
    for r, row in zip(results, probs, strict=True):
        assert r["probabilities"] == pytest.approx({"fresh": row[0], "rotten": row[1]}, abs=1e-5)

    (tmp_path / "latin1.txt").write_bytes(b"caf\xe9 cr\xe8me\n")
    assert main("predict", "--model", model, tmp_path / "latin1.txt") == 2
    assert "latin1.txt is not UTF-8 text" in capsys.readouterr().err


def test_the_default_model_starts_from_in_context_minilm_vectors():
    """`--tiny` trains on MiniLM's input vectors; the default's in-context ones, here on a few
    texts (the full training set takes the transformer about a minute)."""
    from dlrecipes.data import word_vectors

    module = recipe_module("text_bilstm")
    config = module.Config()
    assert config.word_vectors == "minilm" and config.tiny().word_vectors == "minilm-input"
    texts = ["a great film", "a dull film", "great acting"]
    adapt = tf.data.Dataset.from_tensor_slices(texts)
    vectorize = text.vectorizer(
        adapt, max_tokens=config.max_tokens, sequence_length=config.sequence_length
    )
    info = dlrecipes.data.DataInfo(
        "texts", ("fresh", "rotten"), (), adapt=adapt, tokenizer=vectorize
    )
    model = module.build_model(config, info)  # the classifier on token ids
    vocabulary = vectorize.get_vocabulary()
    embedding = model.get_layer("embedding")
    rows = embedding.get_weights()[0][: len(vocabulary)]
    in_context = word_vectors.context_matrix(vocabulary, [t.split() for t in texts])
    np.testing.assert_allclose(rows, in_context, atol=1e-6)
    assert not np.allclose(rows[2:], word_vectors.input_matrix(vocabulary)[2:], atol=1e-2)
    assert not embedding.trainable
