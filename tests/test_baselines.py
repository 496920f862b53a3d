"""The bag-of-words baseline on the real Rotten Tomatoes snippets: the same split as the model,
each training example once, and a report and last lines that say when it wins."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline

from dlrecipes import baselines, data, reports


@pytest.fixture(scope="module")
def snippets() -> data.Splits:
    """rt_snippets with its training split cut to 2,000 texts, to keep the fits to seconds."""
    splits = data.load_text("rt_snippets")
    return dataclasses.replace(splits, train=splits.train.take(2000))


def _arrays(ds) -> tuple[list[str], np.ndarray]:
    texts, labels = zip(*ds.as_numpy_iterator(), strict=True)
    return [t.decode() for t in texts], np.array(labels)


@pytest.fixture(scope="module")
def baseline(snippets) -> baselines.Baseline:
    return baselines.bag_of_words(snippets)


def test_baseline_scores_what_an_independent_fit_on_the_same_split_scores(snippets, baseline):
    train, validation, test = (
        _arrays(s) for s in (snippets.train, snippets.validation, snippets.test)
    )
    fits = [
        make_pipeline(
            TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True),
            LogisticRegression(C=c, solver="liblinear", random_state=0),
        ).fit(*train)
        for c in baselines.C_GRID
    ]
    best = max(fits, key=lambda f: f.score(*validation))
    # The baseline fits its examples in another order: liblinear may end a hair apart.
    assert abs(baseline.accuracy - best.score(*test)) <= 1 / len(test[1])
    assert baseline.accuracy > 0.65  # above the 57.8% of always answering "fresh"
    assert f"C={best[-1].C:g}" in baseline.detail


def test_repeated_shuffled_batches_give_the_same_baseline(snippets, baseline):
    """A few-label run repeats its training examples to fill an epoch: each counts once."""
    repeated = snippets.train.repeat(3).shuffle(6000, seed=1).batch(32)
    again = baselines.bag_of_words(
        dataclasses.replace(snippets, train=repeated, test=snippets.test.batch(100))
    )
    assert again == baseline


def test_report_and_last_lines_say_when_the_bag_of_words_wins(tmp_path):
    names = ["fresh", "rotten"]
    metrics = reports.classification_metrics(np.array([0, 1, 1, 0]), np.array([0, 1, 0, 0]), names)
    won = baselines.Baseline(baselines.BAG_OF_WORDS, 0.80, "C=10, chosen on validation (0.7900)")
    metrics["baseline"] = baselines.compare(won, metrics["accuracy"])
    assert metrics["baseline"]["difference_points"] == pytest.approx(-5.0)
    report = reports.write_report(tmp_path, "text", {}, metrics).read_text()
    assert "scores **0.8000** on the same test split" in report and "**-5.00 points**" in report
    verdict = baselines.verdict(metrics["baseline"])
    assert "did as well as this model or better" in verdict and "--sequence-length" in verdict
    lost = baselines.compare(dataclasses.replace(won, accuracy=0.70), metrics["accuracy"])
    assert (
        baselines.verdict(lost)
        == f"baseline {baselines.BAG_OF_WORDS}: 0.7000 (+5.00 points to the model)"
    )
