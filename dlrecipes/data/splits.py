"""The value every loader returns: three splits plus what a model builder needs to know."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import tensorflow as tf

from dlrecipes.errors import DatasetError


@dataclasses.dataclass(frozen=True)
class DataInfo:
    """What the model and the reports need to know about a dataset.

    Args:
        name: the spec the data was loaded from (`mnist_sample`, `folder:/data/pets`, ...).
        class_names: one name per class, in label order.
        input_shape: shape of one example (`(28, 28, 1)` for MNIST), `None` where it varies.
        num_examples: examples per split, where known.
        adapt: the unbatched training-split inputs, for layers that learn their state from data
            before training (a text vocabulary); None when the model needs none.
        tokenizer: for splits of token ids, the layer that made them from raw strings (a
            `TextVectorization` or a BERT tokenizer), which the saved model puts in front of
            the model trained on the ids; None for raw inputs.
    """

    name: str
    class_names: tuple[str, ...]
    input_shape: tuple[int | None, ...]
    num_examples: dict[str, int] = dataclasses.field(default_factory=dict)
    adapt: tf.data.Dataset | None = None
    tokenizer: Any = None

    @property
    def num_classes(self) -> int:
        return len(self.class_names)


@dataclasses.dataclass(frozen=True)
class Splits:
    """Train / validation / test `tf.data.Dataset`s of `(input, label)` pairs, and their info."""

    train: tf.data.Dataset
    validation: tf.data.Dataset
    test: tf.data.Dataset
    info: DataInfo

    def map(self, fn: Callable[[tf.data.Dataset, str], tf.data.Dataset]) -> Splits:
        """Applies `fn(dataset, split_name)` to every split (e.g. to batch and augment)."""
        return dataclasses.replace(
            self,
            train=fn(self.train, "train"),
            validation=fn(self.validation, "validation"),
            test=fn(self.test, "test"),
        )


def check_training(splits: Splits) -> None:
    """Refuses data with no training examples (a test-only `idx:` set), before a run claims its
    directory: `no_training_split` says how to evaluate on it instead."""
    if set(splits.info.num_examples) == {"test"} or int(splits.train.cardinality()) == 0:
        raise no_training_split(splits.info)


def no_training_split(info: DataInfo) -> DatasetError:
    """The refusal to train on data without training examples; for a test-only set (`idx:`),
    it says how to evaluate on it instead."""
    if set(info.num_examples) == {"test"}:
        return DatasetError(
            f"{info.name} holds only a test split ({info.num_examples['test']} examples; idx: "
            "files are a test-only format), so it can score a model but not train one: train "
            "on another dataset, then run `recipe.py evaluate --model RUN_DIR/model.keras "
            f"--dataset {info.name}`."
        )
    return DatasetError(f"The training split of {info.name} is empty.")
