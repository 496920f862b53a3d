"""Cross-validation's summary and report: mean and spread over folds, and for text runs the
bag-of-words baseline beside them."""

from __future__ import annotations

import pytest

from dlrecipes import baselines, cross_validation
from dlrecipes.config import RecipeConfig

NAME = "TF-IDF 1-2 grams + logistic regression"


def _fold(k: int, test: float, base: float | None) -> dict:
    fold = {"fold": k, "val_accuracy": 0.8, "test_accuracy": test}
    if base is not None:
        fold["baseline"] = {
            "name": NAME,
            "accuracy": base,
            "detail": "C=3",
            "difference_points": 100 * (test - base),
        }
    return fold


def test_text_folds_set_the_baselines_mean_beside_their_own_and_say_when_it_won():
    summary = cross_validation.summarize([_fold(1, 0.78, 0.80), _fold(2, 0.76, 0.82)])
    assert summary["test_accuracy_mean"] == pytest.approx(0.77)
    assert summary["baseline"]["accuracy"] == pytest.approx(0.81)
    assert summary["baseline"]["difference_points"] == pytest.approx(-4.0)
    assert "did as well as this model or better" in baselines.verdict(summary["baseline"])
    report = cross_validation.report("text_bilstm", RecipeConfig(), summary)
    assert f"Baseline, {NAME} on each fold's training split (mean over 2 folds): 0.8100" in report
    assert "-4.00 points to the model" in report


def test_image_folds_have_no_baseline():
    summary = cross_validation.summarize([_fold(1, 0.9, None), _fold(2, 0.92, None)])
    assert "baseline" not in summary
    report = cross_validation.report("image_classification", RecipeConfig(), summary)
    assert "Baseline" not in report
