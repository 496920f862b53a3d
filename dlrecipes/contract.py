"""What the shared command line and training loop need from a recipe module."""

from __future__ import annotations

import dataclasses
import types
from collections.abc import Callable
from typing import Any

import keras
import numpy as np

from dlrecipes.config import RecipeConfig
from dlrecipes.data import DataInfo, Splits
from dlrecipes.phases import Phase


@dataclasses.dataclass(frozen=True)
class Recipe:
    """A recipe's parts, as `recipes/<name>/recipe.py` defines them.

    Args:
        name: the recipe's name; runs go to `runs/<name>/`.
        config_class: the recipe's `Config` dataclass (a `RecipeConfig`).
        load_data: `load_data(config) -> Splits` of batched train / validation / test data.
        build_model: `build_model(config, info) -> keras.Model`, uncompiled, taking raw inputs.
        build_hypermodel: `build_hypermodel(config, info) -> dlrecipes.tuning.ConfigHyperModel`,
            the search space over config fields (`tune` trains each trial as `train` does), or
            None for a recipe with nothing to tune (`tune` is then refused).
        report_extra: optional `report_extra(splits, y_true, y_prob) -> str`, markdown appended
            to `report.md` (e.g. the most confidently wrong examples).
        phases: optional `phases(config) -> list[dlrecipes.phases.Phase]`: train in phases, each
            with its own trainable layers and learning rate (fine-tuning); None = one `fit`.
        distill: optional `distill(config, splits) -> dlrecipes.distillation.Distillation | None`;
            when it returns one (the config names a teacher), the model fits the teacher's soft
            targets over a transfer set instead of the training labels alone.
        train: optional `train(recipe, config, run_dir, resume=..., export=...) -> RunResult`
            in place of `training.train`, for a run that is more than one fit (pruning);
            `run_dir` None means a new `runs/<recipe>/<timestamp>`.
    """

    name: str
    config_class: type[RecipeConfig]
    load_data: Callable[[Any], Splits]
    build_model: Callable[[Any, DataInfo], keras.Model]
    build_hypermodel: Callable[[Any, DataInfo], Any] | None
    _: dataclasses.KW_ONLY  # the optional parts by name only: their order is not an interface
    report_extra: Callable[[Splits, np.ndarray, np.ndarray], str] | None = None
    phases: Callable[[Any], list[Phase]] | None = None
    distill: Callable[[Any, Splits], Any] | None = None
    train: Callable[..., Any] | None = None

    @classmethod
    def from_module(cls, name: str, module: types.ModuleType) -> Recipe:
        """The recipe a `recipe.py` module defines: its `Config`, `load_data`, `build_model`,
        `build_hypermodel`, and `report_extra`, `phases`, `distill` and `train` where it
        has them."""
        return cls(
            name,
            module.Config,
            module.load_data,
            module.build_model,
            module.build_hypermodel,
            report_extra=getattr(module, "report_extra", None),
            phases=getattr(module, "phases", None),
            distill=getattr(module, "distill", None),
            train=getattr(module, "train", None),
        )
