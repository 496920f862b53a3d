"""keras-tuner's own oracles and tuners, with two small additions: the first trial tries the
config's defaults, and a failed trial's traceback is written into its trial directory."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import keras_tuner
from keras_tuner.src.distribute import utils as dist_utils

from dlrecipes import runtime
from dlrecipes.errors import RunDirError
from dlrecipes.tuning import report
from dlrecipes.tuning.hypermodel import ConfigHyperModel
from dlrecipes.tuning.options import SearchOptions

# Hyperband keeps the best 1/FACTOR of each round and trains it FACTOR times longer.
HYPERBAND_FACTOR = 3


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
    """`keras_tuner.Tuner` that says which tuner runs which trial, records each trial's whole
    config in its trial directory, and writes a failed trial's traceback there too.

    The config (`config.json`, the same file a training run writes) is what `train --hparams`
    needs to train the trial again. keras-tuner keeps the error in `trial.message`, but its gRPC
    `Trial` message has no field for it: in a distributed search only the worker that ran the
    trial knows why it failed. The files let the chief's report show both (the directory is
    shared on one host, or on a shared disk).
    """

    hypermodel: ConfigHyperModel

    def _populate_initial_space(self) -> None:
        # keras-tuner builds models until every conditional hyperparameter has been seen; a
        # ConfigHyperModel declares all of its dimensions up front, without conditions, so
        # declaring them is enough and no model (nor its data) is built before the first trial.
        hp = self.oracle.get_space()
        self.hypermodel.declare(hp)
        self.oracle.update_space(hp)

    def on_trial_begin(self, trial: keras_tuner.engine.trial.Trial) -> None:
        print(f"{self.tuner_id} runs trial {trial.trial_id}", flush=True)
        config = self.hypermodel.train_config(trial.hyperparameters)
        config.save(Path(self.get_trial_dir(trial.trial_id), report.TRIAL_CONFIG))
        super().on_trial_begin(trial)

    def on_trial_end(self, trial: keras_tuner.engine.trial.Trial) -> None:
        if trial.message:
            error_file = Path(self.get_trial_dir(trial.trial_id), report.ERROR_FILE)
            error_file.write_text(trial.message)
            print(f"Trial {trial.trial_id} failed:\n{trial.message}", file=sys.stderr)
        super().on_trial_end(trial)


class _HyperbandTuner(_Tuner, keras_tuner.Hyperband):
    """keras-tuner's Hyperband (epochs per round, continuing from the previous round's weights)
    driven by the oracle given, instead of the one `keras_tuner.Hyperband.__init__` builds."""

    def __init__(self, oracle: keras_tuner.Oracle, **kwargs: Any) -> None:
        keras_tuner.Tuner.__init__(self, oracle=oracle, **kwargs)


def objective(name: str) -> keras_tuner.Objective:
    """The objective `name`: minimized when it is a loss or an error, maximized otherwise."""
    direction = "min" if ("loss" in name or "error" in name) else "max"
    return keras_tuner.Objective(name, direction)


def is_worker() -> bool:
    """Whether this process is a worker of a distributed search (not the chief, not alone)."""
    return dist_utils.has_chief_oracle() and not dist_utils.is_chief_oracle()


def build_tuner(
    hypermodel: ConfigHyperModel,
    options: SearchOptions,
    *,
    directory: Path,
    project_name: str,
    max_epochs: int,
    seed: int = 0,
) -> keras_tuner.Tuner:
    """The keras-tuner tuner of `options.tuner`, resuming any search in `directory`.

    Trials are built under the distribution strategy `train` uses (`config.strategy`).

    Raises:
        RunDirError: keras-tuner cannot reload the search found in `directory` (another tuner
            made it).
    """
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
    try:
        return tuner_class(
            oracle=oracle,
            hypermodel=hypermodel,
            executions_per_trial=options.executions_per_trial,
            distribution_strategy=runtime.strategy(hypermodel.config.strategy),
            directory=str(directory),
            project_name=project_name,
            # The chief owns the directory: a worker deleting it would delete the chief's trials.
            overwrite=options.overwrite and not is_worker(),
        )
    except RuntimeError as err:  # keras-tuner: "Error reloading `Oracle` from existing project"
        if "reloading `Oracle`" not in str(err):
            raise
        raise RunDirError(
            f"{directory} holds a search that a {options.tuner} search cannot continue (another "
            "tuner made it). Pass --overwrite to replace it, or --directory DIR to search "
            "elsewhere."
        ) from err
