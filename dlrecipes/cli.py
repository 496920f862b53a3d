"""The command line every recipe exposes: `python recipes/<name>/recipe.py train|tune|evaluate`.

Every field of the recipe's `Config` is a flag (`learning_rate` -> `--learning-rate`, booleans as
`--flag/--no-flag`, tuples as `32,64,128`), so the knobs people tune never need a code edit.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from dlrecipes import training, tuning
from dlrecipes.config import RecipeConfig, coerce, field_types, flag
from dlrecipes.contract import Recipe
from dlrecipes.errors import ConfigError, RecipeError

# Set by other flags (`--folds`), not by hand.
INTERNAL_FIELDS = {"fold"}


def build_parser(recipe: Recipe) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=f"recipes/{recipe.name}/recipe.py",
        description=(recipe.config_class.__doc__ or "").strip().splitlines()[0],
    )
    commands = parser.add_subparsers(dest="command", required=True)

    train = commands.add_parser("train", help="train a model; prints the run directory last")
    _add_config_flags(train, recipe.config_class)
    train.add_argument(
        "--run-dir", type=Path, help="where the run is written (default runs/<recipe>/<timestamp>)"
    )
    train.add_argument(
        "--resume", action="store_true", help="continue the run in --run-dir from its last backup"
    )
    train.add_argument(
        "--folds",
        type=int,
        default=0,
        help="K-fold cross-validation on train+validation with K folds",
    )
    train.add_argument(
        "--export",
        action="store_true",
        help="also write a SavedModel for serving (run_dir/saved_model)",
    )
    train.add_argument(
        "--hparams",
        type=Path,
        help="JSON of config fields to use, e.g. a tuning run's best_hparams.json",
    )
    train.add_argument(
        "--tiny",
        action="store_true",
        help="shrink everything for a run of seconds (tests, a first look)",
    )

    tune = commands.add_parser(
        "tune", help="search hyperparameters with Keras Tuner; prints best_hparams.json last"
    )
    _add_config_flags(tune, recipe.config_class)
    tuning.add_search_flags(tune)
    tune.add_argument(
        "--tiny", action="store_true", help="search tiny models for a few epochs (tests)"
    )

    evaluate = commands.add_parser("evaluate", help="score a saved model on a test split")
    evaluate.add_argument("--model", type=Path, required=True, help="path of a model.keras")
    for name in ("dataset", "data_dir", "batch_size", "image_size"):
        if name in field_types(recipe.config_class):
            _add_field_flag(evaluate, name, field_types(recipe.config_class)[name])
    return parser


def _add_config_flags(parser: argparse.ArgumentParser, config_class: type[RecipeConfig]) -> None:
    group = parser.add_argument_group("config (defaults: the recipe's Config)")
    for name, hint in field_types(config_class).items():
        if name not in INTERNAL_FIELDS:
            _add_field_flag(group, name, hint)


def _add_field_flag(parser: Any, name: str, hint: Any) -> None:
    # SUPPRESS: only flags given on the command line reach the config.
    kwargs: dict[str, Any] = {"dest": name, "default": argparse.SUPPRESS}
    if hint in (bool, bool | None):
        kwargs["action"] = argparse.BooleanOptionalAction
    else:
        kwargs["metavar"] = name.upper()
    parser.add_argument(f"--{flag(name)}", **kwargs)


def make_config(recipe: Recipe, args: argparse.Namespace) -> RecipeConfig:
    """Defaults, then `--hparams`, then `--tiny`, then explicit flags; on `--resume`, the saved
    config, which explicit flags may not contradict."""
    cls = recipe.config_class
    explicit = coerce(cls, {k: v for k, v in vars(args).items() if k in field_types(cls)})
    if getattr(args, "resume", False) and args.run_dir and (args.run_dir / "config.json").exists():
        saved = cls.load(args.run_dir / "config.json")
        clashes = {k: v for k, v in explicit.items() if getattr(saved, k) != v}
        if clashes:
            raise ConfigError(
                f"--resume continues the run as it was configured; these flags differ from "
                f"{args.run_dir / 'config.json'}: {clashes}. Drop them, or start a new --run-dir."
            )
        return saved
    values = cls().to_dict()
    if getattr(args, "hparams", None):
        if not args.hparams.exists():
            raise ConfigError(f"--hparams {args.hparams}: no such file.")
        values.update(coerce(cls, json.loads(args.hparams.read_text())))
    config = cls.from_dict(values)
    if getattr(args, "tiny", False):
        config = config.tiny()
    return dataclasses.replace(config, **explicit)


def run(recipe: Recipe, argv: Sequence[str] | None = None) -> int:
    """Parses the command line and runs `train`, `tune` or `evaluate`; returns the exit status.

    Expected refusals (`dlrecipes.errors.RecipeError`: bad config, unknown dataset, unusable run
    directory or checkpoint, divergence) print one line and return 2; anything else is a bug and
    raises with its traceback.
    """
    args = build_parser(recipe).parse_args(argv)
    try:
        if args.command == "train":
            return _train(recipe, args)
        if args.command == "tune":
            return _tune(recipe, args)
        return _evaluate(recipe, args)
    except RecipeError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


def _train(recipe: Recipe, args: argparse.Namespace) -> int:
    config = make_config(recipe, args)
    run_dir = args.run_dir or training.runtime.new_run_dir("runs", recipe.name)
    if args.folds and recipe.train is not None:
        raise ConfigError(f"--folds is not offered by the {recipe.name} recipe; drop it.")
    if args.folds:
        summary = training.cross_validate(recipe, config, args.folds, run_dir, resume=args.resume)
        print(
            f"{args.folds}-fold validation accuracy: {summary['val_accuracy_mean']:.4f} "
            f"± {summary['val_accuracy_std']:.4f} (test accuracy, mean over folds: "
            f"{summary['test_accuracy_mean']:.4f})"
        )
    else:
        train = recipe.train or training.train
        result = train(recipe, config, run_dir, resume=args.resume, export=args.export)
        print(
            f"test accuracy: {result.metrics['accuracy']:.4f} "
            f"({result.metrics['num_examples']} examples)"
        )
    print(run_dir)
    return 0


def _tune(recipe: Recipe, args: argparse.Namespace) -> int:
    if recipe.build_hypermodel is None:
        raise ConfigError(
            f"The {recipe.name} recipe has nothing for Keras Tuner to search: `train` compares "
            f"its settings side by side (see recipes/{recipe.name}/README.md)."
        )
    result = tuning.search(recipe, make_config(recipe, args), tuning.options_from_args(args))
    if result.best_hparams_path is None:
        print(f"Worker done; the chief writes the results to {result.directory}.")
    else:
        print(result.best_hparams_path)
    return 0


def _evaluate(recipe: Recipe, args: argparse.Namespace) -> int:
    saved = args.model.parent / "config.json"
    cls = recipe.config_class
    config = cls.load(saved) if saved.exists() else cls()
    explicit = coerce(cls, {k: v for k, v in vars(args).items() if k in field_types(cls)})
    config = dataclasses.replace(config, **explicit)
    model = training.load_model(args.model)
    metrics, _, _ = training.evaluate_model(model, recipe.load_data(config))
    slug = config.dataset.replace(":", "-").replace("/", "_").strip("_.")
    out = args.model.parent / f"eval-{slug}.json"
    training.reports.write_json(out, metrics)
    print(
        f"test accuracy on {config.dataset}: {metrics['accuracy']:.4f} "
        f"({metrics['num_examples']} examples)"
    )
    print(out)
    return 0
