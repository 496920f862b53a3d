"""Keras Tuner glue: a recipe's config fields become hyperparameters of the same names.

Because the names match, a search's best values (`best_hparams.json`) are config overrides that
`train --hparams best_hparams.json` applies as they are.

- `hypermodel`: `ConfigHyperModel`, the search space over config fields.
- `tuners`: keras-tuner's oracles and tuners, the defaults tried first (`build_tuner`).
- `budget`: the trials and epochs of a Hyperband search, before it starts (`hyperband_budget`).
- `options`: `SearchOptions` and the `tune` flags that set them.
- `searching`: `search`, which runs or resumes a search and writes its results.
- `report`: best_hparams.json, trials.csv, tuning_report.md and objective.png.
- `launch`: a chief and N workers on one host (`python -m dlrecipes.tuning.launch`).

Example:

>>> result = tuning.search(
...     "image_classification", config, tuning.SearchOptions(tuner="random", max_trials=4),
...     load_data=load_data, build_model=build_model, fit=fit,  # the recipe's own
...     space={"dropout": (0.0, 0.5), "learning_rate": (3e-4, 1e-2, "log")},
... )
>>> result.best_hparams_path   # runs/image_classification/tuning/best_hparams.json

Distributed: the same command started with Keras Tuner's own environment variables
(`KERASTUNER_TUNER_ID=chief|tuner0|...`, `KERASTUNER_ORACLE_IP`, `KERASTUNER_ORACLE_PORT`) runs
as the chief (which holds the oracle and writes the results) or as a worker (which trains trials);
`dlrecipes.tuning.launch` starts a chief and N workers on one host.
"""

from dlrecipes.tuning.budget import Budget, hyperband_budget
from dlrecipes.tuning.hypermodel import ConfigHyperModel, Space, Trial
from dlrecipes.tuning.options import TUNERS, SearchOptions, add_search_flags, options_from_args
from dlrecipes.tuning.searching import SearchResult, search
from dlrecipes.tuning.tuners import build_tuner, is_worker, objective

__all__ = [
    "TUNERS",
    "Budget",
    "ConfigHyperModel",
    "SearchOptions",
    "SearchResult",
    "Trial",
    "Space",
    "add_search_flags",
    "build_tuner",
    "hyperband_budget",
    "is_worker",
    "objective",
    "options_from_args",
    "search",
]
