"""Knowledge distillation for text: a small model learns a trained teacher's soft targets.

`distill(teacher_path, splits, ...)` loads and checks the teacher, builds the transfer set (the
training texts plus augmented copies, `transfer`), has the teacher label it once (cached,
`teacher`), and returns a `Distillation`: the data, loss and metric the student fits instead of
the labels alone, and what a finished run adds (the teacher-vs-student table of `compare`).

Example:

>>> d = distillation.distill("runs/fine_tuning/x/model.keras", splits, copies=4,
...                          temperature=2.0, label_weight=0.0, batch_size=64, seed=0)
>>> model.compile(optimizer="adamw", loss=d.loss, metrics=[d.metric])
>>> model.fit(d.train, validation_data=d.validation)
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from dlrecipes.data import tokens
from dlrecipes.data.pipeline import prepare
from dlrecipes.data.splits import Splits
from dlrecipes.distillation import compare as comparing
from dlrecipes.distillation import transfer
from dlrecipes.distillation.targets import LabelAccuracy, SoftTargetLoss, pack, soft_targets
from dlrecipes.distillation.teacher import Teacher, serving_function
from dlrecipes.errors import ConfigError

SWAPS = ("corpus", "neighbours")


@dataclasses.dataclass
class Distillation:
    """What training on a teacher's soft targets changes in a run.

    Args:
        teacher: the loaded teacher.
        train: batches of (text, packed targets) over the transfer set, shuffled; the texts are
            token ids when `distill` was given a tokenizer.
        validation: batches of (validation text, its label packed the same way).
        temperature, label_weight: the loss's settings (`SoftTargetLoss`).
        labelled: training texts in the transfer set; the rest are augmented copies.
        size: texts in the transfer set.
    """

    teacher: Teacher
    train: tf.data.Dataset
    validation: tf.data.Dataset
    temperature: float
    label_weight: float
    labelled: int
    size: int

    @property
    def loss(self) -> SoftTargetLoss:
        """The student's loss: cross-entropy with the teacher's softened probabilities."""
        return SoftTargetLoss(self.temperature, self.label_weight)

    @property
    def metric(self) -> LabelAccuracy:
        """Accuracy against the true labels, named `accuracy` (validation: `val_accuracy`)."""
        return LabelAccuracy()

    def compare(self, student: keras.Model, splits: Splits, student_probs: np.ndarray) -> dict:
        """The teacher-vs-student comparison on the test split (`compare.compare`)."""
        texts, labels = texts_and_labels(splits.test)
        result = comparing.compare(
            self.teacher.model,
            student,
            self.teacher.predict(texts),
            student_probs,
            labels,
            texts,
        )
        return {"teacher_file": str(self.teacher.path), **result}

    def report(self, comparison: dict[str, Any]) -> str:
        """The report's section on the teacher, as markdown."""
        return "\n".join(
            [
                "## Teacher and student",
                "",
                f"This model learnt from the soft targets of `{comparison['teacher_file']}` over "
                f"a transfer set of {self.size:,} texts ({self.labelled:,} training texts and "
                f"{self.size - self.labelled:,} augmented copies), at temperature "
                f"{self.temperature:g} with label weight {self.label_weight:g}. The two agree on "
                f"{comparison['agreement']:.2%} of the test texts.",
                "",
                comparing.table(comparison),
                "",
                "Speeds: this machine, one process, each model called through one compiled "
                "function on raw strings (its tokenizer included), in turns; medians.",
            ]
        )


def distill(
    teacher_path: str | Path,
    splits: Splits,
    *,
    copies: int,
    temperature: float,
    label_weight: float,
    batch_size: int,
    seed: int = 0,
    swap: str = "corpus",
    augmenter: transfer.Augmenter | None = None,
    tokenizer: tokens.Tokenizer | None = None,
    boundaries: Sequence[int] | None = None,
    pad_to_boundary: bool = False,
) -> Distillation:
    """Loads the teacher, builds and labels the transfer set, and returns the `Distillation`.

    Args:
        teacher_path: the teacher's `model.keras`.
        splits: batched `(text, label)` splits; the transfer set grows from the training split
            and never holds a validation or test text.
        copies: augmented copies tried per training text (0: the training texts alone).
        temperature: softening temperature of teacher and student, above 0.
        label_weight: weight of the cross-entropy with the labels, in [0, 1].
        batch_size: batch size of the transfer set.
        seed: seed of the augmentation and of the shuffling.
        swap: what a swapped word becomes: `corpus` (a random training word) or `neighbours`
            (a near word in MiniLM's word-piece input vectors).
        augmenter: masking, swapping and n-gram probabilities (default: `transfer.Augmenter()`).
        tokenizer: the student's tokenizer, for a student on token ids: the texts are then
            tokenized in the pipeline and batched by length (`dlrecipes.data.tokens.batches`,
            with `boundaries` and `pad_to_boundary`). None: batches of raw strings.

    Raises:
        ConfigError: settings out of range. CheckpointError: an unusable teacher.
    """
    if not temperature > 0:
        raise ConfigError(f"temperature must be positive; got {temperature}.")
    if not 0 <= label_weight <= 1:
        raise ConfigError(f"label_weight must be in [0, 1]; got {label_weight}.")
    if copies < 0:
        raise ConfigError(f"transfer_copies must not be negative; got {copies}.")
    if swap not in SWAPS:
        raise ConfigError(f"swap={swap!r} is not one of {', '.join(SWAPS)}.")
    teacher = Teacher(teacher_path, splits.info.class_names)
    texts, labels = texts_and_labels(splits.train)
    order = np.argsort(texts, kind="stable")  # the same transfer set whatever the shuffling
    texts, labels = [texts[i] for i in order], labels[order]
    held_out = texts_and_labels(splits.validation)[0] + texts_and_labels(splits.test)[0]
    if swap == "corpus":
        replace = transfer.corpus_words(texts)
    else:
        from dlrecipes.data.word_vectors import input_matrix

        replace = transfer.neighbour_words(texts, input_matrix)
    transfer_texts, hard = transfer.build(
        texts,
        labels,
        held_out=held_out,
        copies=copies,
        replace=replace,
        augmenter=augmenter or transfer.Augmenter(),
        seed=seed,
    )
    labelled = int((hard >= 0).sum())
    probs = teacher.predict(transfer_texts)
    hard = np.where(hard < 0, probs.argmax(axis=1), hard)  # a copy's label: the teacher's class
    train = tf.data.Dataset.from_tensor_slices((transfer_texts, pack(hard, probs)))
    val_texts, val_labels = texts_and_labels(splits.validation)
    one_hot = np.eye(splits.info.num_classes, dtype=np.float32)[val_labels]
    validation = tf.data.Dataset.from_tensor_slices((val_texts, pack(val_labels, one_hot)))

    def batched(ds: tf.data.Dataset, training: bool) -> tf.data.Dataset:
        # The whole transfer set is shuffled at once: each text's copies follow it.
        shuffling = {"training": training, "seed": seed, "shuffle_buffer": len(transfer_texts)}
        if tokenizer is None:
            return prepare(ds, batch_size, **shuffling)
        return tokens.batches(
            ds,
            tokenizer,
            batch_size,
            boundaries=boundaries,
            pad_to_boundary=pad_to_boundary,
            **shuffling,
        )

    return Distillation(
        teacher=teacher,
        train=batched(train, training=True),
        validation=batched(validation, training=False),
        temperature=temperature,
        label_weight=label_weight,
        labelled=labelled,
        size=len(transfer_texts),
    )


def texts_and_labels(ds: tf.data.Dataset) -> tuple[list[str], np.ndarray]:
    """The texts (decoded) and labels of a batched or unbatched `(text, label)` dataset."""
    texts: list[str] = []
    labels: list[np.ndarray] = []
    for x, y in ds.as_numpy_iterator():
        texts.extend(t.decode("utf-8") for t in np.atleast_1d(x))
        labels.append(np.atleast_1d(y))
    return texts, np.concatenate(labels) if labels else np.zeros(0, np.int64)


__all__ = [
    "Distillation",
    "LabelAccuracy",
    "SoftTargetLoss",
    "Teacher",
    "distill",
    "pack",
    "serving_function",
    "soft_targets",
    "texts_and_labels",
    "transfer",
]
