"""`ConfigHyperModel`: a recipe's config fields become Keras Tuner hyperparameters of the same
names, so a search's best values are config overrides that `train --hparams` applies as they are."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Any

import keras
import keras_tuner
import tensorflow as tf

from dlrecipes.config import RecipeConfig, coerce
from dlrecipes.data import DataInfo
from dlrecipes.training import compile_model

# A search dimension: a list of choices, or (low, high) / (low, high, "log") for a float range.
Space = dict[str, list[Any] | tuple[Any, ...]]


def _encode(value: Any) -> Any:
    """Keras Tuner choices are scalars: a tuple such as widths (32, 64) becomes "32,64"."""
    return ",".join(str(v) for v in value) if isinstance(value, tuple) else value


class ConfigHyperModel(keras_tuner.HyperModel):
    """Searches over named fields of a recipe config, starting from the config's own values.

    Each dimension's default is the config's value, and the search's first trial tries exactly
    those defaults (see `_DefaultsFirst`), so a search never reports less than the hand-set
    config scores at the same budget.

    Args:
        config: the recipe config; its values are the defaults of every hyperparameter.
        info: the dataset's info, for the model's input shape and classes.
        build_model: the recipe's `build_model(config, info)`.
        space: field name -> list of choices, or `(low, high)` / `(low, high, "log")`.
    """

    def __init__(
        self,
        config: RecipeConfig,
        info: DataInfo,
        build_model: Callable[[Any, DataInfo], keras.Model],
        space: Space,
    ) -> None:
        super().__init__(name=type(config).__name__)
        fields = {f.name for f in dataclasses.fields(config)}
        unknown = sorted(set(space) - fields)
        if unknown:
            raise ValueError(f"Search space names {unknown}, which are not config fields.")
        self.config = config
        self.info = info
        self.build_model = build_model
        self.space = space

    def declare(self, hp: keras_tuner.HyperParameters) -> dict[str, Any]:
        """Declares every dimension on `hp` and returns the chosen values, keyed by field."""
        values = {}
        for name, dim in self.space.items():
            current = getattr(self.config, name)
            if isinstance(dim, list):
                choices = [_encode(v) for v in dim]
                if _encode(current) not in choices:  # e.g. set by a flag: search it too
                    choices.insert(0, _encode(current))
                values[name] = hp.Choice(name, choices, default=_encode(current))
            else:
                low, high, *rest = dim
                sampling = rest[0] if rest else "linear"
                default = min(max(float(current), low), high)
                values[name] = hp.Float(name, low, high, sampling=sampling, default=default)
        return values

    def config_for(self, hp: keras_tuner.HyperParameters) -> RecipeConfig:
        """The config a trial trains with: the trial's values in place of the defaults, and the
        learning-rate schedule fitted to the epochs this trial trains.

        The cosine / step schedule spans `config.epochs`. Hyperband trains a trial for
        `tuner/epochs - tuner/initial_epoch` epochs (continuing from an earlier trial's weights
        with a fresh optimizer), so `epochs` becomes that number and each trial anneals fully
        within its own budget. Warm-up is capped at a quarter of the trial, so a one-epoch trial
        is not all warm-up.
        """
        chosen = coerce(type(self.config), self.declare(hp))
        epochs = self.config.epochs
        if "tuner/epochs" in hp.values:
            epochs = hp.values["tuner/epochs"] - hp.values.get("tuner/initial_epoch", 0)
        warmup = min(self.config.warmup_epochs, epochs / 4)
        return dataclasses.replace(self.config, **chosen, epochs=epochs, warmup_epochs=warmup)

    def build(self, hp: keras_tuner.HyperParameters) -> keras.Model:
        config = self.config_for(hp)
        n_train = self.info.num_examples.get("train", 0)
        steps = max(1, math.ceil(n_train / config.batch_size))
        return compile_model(self.build_model(config, self.info), config, steps)

    def fit(
        self, hp: keras_tuner.HyperParameters, model: keras.Model, x: Any, *args: Any, **kwargs: Any
    ) -> Any:
        """Fits on the training data re-batched to the trial's batch size.

        `x` arrives batched with the config's batch size; `rebatch` regroups the same stream
        (augmentation included) without rebuilding the pipeline. The validation batch size does
        not change the scores, so validation data is left as it is.
        """
        batch_size = self.config_for(hp).batch_size
        if batch_size != self.config.batch_size:
            x = x.rebatch(batch_size)
            n_train = self.info.num_examples.get("train")
            if n_train:  # rebatch forgets the length; Keras would warn when it runs out
                x = x.apply(tf.data.experimental.assert_cardinality(-(-n_train // batch_size)))
        return model.fit(x, *args, **kwargs)
