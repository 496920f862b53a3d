"""Scoring a model on a dataset's test split."""

from __future__ import annotations

from typing import Any

import keras
import numpy as np
import tensorflow as tf

from dlrecipes import reports
from dlrecipes.data import Splits
from dlrecipes.errors import DatasetError


def predict(model: keras.Model, ds: tf.data.Dataset) -> tuple[np.ndarray, np.ndarray]:
    """Labels and predicted class probabilities over a batched `(input, label)` dataset."""
    y_true = np.concatenate([y for _, y in ds.as_numpy_iterator()])
    y_prob = model.predict(ds.map(lambda x, y: x), verbose=0)
    return y_true, y_prob


def check_inputs(model: keras.Model, splits: Splits) -> None:
    """Refuses data whose inputs do not have the shape the model takes."""
    expected = tuple(model.input_shape[1:])
    given = tuple(splits.info.input_shape)
    if len(expected) != len(given) or any(
        e is not None and g is not None and e != g for e, g in zip(expected, given, strict=False)
    ):
        raise DatasetError(
            f"The model takes inputs of shape {expected} but {splits.info.name} gives {given}. "
            "Evaluate on the kind of data the model was trained on, or resize it (--image-size)."
        )


def test_metrics(
    model: keras.Model, splits: Splits, probabilities: np.ndarray | None = None
) -> dict[str, Any]:
    """Accuracy, per-class precision / recall / F1 and the confusion matrix on the test split,
    and the class names. `probabilities` of the test split, if already computed, are reused."""
    check_inputs(model, splits)
    if probabilities is None:
        y_true, probabilities = predict(model, splits.test)
    else:
        y_true = np.concatenate([y for _, y in splits.test.as_numpy_iterator()])
    return reports.classification_metrics(y_true, probabilities.argmax(-1), splits.info.class_names)
