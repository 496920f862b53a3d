"""A bag-of-words baseline beside every text result: did the deep model earn its cost?

TF-IDF over words and word pairs with logistic regression is the classifier a practitioner tries
first on texts. It is fitted here on the same training split as the model, its `C` chosen on the
same validation split, and scored on the same test split, in seconds. The run's report and
metrics.json put its accuracy beside the model's, with the difference in points; when it wins,
the run's last lines say so (`verdict`).

Example:

>>> baseline = baselines.bag_of_words(splits)          # raw (text, label) splits
>>> metrics["baseline"] = baselines.compare(baseline, metrics["accuracy"])
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import tensorflow as tf
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.multiclass import OneVsRestClassifier

from dlrecipes.data import Splits

BAG_OF_WORDS = "TF-IDF 1-2 grams + logistic regression"
# Inverse regularization strengths tried; the best on validation is scored on test.
C_GRID = (1.0, 3.0, 10.0, 30.0)


@dataclasses.dataclass(frozen=True)
class Baseline:
    """A baseline's test accuracy, its name, and what was chosen on validation."""

    name: str
    accuracy: float
    detail: str


def examples(ds: tf.data.Dataset) -> tuple[np.ndarray, np.ndarray]:
    """A dataset's `(input, label)` pairs, batched or not, as two arrays (texts as `str`)."""
    inputs, labels = [], []
    for x, y in ds.as_numpy_iterator():
        inputs.append(np.atleast_1d(x) if np.ndim(y) else [x])
        labels.append(np.atleast_1d(y))
    x, y = np.concatenate(inputs), np.concatenate(labels)
    if x.dtype == object:  # tf.string arrives as bytes
        x = np.array([t.decode("utf-8", "replace") for t in x])
    return x, y


def bag_of_words(splits: Splits) -> Baseline:
    """TF-IDF of words and word pairs (sublinear term frequency) and logistic regression, `C`
    chosen on validation from `C_GRID`, scored on test. `splits` holds raw `(text, label)`
    pairs; each distinct training example counts once, in a fixed order (a few-label run
    repeats its examples to fill an epoch, and shuffles them). Logistic regression is
    liblinear's, one class against the rest."""
    texts, labels = zip(*sorted(set(zip(*examples(splits.train), strict=True))), strict=True)
    vectorizer = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True).fit(texts)
    train = vectorizer.transform(texts)
    validation, test = (examples(split) for split in (splits.validation, splits.test))
    best = None
    for c in C_GRID:
        model = OneVsRestClassifier(LogisticRegression(C=c, solver="liblinear", random_state=0))
        model.fit(train, labels)
        score = model.score(vectorizer.transform(validation[0]), validation[1])
        if best is None or score > best[0]:
            best = (score, c, model)
    score, c, model = best
    accuracy = float(model.score(vectorizer.transform(test[0]), test[1]))
    return Baseline(BAG_OF_WORDS, accuracy, f"C={c:g}, chosen on validation ({score:.4f})")


def compare(baseline: Baseline, accuracy: float) -> dict[str, Any]:
    """metrics.json's `baseline` entry: the baseline beside the model's test `accuracy`."""
    return {
        "name": baseline.name,
        "accuracy": baseline.accuracy,
        "detail": baseline.detail,
        "difference_points": round(100 * (accuracy - baseline.accuracy), 2),
    }


def verdict(entry: dict[str, Any]) -> str:
    """The run's last words on the baseline: plain, with what to try when the baseline wins."""
    points = entry["difference_points"]
    line = f"baseline {entry['name']}: {entry['accuracy']:.4f} ({points:+.2f} points to the model)"
    if points > 0:
        return line
    return (
        f"{line}\nThe bag of words did as well as this model or better, at a fraction of the "
        "cost. Try more epochs (--epochs), longer texts (--sequence-length), another learning "
        "rate (--learning-rate) or a search (tune); on few or long texts, the baseline may "
        "simply be the better classifier."
    )
