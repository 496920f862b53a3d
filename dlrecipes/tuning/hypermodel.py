"""`ConfigHyperModel`: a recipe's config fields become Keras Tuner hyperparameters of the same
names, so each trial is a whole recipe config that `train --hparams` can run again; and `Trial`,
what a trial hands the recipe's own `fit` in place of a `dlrecipes.Run`."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import keras
import keras_tuner
import tensorflow as tf

from dlrecipes import callbacks as cb
from dlrecipes import runtime
from dlrecipes.config import RecipeConfig, coerce, flag
from dlrecipes.data import DataInfo, Splits
from dlrecipes.errors import ConfigError

# A search dimension: a list of choices, or (low, high) / (low, high, "log") for a float range.
Space = dict[str, list[Any] | tuple[Any, ...]]


def _encode(value: Any) -> Any:
    """Keras Tuner choices are scalars: a tuple such as widths (32, 64) becomes "32,64"."""
    return ",".join(str(v) for v in value) if isinstance(value, tuple) else value


class Trial:
    """What the recipe's `fit(model, config, splits, run)` gets in a tuning trial: the parts of
    `dlrecipes.Run` that `fit` uses, without a run directory.

    `callbacks` are those that decide what `train` scores (the weight average swapped in for
    validation, early stopping, the NaN guard), with keras-tuner's after them, so its best-epoch
    checkpoint and the objective it records are the weights and scores `train` would validate;
    `restore_best` starts a later phase from the trial's best epoch so far, as `train` does.
    """

    def __init__(self, config: RecipeConfig, tuner_callbacks: list) -> None:
        self.config = config
        self.jit = runtime.use_jit(config.jit)
        self._tuner_callbacks = tuner_callbacks
        self._best = _BestWeights()
        self.history = _Epochs()

    def callbacks(
        self, fit: str = "train", *, epochs: int | None = None, keep_best: bool = True
    ) -> list:
        """The trial's callbacks for one `fit` (`fit`, `epochs` and `keep_best` as
        `Run.callbacks` takes them: every fit of a trial reports to the same tuner, and the
        trial keeps its best weights in memory either way)."""
        callbacks: list = []
        if self.config.ema:
            # Averaged weights at every epoch's end too, for the tuner's checkpoint.
            callbacks.append(keras.callbacks.SwapEMAWeights(swap_on_epoch=True))
        if self.config.early_stopping:
            callbacks.append(
                keras.callbacks.EarlyStopping(
                    monitor=cb.MONITOR, mode="max", patience=self.config.early_stopping
                )
            )
        return [
            *callbacks,
            self._best,
            self.history,
            cb.EpochProgress(epochs),
            *self._tuner_callbacks,
            cb.NanGuard(),
        ]

    def resumable(self, ds: tf.data.Dataset) -> tf.data.Dataset:
        """The training data as it is: a trial is not backed up."""
        return ds

    def restore_best(self, model: keras.Model) -> None:
        """Gives `model` the weights of the trial's best epoch so far, if any."""
        if self._best.weights is not None:
            model.set_weights(self._best.weights)


class _BestWeights(keras.callbacks.Callback):
    """Keeps the weights of the best epoch by validation accuracy (those validated: with a
    weight average, the average), in memory."""

    def __init__(self) -> None:
        super().__init__()
        self.best = -float("inf")
        self.weights: list | None = None

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        score = (logs or {}).get(cb.MONITOR)
        if score is not None and float(score) > self.best:
            self.best = float(score)
            self.weights = self.model.get_weights()


class _Epochs(keras.callbacks.History):
    """`History` of every fit of a trial, phases together (Keras' own starts anew each fit)."""

    def __init__(self) -> None:
        super().__init__()
        self.epoch = []

    def on_train_begin(self, logs: dict | None = None) -> None:
        pass


class ConfigHyperModel(keras_tuner.HyperModel):
    """Searches over named fields of a recipe config, starting from the config's own values, and
    trains each trial with the recipe's own `fit`, the one `train` calls.

    Each dimension's default is the config's value, and the search's first trial tries exactly
    those defaults (see `tuners._DefaultsFirst`), so a search never reports less than the
    hand-set config scores at the same budget. A config value outside its dimension is searched
    too: a choice list gains it, a float range widens to reach it (`notes` says so).

    A trial seeds the random generators, loads its data with its own config (batch size,
    shuffling and augmentation as `train` has them), builds the model, and hands both to the
    recipe's `fit` with a `Trial` in place of the run. So `train` with `train_config(hp)`
    scores what the trial scored: to the digit when the config has `deterministic` set, within
    run-to-run noise otherwise.

    Args:
        config: the recipe config; its values are the defaults of every hyperparameter.
        space: field name -> list of choices, or `(low, high)` / `(low, high, "log")`.
        load_data: the recipe's `load_data(config) -> Splits`.
        build_model: the recipe's `build_model(config, info) -> keras.Model`.
        fit: the recipe's `fit(model, config, splits, run)`: compile and fit, every phase.

    Raises:
        ConfigError: a config value lies outside a log-scale range and below or at zero, where
            the range cannot be widened to reach it.
    """

    def __init__(
        self,
        config: RecipeConfig,
        space: Space,
        *,
        load_data: Callable[[Any], Splits],
        build_model: Callable[[Any, DataInfo], keras.Model],
        fit: Callable[[keras.Model, Any, Splits, Any], Any],
    ) -> None:
        super().__init__(name=type(config).__name__)
        fields = {f.name for f in dataclasses.fields(config)}
        unknown = sorted(set(space) - fields)
        if unknown:
            raise ValueError(f"Search space names {unknown}, which are not config fields.")
        self.config = config
        self.load_data = load_data
        self.build_model = build_model
        self.fit_model = fit
        self.notes: list[str] = []
        self.space = {name: self._reach(name, dim) for name, dim in space.items()}
        self._splits: Splits | None = None
        self._last_hp: keras_tuner.HyperParameters | None = None
        self._execution = 0

    def _reach(self, name: str, dim: list[Any] | tuple[Any, ...]) -> list[Any] | tuple[Any, ...]:
        """`dim`, made to hold the config's value (set by a flag, `--tiny` or `--hparams`)."""
        current = getattr(self.config, name)
        if isinstance(dim, list):
            choices = [_encode(v) for v in dim]
            if _encode(current) in choices:
                return dim
            self.notes.append(
                f"{name}: {_encode(current)} (the config's value) is added to the choices "
                f"{', '.join(map(str, choices))}."
            )
            return [current, *dim]
        low, high, *rest = dim
        if low <= current <= high:
            return dim
        if rest and rest[0] == "log" and current <= 0:
            raise ConfigError(
                f"--{flag(name)} {current:g} is outside the searched range {low:g}..{high:g} of "
                f"{name}, a log-scale range that cannot be widened to reach it; give a "
                f"positive --{flag(name)}, or drop it to start from {low:g}..{high:g}."
            )
        widened = (min(low, current), max(high, current), *rest)
        self.notes.append(
            f"{name}: the searched range {low:g}..{high:g} is widened to "
            f"{widened[0]:g}..{widened[1]:g} to reach {current:g} (the config's value)."
        )
        return widened

    def declare(self, hp: keras_tuner.HyperParameters) -> dict[str, Any]:
        """Declares every dimension on `hp` and returns the chosen values, keyed by field."""
        values = {}
        for name, dim in self.space.items():
            current = getattr(self.config, name)
            if isinstance(dim, list):
                choices = [_encode(v) for v in dim]
                values[name] = hp.Choice(name, choices, default=_encode(current))
            else:
                low, high, *rest = dim
                sampling = rest[0] if rest else "linear"
                values[name] = hp.Float(name, low, high, sampling=sampling, default=float(current))
        return values

    def train_config(self, hp: keras_tuner.HyperParameters) -> RecipeConfig:
        """The whole config of a trial, as `train --hparams` runs it from scratch: the trial's
        values in place of the defaults, its epochs, and warm-up capped at a quarter of them.

        A Hyperband trial that continues another one (`tuner/trial_id`) trained only its last
        `tuner/epochs - tuner/initial_epoch` epochs itself; its config here has all
        `tuner/epochs`, which `train` runs in one go.
        """
        return self._with_epochs(hp, hp.values.get("tuner/epochs", self.config.epochs))

    def config_for(self, hp: keras_tuner.HyperParameters) -> RecipeConfig:
        """The config this trial trains with: `train_config(hp)`, with the learning-rate schedule
        fitted to the epochs the trial itself trains.

        The cosine / step schedule spans `config.epochs`. Hyperband trains a trial for
        `tuner/epochs - tuner/initial_epoch` epochs (continuing from an earlier trial's weights
        with a fresh optimizer), so `epochs` becomes that number and each trial anneals fully
        within its own budget. Warm-up is capped at a quarter of the trial, so a one-epoch trial
        is not all warm-up.
        """
        epochs = hp.values.get("tuner/epochs", self.config.epochs)
        return self._with_epochs(hp, epochs - hp.values.get("tuner/initial_epoch", 0))

    def _with_epochs(self, hp: keras_tuner.HyperParameters, epochs: int) -> RecipeConfig:
        chosen = coerce(type(self.config), self.declare(hp))
        warmup = min(self.config.warmup_epochs, epochs / 4)
        return dataclasses.replace(self.config, **chosen, epochs=epochs, warmup_epochs=warmup)

    def build(self, hp: keras_tuner.HyperParameters) -> keras.Model:
        """Seeds, loads the trial's data and builds its model, in `train`'s order.

        Execution `i` of a trial (`--executions-per-trial`) seeds with `seed + i`, so its
        executions differ in their random draws; the first is the one `train` repeats.
        """
        config = self.config_for(hp)
        # keras-tuner builds the same `hp` object once per execution of a trial.
        self._execution = self._execution + 1 if hp is self._last_hp else 0
        self._last_hp = hp
        runtime.seed_everything(config.seed + self._execution, config.deterministic)
        runtime.set_precision(config.precision)
        self._splits = self.load_data(config)
        return self.build_model(config, self._splits.info)

    def fit(
        self,
        hp: keras_tuner.HyperParameters,
        model: keras.Model,
        *args: Any,
        callbacks: list[keras.callbacks.Callback] | None = None,
        **kwargs: Any,
    ) -> keras.callbacks.History:
        """Trains `model` with the recipe's `fit` on the data `build` loaded for this trial,
        keras-tuner's `callbacks` reporting every epoch of every fit.

        Data, epochs and verbosity passed by keras-tuner are not used: the trial's own batches
        and config are (a Hyperband trial's config has the epochs of its round).

        Raises:
            TrainingDiverged: the loss became NaN or infinite (the trial is marked failed).
        """
        trial = Trial(self.config_for(hp), list(callbacks or []))
        self.fit_model(model, trial.config, self._splits, trial)
        return trial.history
