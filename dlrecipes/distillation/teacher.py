"""The teacher: a trained text classifier, checked, called as a server would, its outputs cached.

Any `model.keras` this project trained on text works: a text recipe's functional model (raw
strings in) or a keras-hub classifier holding its preprocessor (the fine-tuning recipe's MiniLM).
Its predictions over a transfer set cost most of a distillation run on a CPU, so they are computed
once and cached by the sha256 of the teacher's file and of the texts. A teacher saved as a
tokenizer then a classifier on ids (`models.text.end_to_end`, as this project's text runs save)
labels texts in order of length, each batch padded only to its longest text, as it was trained.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from dlrecipes import progress
from dlrecipes.data import tokens, wheels
from dlrecipes.errors import CheckpointError
from dlrecipes.models import text

BATCH_SIZE = 256
# Texts the teacher is tried on when loaded, to check that it answers with probabilities.
PROBE = ("A wonderful, moving film.", "Dull and far too long.")


def serving_function(model: keras.Model) -> Callable[[tf.Tensor], tf.Tensor]:
    """`model` as one compiled function from a batch of raw strings to its outputs.

    A keras-hub task model keeps its preprocessor (tokenizer) apart from its layers; it is
    called inside the same function, as a server would.
    """
    preprocessor = getattr(model, "preprocessor", None)

    def serve(texts: tf.Tensor) -> tf.Tensor:
        inputs = preprocessor(texts) if preprocessor is not None else texts
        return model(inputs, training=False)

    return tf.function(serve, input_signature=[tf.TensorSpec([None], tf.string)])


def takes_text(model: keras.Model) -> bool:
    """Whether `model` classifies raw strings: one string input, or a tokenizing preprocessor."""
    preprocessor = getattr(model, "preprocessor", None)
    if preprocessor is not None:
        return getattr(preprocessor, "tokenizer", None) is not None
    inputs = model.inputs or []
    return len(inputs) == 1 and inputs[0].dtype == "string"


class Teacher:
    """A trained text classifier loaded in safe mode and checked against the data's classes.

    Args:
        path: the teacher's `model.keras`.
        class_names: the classes of the data the student learns, in label order.

    Raises:
        CheckpointError: no file there, not a Keras model, not a text classifier, outputs that
            are not probabilities, or other classes than the data's (by number, and by name when
            a `metrics.json` from its run lies next to it).
    """

    def __init__(self, path: str | Path, class_names: Sequence[str]) -> None:
        self.path = Path(path)
        where = f"--teacher {self.path}"
        if not self.path.is_file():
            raise CheckpointError(
                f"{where}: no such file. Pass the model.keras of a trained text classifier, "
                "e.g. runs/fine_tuning/<id>/model.keras from recipes/fine_tuning/recipe.py train."
            )
        try:
            # compile=False: the teacher is only called, and its optimizer state is not loaded.
            self.model = keras.saving.load_model(self.path, safe_mode=True, compile=False)
        except Exception as err:  # noqa: BLE001 - a half-written or foreign file raises many kinds
            raise CheckpointError(
                f"{where} is not a readable Keras model ({type(err).__name__}: "
                f"{str(err)[:200]}). Point at the model.keras of a finished text run."
            ) from err
        if not takes_text(self.model):
            shapes = [(tuple(i.shape), i.dtype) for i in self.model.inputs or []]
            raise CheckpointError(
                f"{where} does not classify raw text: it takes {shapes}. Pass the model.keras "
                "of a text run (recipes/fine_tuning or recipes/text_bilstm)."
            )
        self.serve = serving_function(self.model)
        parts = text.parts(self.model)
        self.tokenizer, self.on_ids = parts or (None, None)
        probe = np.asarray(self.serve(tf.constant(PROBE)))
        classes = list(class_names)
        if probe.ndim != 2 or probe.shape[1] != len(classes):
            raise CheckpointError(
                f"{where} outputs shape {probe.shape[1:]} per text, but the data has "
                f"{len(classes)} classes {classes}. Pass a teacher trained on this dataset."
            )
        if (probe < 0).any() or not np.allclose(probe.sum(axis=1), 1.0, atol=1e-3):
            raise CheckpointError(
                f"{where} does not output probabilities (rows sum to "
                f"{np.round(probe.sum(axis=1), 3).tolist()}). Distillation reads a softmax "
                "output, as every model of this project has."
            )
        metrics = self.path.parent / "metrics.json"
        known = json.loads(metrics.read_text()).get("class_names") if metrics.exists() else None
        if known is not None and list(known) != classes:
            raise CheckpointError(
                f"{where} was trained on classes {known} (its metrics.json), but the data has "
                f"{classes}. Pass a teacher trained on this dataset."
            )
        self.num_classes = len(classes)
        self.sha256 = wheels.file_sha256(self.path)

    def predict(self, texts: Sequence[str], batch_size: int = BATCH_SIZE) -> np.ndarray:
        """The teacher's probabilities for `texts`, `(len(texts), classes)` float32.

        Cached in `<cache>/teacher-predictions/` by the sha256 of the teacher's file and of the
        texts: a rerun with the same teacher and texts reads them back; another teacher file, or
        other texts, computes them anew. A damaged cache file is computed anew and replaced.
        """
        texts = list(texts)
        key = wheels.sha256(json.dumps([self.sha256, texts]).encode())
        path = cache_path(key)
        try:
            cached = np.load(path, allow_pickle=False)
            if cached.shape == (len(texts), self.num_classes):
                print(f"Teacher predictions for {len(texts)} texts read from {path}.")
                return cached
        except (OSError, ValueError):  # not there yet, or damaged
            pass
        what = f"Teacher predictions for {len(texts):,} texts (cached next time in {path})"
        with progress.step(what, count=len(texts), unit="texts"):
            if self.on_ids is None:
                probabilities = self._in_order(texts, batch_size)
            else:
                probabilities = self._by_length(texts, batch_size)
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path.parent, suffix=".npy", delete=False) as tmp:
            np.save(tmp, probabilities, allow_pickle=False)
        os.replace(tmp.name, path)  # whole or not at all, for processes computing it at once
        return probabilities

    def _in_order(self, texts: list[str], batch_size: int) -> np.ndarray:
        starts = range(0, len(texts), batch_size)
        batches = [
            np.asarray(self.serve(tf.constant(texts[s : s + batch_size])), np.float32)
            for s in progress.bar(starts, desc="teacher", unit="batch")
        ]
        return np.concatenate([np.zeros((0, self.num_classes), np.float32), *batches])

    def _by_length(self, texts: list[str], batch_size: int) -> np.ndarray:
        """Texts tokenized in tf.data, then labelled shortest first, each batch padded to its
        longest text (a MiniLM teacher on rt_snippets: about 3x its rate at a fixed 64 word
        pieces on this project's 2-core CPU)."""
        pairs = tf.data.Dataset.from_tensor_slices((texts, np.zeros(len(texts), np.int32)))
        ids = [x for x, _ in tokens.tokenize(pairs, self.tokenizer).as_numpy_iterator()]
        order = np.argsort([len(x) for x in ids], kind="stable")
        call = tf.function(
            lambda ids: self.on_ids(ids, training=False),
            input_signature=[tf.TensorSpec([None, None], tf.int32)],
        )
        probabilities = np.zeros((len(texts), self.num_classes), np.float32)
        for start in progress.bar(range(0, len(texts), batch_size), desc="teacher", unit="batch"):
            rows = order[start : start + batch_size]
            batch = np.full((len(rows), len(ids[rows[-1]])), tokens.PAD_ID, np.int32)
            for row, i in enumerate(rows):
                batch[row, : len(ids[i])] = ids[i]
            probabilities[rows] = np.asarray(call(batch), np.float32)
        return probabilities


def cache_path(key: str) -> Path:
    """Where teacher predictions with cache key `key` are kept."""
    return wheels.cache_dir() / "teacher-predictions" / f"{key[:32]}.npy"
