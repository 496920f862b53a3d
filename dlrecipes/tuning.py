"""Keras Tuner glue: a recipe's config fields become hyperparameters of the same names.

Because the names match, a search's best values (`best_hparams.json`) are config overrides that
`train --hparams best_hparams.json` applies as they are.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Any

import keras
import keras_tuner

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
        super().__init__(name=type(config).__module__)
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
                default = _encode(current) if _encode(current) in choices else choices[0]
                values[name] = hp.Choice(name, choices, default=default)
            else:
                low, high, *rest = dim
                sampling = rest[0] if rest else "linear"
                default = min(max(float(current), low), high)
                values[name] = hp.Float(name, low, high, sampling=sampling, default=default)
        return values

    def config_for(self, hp: keras_tuner.HyperParameters) -> RecipeConfig:
        """The config with the trial's values in place of the defaults."""
        chosen = coerce(type(self.config), self.declare(hp))
        return dataclasses.replace(self.config, **chosen)

    def build(self, hp: keras_tuner.HyperParameters) -> keras.Model:
        config = self.config_for(hp)
        n_train = self.info.num_examples.get("train", 0)
        steps = max(1, math.ceil(n_train / config.batch_size))
        return compile_model(self.build_model(config, self.info), config, steps)

    def fit(
        self, hp: keras_tuner.HyperParameters, model: keras.Model, x: Any, *args: Any, **kwargs: Any
    ) -> Any:
        """Re-batches the training data to the trial's batch size, then fits."""
        batch_size = self.config_for(hp).batch_size
        x = x.rebatch(batch_size)
        if "validation_data" in kwargs and kwargs["validation_data"] is not None:
            kwargs["validation_data"] = kwargs["validation_data"].rebatch(batch_size)
        return model.fit(x, *args, **kwargs)
