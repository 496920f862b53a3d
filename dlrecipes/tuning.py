"""Keras Tuner glue: a recipe's config fields become hyperparameters of the same names.

Because the names match, a search's best values (`best_hparams.json`) are config overrides that
`train --hparams best_hparams.json` applies as they are.

Example:

>>> result = tuning.search(recipe, config, tuning.SearchOptions(tuner="random", max_trials=4))
>>> result.best_hparams_path   # runs/<recipe>/tuning/best_hparams.json

Distributed: the same command started with Keras Tuner's own environment variables
(`KERASTUNER_TUNER_ID=chief|tuner0|...`, `KERASTUNER_ORACLE_IP`, `KERASTUNER_ORACLE_PORT`) runs
as the chief (which holds the oracle and writes the results) or as a worker (which trains trials);
`dlrecipes.tuning_launch` starts a chief and N workers on one host.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import keras
import keras_tuner
import tensorflow as tf
from keras_tuner.src.distribute import utils as dist_utils

from dlrecipes import phases, runtime, tuning_launch, tuning_report
from dlrecipes.callbacks import MONITOR
from dlrecipes.config import RecipeConfig, coerce
from dlrecipes.contract import Recipe
from dlrecipes.data import DataInfo
from dlrecipes.errors import ConfigError, TuningFailed
from dlrecipes.phases import Phase
from dlrecipes.training import compile_model

TUNERS = ("hyperband", "bayesian", "random")
# Hyperband keeps the best 1/FACTOR of each round and trains it FACTOR times longer.
HYPERBAND_FACTOR = 3

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
        phases: the recipe's `phases(config)` if it trains in phases; each trial then trains
            every phase of its config (`dlrecipes.phases.fit`), whatever epochs the tuner asks.
    """

    def __init__(
        self,
        config: RecipeConfig,
        info: DataInfo,
        build_model: Callable[[Any, DataInfo], keras.Model],
        space: Space,
        phases: Callable[[Any], list[Phase]] | None = None,
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
        self.phases = phases

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
        return compile_model(self.build_model(config, self.info), config, self._steps(config))

    def _steps(self, config: RecipeConfig) -> int:
        return max(1, math.ceil(self.info.num_examples.get("train", 0) / config.batch_size))

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
        if self.phases is not None:
            config = self.config_for(hp)
            return phases.fit(
                model,
                self.phases(config),
                x,
                kwargs.get("validation_data"),
                steps_per_epoch=self._steps(config),
                compile=compile_model,
                callbacks=kwargs.get("callbacks") or [],
                verbose=kwargs.get("verbose", 2),
            )
        return model.fit(x, *args, **kwargs)


# ---------------------------------------------------------------------------------------------
# Tuners: keras-tuner's own oracles and tuners, with two small additions.
# ---------------------------------------------------------------------------------------------


class _DefaultsFirst:
    """Oracle mixin: the first trial of a fresh search tries the hyperparameters' defaults.

    keras-tuner's oracles draw every first trial at random; starting from the config's values
    makes the hand-set defaults the baseline every later trial is compared with.
    """

    def _random_values(self) -> dict[str, Any] | None:
        if not self._tried_so_far:
            hps = self.hyperparameters.copy()
            return {hp.name: hp.default for hp in hps.space if hps.is_active(hp)}
        return super()._random_values()


class _HyperbandOracle(_DefaultsFirst, keras_tuner.oracles.HyperbandOracle):
    pass


class _BayesianOracle(_DefaultsFirst, keras_tuner.oracles.BayesianOptimizationOracle):
    pass


class _RandomOracle(_DefaultsFirst, keras_tuner.oracles.RandomSearchOracle):
    pass


class _Tuner(keras_tuner.Tuner):
    """`keras_tuner.Tuner` that says which tuner runs which trial, and writes a failed trial's
    traceback into its trial directory.

    keras-tuner keeps the error in `trial.message`, but its gRPC `Trial` message has no field for
    it: in a distributed search only the worker that ran the trial knows why it failed. The file
    lets the chief's report show it (the directory is shared on one host, or on a shared disk).
    """

    def on_trial_begin(self, trial: keras_tuner.engine.trial.Trial) -> None:
        print(f"{self.tuner_id} runs trial {trial.trial_id}", flush=True)
        super().on_trial_begin(trial)

    def on_trial_end(self, trial: keras_tuner.engine.trial.Trial) -> None:
        if trial.message:
            error_file = Path(self.get_trial_dir(trial.trial_id), tuning_report.ERROR_FILE)
            error_file.write_text(trial.message)
            print(f"Trial {trial.trial_id} failed:\n{trial.message}", file=sys.stderr)
        super().on_trial_end(trial)


class _HyperbandTuner(_Tuner, keras_tuner.Hyperband):
    """keras-tuner's Hyperband (epochs per round, continuing from the previous round's weights)
    driven by the oracle given, instead of the one `keras_tuner.Hyperband.__init__` builds."""

    def __init__(self, oracle: keras_tuner.Oracle, **kwargs: Any) -> None:
        keras_tuner.Tuner.__init__(self, oracle=oracle, **kwargs)


@dataclasses.dataclass(frozen=True)
class SearchOptions:
    """How to search, as the `tune` flags set it.

    Args:
        tuner: `hyperband`, `bayesian` or `random`.
        max_trials: trials of a random or Bayesian search (Hyperband sizes itself from
            `max_epochs`).
        max_epochs: epochs of the longest trial; None = the config's `epochs`.
        executions_per_trial: models trained per trial; the objective is their mean.
        objective: the metric to optimize; `loss` / `error` metrics are minimized, others
            maximized.
        directory: where the search and its results live; None = `runs/<recipe>/tuning`.
        overwrite: start afresh instead of resuming a search found in `directory`.
    """

    tuner: str = "hyperband"
    max_trials: int = 10
    max_epochs: int | None = None
    executions_per_trial: int = 1
    objective: str = MONITOR
    directory: Path | None = None
    overwrite: bool = False

    def __post_init__(self) -> None:
        if self.tuner not in TUNERS:
            raise ConfigError(f"--tuner {self.tuner!r} is unknown; use one of {', '.join(TUNERS)}.")
        for name in ("max_trials", "executions_per_trial"):
            if getattr(self, name) < 1:
                raise ConfigError(f"--{name.replace('_', '-')} must be at least 1.")
        if self.max_epochs is not None and self.max_epochs < 1:
            raise ConfigError("--max-epochs must be at least 1.")


def add_search_flags(parser: argparse.ArgumentParser) -> None:
    """The `tune` flags that set `SearchOptions`."""
    group = parser.add_argument_group("search")
    group.add_argument("--tuner", choices=TUNERS, default=SearchOptions.tuner)
    group.add_argument(
        "--max-trials",
        type=int,
        default=SearchOptions.max_trials,
        help="trials of a random or bayesian search (Hyperband sizes itself from --max-epochs)",
    )
    group.add_argument(
        "--max-epochs", type=int, help="epochs of the longest trial (default: the config's epochs)"
    )
    group.add_argument(
        "--executions-per-trial",
        type=int,
        default=SearchOptions.executions_per_trial,
        help="models trained per trial; the objective is their mean",
    )
    group.add_argument(
        "--objective",
        default=SearchOptions.objective,
        help="metric to optimize (loss / error metrics are minimized)",
    )
    group.add_argument(
        "--directory", type=Path, help="where the search lives (default runs/<recipe>/tuning)"
    )
    group.add_argument(
        "--overwrite",
        action="store_true",
        help="start afresh; without it a search found in --directory is resumed",
    )


def options_from_args(args: argparse.Namespace) -> SearchOptions:
    """`SearchOptions` from the flags `add_search_flags` added."""
    return SearchOptions(
        **{f.name: getattr(args, f.name) for f in dataclasses.fields(SearchOptions)}
    )


def objective(name: str) -> keras_tuner.Objective:
    """The objective `name`: minimized when it is a loss or an error, maximized otherwise."""
    direction = "min" if ("loss" in name or "error" in name) else "max"
    return keras_tuner.Objective(name, direction)


def is_worker() -> bool:
    """Whether this process is a worker of a distributed search (not the chief, not alone)."""
    return dist_utils.has_chief_oracle() and not dist_utils.is_chief_oracle()


def build_tuner(
    hypermodel: keras_tuner.HyperModel,
    options: SearchOptions,
    *,
    directory: Path,
    project_name: str,
    max_epochs: int,
    seed: int = 0,
) -> keras_tuner.Tuner:
    """The keras-tuner tuner of `options.tuner`, resuming any search in `directory`."""
    common: dict[str, Any] = {
        "objective": objective(options.objective),
        "seed": seed,
        # keras-tuner stops a search after 3 failed trials in a row by raising from
        # `end_trial`. On a chief that happens inside a gRPC call, before the trial is released,
        # so the chief would wait for it forever: a distributed search runs every trial instead.
        "max_consecutive_failed_trials": sys.maxsize if dist_utils.has_chief_oracle() else 3,
    }
    if options.tuner == "hyperband":
        oracle = _HyperbandOracle(max_epochs=max_epochs, factor=HYPERBAND_FACTOR, **common)
        tuner_class: type[keras_tuner.Tuner] = _HyperbandTuner
    elif options.tuner == "bayesian":
        # A third of the trials explore at random before the Gaussian process proposes.
        initial = max(2, options.max_trials // 3)
        oracle = _BayesianOracle(
            max_trials=options.max_trials, num_initial_points=initial, **common
        )
        tuner_class = _Tuner
    else:
        oracle = _RandomOracle(max_trials=options.max_trials, **common)
        tuner_class = _Tuner
    return tuner_class(
        oracle=oracle,
        hypermodel=hypermodel,
        executions_per_trial=options.executions_per_trial,
        directory=str(directory),
        project_name=project_name,
        # The chief owns the directory: a worker that deleted it would delete the chief's trials.
        overwrite=options.overwrite and not is_worker(),
    )


@dataclasses.dataclass
class SearchResult:
    """What a search left behind (None on a worker: only the chief has the trials)."""

    directory: Path
    summary: tuning_report.Summary | None
    best_hparams_path: Path | None


def search(recipe: Recipe, config: RecipeConfig, options: SearchOptions) -> SearchResult:
    """Runs (or resumes) a hyperparameter search for `recipe`, then writes its results.

    The results, in `options.directory` (default `runs/<recipe>/tuning/`): `best_hparams.json`
    (config fields -> values, for `train --hparams`), `trials.csv`, `tuning_report.md` and
    `objective.png`. keras-tuner's own state lives in `<directory>/<recipe>/`.

    Raises:
        TuningFailed: no trial completed; the results still list every trial and its error.
    """
    directory = Path(options.directory or Path("runs") / recipe.name / "tuning")
    if options.overwrite and not is_worker():
        tuning_report.remove(directory)
    runtime.seed_everything(config.seed, config.deterministic)
    runtime.set_precision(config.precision)
    epochs = options.max_epochs or config.epochs
    config = dataclasses.replace(config, epochs=epochs)
    splits = recipe.load_data(config)
    hypermodel = recipe.build_hypermodel(config, splits.info)
    tuner = build_tuner(
        hypermodel,
        options,
        directory=directory,
        project_name=recipe.name,
        max_epochs=epochs,
        seed=config.seed,
    )
    print(f"{tuner.tuner_id}: {tuning_launch.READY}", flush=True)
    stopped = None
    try:
        tuner.search(splits.train, validation_data=splits.validation, epochs=epochs, verbose=2)
    except RuntimeError as err:
        if "consecutive failures" not in str(err):
            raise
        stopped = str(err).splitlines()[0]
    if is_worker():
        return SearchResult(directory, None, None)
    config_fields = {f.name for f in dataclasses.fields(config)}
    summary = tuning_report.summarize(
        tuner.oracle,
        project_dir=Path(tuner.project_dir),
        fields=[hp.name for hp in tuner.oracle.get_space().space if hp.name in config_fields],
        config_class=type(config),
        tuner=options.tuner,
        epochs=epochs,
        stopped=stopped,
    )
    best = tuning_report.write(directory, summary, recipe.name)
    report = directory / "tuning_report.md"
    print(f"\n{summary.table()}\n\n{summary.counts_text()}; report: {report}")
    if best is None:
        raise TuningFailed(
            f"No trial completed ({summary.counts_text()}), so no best hyperparameters were "
            f"written. The errors are in the table above and in {report}. Fix the cause, "
            "then run again with --overwrite."
        )
    return SearchResult(directory, summary, best)
