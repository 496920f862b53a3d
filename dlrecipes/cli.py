"""The command line every recipe exposes: `python recipes/<name>/recipe.py train|tune|evaluate`.

Every field of the recipe's `Config` is a flag (`learning_rate` -> `--learning-rate`, booleans as
`--flag/--no-flag`, tuples as `32,64,128`), so the knobs people tune never need a code edit.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shlex
import sys
import typing
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from dlrecipes import predicting, study, training, tuning
from dlrecipes.config import RECIPE_KEY, RecipeConfig, coerce, field_types, flag, strip_optional
from dlrecipes.contract import Recipe
from dlrecipes.errors import CheckpointError, ConfigError, RecipeError, RunDirError
from dlrecipes.field_help import field_help

# Set by other flags (`--folds`), not by hand.
INTERNAL_FIELDS = {"fold"}
# The config fields `evaluate` takes: which data, and how to read it.
EVALUATE_FIELDS = ("dataset", "data_dir", "batch_size", "image_size")


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
    _add_config_flags(evaluate, recipe.config_class, EVALUATE_FIELDS)
    _add_predict_parser(commands)
    return parser


def _add_config_flags(
    parser: argparse.ArgumentParser,
    config_class: type[RecipeConfig],
    names: Sequence[str] | None = None,
) -> None:
    """One flag per config field (or per field in `names`), its help showing the default and
    the allowed values."""
    group = parser.add_argument_group(
        "config (every field of the recipe's Config; defaults are its measured best)"
    )
    defaults = config_class().to_dict()
    helps = field_help(config_class)
    choices = config_class.choices()
    for name, hint in field_types(config_class).items():
        if name in INTERNAL_FIELDS or (names is not None and name not in names):
            continue
        # SUPPRESS: only flags given on the command line reach the config.
        kwargs: dict[str, Any] = {"dest": name, "default": argparse.SUPPRESS}
        if hint in (bool, bool | None):
            kwargs["action"] = argparse.BooleanOptionalAction
        else:
            kwargs["metavar"] = (
                "{" + ",".join(choices[name]) + "}" if name in choices else _metavar(hint)
            )
        default = defaults[name]
        if isinstance(default, tuple | list):
            default = ",".join(map(str, default))
        text = f"{helps.get(name, '')} (default: {default})".strip()
        kwargs["help"] = text.replace("%", "%%")  # argparse formats help with %
        group.add_argument(f"--{flag(name)}", **kwargs)


def _metavar(hint: Any) -> str:
    """What a flag's value looks like: `N`, `X`, `N,N` (a pair), `N,N,...` (any length)."""
    base = strip_optional(hint)
    args = typing.get_args(base)
    if typing.get_origin(base) is tuple:
        item = _metavar(args[0])
        return f"{item},{item},..." if args[-1] is Ellipsis else ",".join([item] * len(args))
    return {int: "N", float: "X"}.get(base, "STR")


def make_config(recipe: Recipe, args: argparse.Namespace) -> RecipeConfig:
    """Defaults, then `--hparams`, then `--tiny`, then explicit flags; on `--resume`, the saved
    config, which explicit flags may not contradict."""
    cls = recipe.config_class
    explicit = coerce(cls, {k: v for k, v in vars(args).items() if k in field_types(cls)})
    if getattr(args, "resume", False) and args.run_dir and (args.run_dir / "config.json").exists():
        saved = saved_config(
            recipe, args.run_dir / "config.json", f"train --run-dir {args.run_dir} --resume"
        )
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


def saved_config(recipe: Recipe, path: Path, command: str) -> RecipeConfig:
    """The config a run saved at `path`, refused in one line when another recipe wrote it.

    `command` is the subcommand and arguments the user ran, for the message.
    """
    try:
        values = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise RunDirError(
            f"{path} is not valid JSON ({err}); restore it or start a new run."
        ) from err
    other = values.get(RECIPE_KEY)
    unknown = sorted(set(values) - set(field_types(recipe.config_class)) - {RECIPE_KEY})
    if other and other != recipe.name:
        raise CheckpointError(
            f"{path.parent} was trained by the {other} recipe, not {recipe.name} (its "
            f"config.json says so): run `python recipes/{other}/recipe.py {command}` instead."
        )
    if unknown:
        raise CheckpointError(
            f"{path} has fields the {recipe.name} recipe does not know ({', '.join(unknown)}), "
            f"so another recipe wrote it: run `{command}` with that recipe's recipe.py."
        )
    return recipe.config_class.load(path)


def run(recipe: Recipe, argv: Sequence[str] | None = None) -> int:
    """Parses the command line and runs `train`, `tune` or `evaluate`; returns the exit status.

    Expected refusals (`dlrecipes.errors.RecipeError`: bad config, unknown dataset, unusable run
    directory or checkpoint, divergence) print one line and return 2; Ctrl-C prints one line
    (for `train`, the command that resumes the run) and returns 130; anything else is a bug and
    raises with its traceback.
    """
    args = build_parser(recipe).parse_args(argv)
    try:
        if args.command == "train":
            return _train(recipe, args)
        if args.command == "tune":
            return _tune(recipe, args)
        if args.command == "predict":
            return _predict(args)
        return _evaluate(recipe, args)
    except RecipeError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as err:
        print(_interrupted(recipe, args, getattr(err, "run_dir", None)), file=sys.stderr)
        return 130


def _interrupted(recipe: Recipe, args: argparse.Namespace, run_dir: Path | None) -> str:
    if args.command == "tune":
        where = args.directory or Path("runs") / recipe.name / "tuning"
        return (
            f"interrupted; {where} keeps the finished trials. Run the same command again, without "
            "--overwrite, to continue the search."
        )
    if args.command != "train":
        return "interrupted."
    if run_dir is None:
        return "interrupted before training started; no run directory was written."
    script = (
        sys.argv[0] if sys.argv[0].endswith("recipe.py") else f"recipes/{recipe.name}/recipe.py"
    )
    command = ["python", script, "train", "--run-dir", str(run_dir), "--resume"]
    command += ["--folds", str(args.folds)] if args.folds else []
    command += ["--export"] if args.export else []
    return f"interrupted; {run_dir} keeps what was done. Continue with: {shlex.join(command)}"


def _train(recipe: Recipe, args: argparse.Namespace) -> int:
    if args.resume and args.run_dir is None:
        latest = sorted((Path("runs") / recipe.name).glob("*/config.json"))
        hint = f" (the latest run here is {latest[-1].parent})" if latest else ""
        raise RunDirError(
            f"--resume needs --run-dir, the directory of the run to continue{hint}: "
            f"train --run-dir DIR --resume."
        )
    config = make_config(recipe, args)
    if args.folds and recipe.train is not None:
        raise ConfigError(f"--folds is not offered by the {recipe.name} recipe; drop it.")
    if args.folds:
        result = training.cross_validate(
            recipe, config, args.folds, args.run_dir, resume=args.resume, export=args.export
        )
        summary = result.metrics
        print(
            f"{args.folds}-fold validation accuracy: {summary['val_accuracy_mean']:.4f} "
            f"± {summary['val_accuracy_std']:.4f} (test accuracy, mean over folds: "
            f"{summary['test_accuracy_mean']:.4f})"
        )
    elif getattr(config, "study", ""):  # a few-label study (recipes whose Config has `study`)
        result = study.run(recipe, config, args.run_dir, resume=args.resume)
        print(study.table_markdown(result.metrics))
    else:
        train = recipe.train or training.train
        result = train(recipe, config, args.run_dir, resume=args.resume, export=args.export)
        if not result.metrics:  # a multi-host process other than the chief
            print(f"Worker done; the chief writes the results to {args.run_dir}.")
            return 0
        print(
            f"test accuracy: {result.metrics['accuracy']:.4f} "
            f"({result.metrics['num_examples']} examples)"
        )
    print(result.run_dir)
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
    config = cls()
    if saved.exists():
        config = saved_config(recipe, saved, f"evaluate --model {args.model}")
    explicit = coerce(cls, {k: v for k, v in vars(args).items() if k in field_types(cls)})
    # A fold only changes train / validation; on another dataset it would not even apply.
    config = dataclasses.replace(config, **explicit, fold=None)
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


# ---------------------------------------------------------------------------------------------
# predict: a saved model's class and probability for inputs named on the command line.
# ---------------------------------------------------------------------------------------------


def _add_predict_parser(commands: Any) -> None:
    predict = commands.add_parser(
        "predict", help="classify images or texts with a saved model; one line per input"
    )
    predict.add_argument("--model", type=Path, required=True, help="path of a model.keras")
    predict.add_argument(
        "inputs",
        nargs="+",
        metavar="INPUT",
        help="image files or folders of them (image models); texts, or files of one text per "
        "line (text models)",
    )
    predict.add_argument(
        "--json", action="store_true", help="print JSON with every class's probability"
    )
    predict.add_argument("--batch-size", type=int, default=256, help="inputs per model call")


def _predict(args: argparse.Namespace) -> int:
    model = training.load_model(args.model)
    names, known = predicting.class_names(args.model, model.output_shape[-1])
    if not known:
        print(
            f"note: no metrics.json with class names beside {args.model}; classes are shown "
            "by index.",
            file=sys.stderr,
        )
    results = predicting.predict(model, args.inputs, names, batch_size=args.batch_size)
    print(predicting.as_json(results) if args.json else predicting.as_lines(results))
    return 0
