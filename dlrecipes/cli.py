"""The command line every recipe exposes: `python recipes/<name>/recipe.py
train|tune|evaluate|predict|export`.

A recipe ends with `dlrecipes.cli.main(NAME, Config, train=train, tune=tune, evaluate=evaluate)`:
its own functions are the commands, and this module parses the flags into their arguments. Every
field of the recipe's `Config` is a flag (`learning_rate` -> `--learning-rate`, booleans as
`--flag/--no-flag`, tuples as `32,64,128`), so the knobs people tune never need a code edit.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shlex
import sys
import typing
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from dlrecipes import baselines, cross_validation, exporting, predicting, reports, serving, tuning
from dlrecipes.config import RECIPE_KEY, RecipeConfig, coerce, field_types, flag, strip_optional
from dlrecipes.errors import CheckpointError, ConfigError, RecipeError, RunDirError
from dlrecipes.field_help import field_help
from dlrecipes.multihost import cluster
from dlrecipes.run import RunResult
from dlrecipes.saving import load_model

# Set by other flags (`--folds`), not by hand.
INTERNAL_FIELDS = {"fold"}
# The config fields `evaluate` takes: which data, and how to read it.
EVALUATE_FIELDS = ("dataset", "data_dir", "batch_size", "image_size")


@dataclasses.dataclass(frozen=True)
class Commands:
    """A recipe's commands, as its `recipe.py` defines them.

    Args:
        name: the recipe's name (runs go to `runs/<name>/`).
        config_class: its `Config`.
        train: `train(config, run_dir, *, resume, export) -> RunResult`.
        tune: `tune(config, options) -> tuning.SearchResult`.
        evaluate: `evaluate(config, model_path) -> metrics` on the config's test split.
        load_data: `load_data(config) -> Splits`, for `export` (None: no `export` command).
    """

    name: str
    config_class: type[RecipeConfig]
    train: Callable[..., RunResult]
    tune: Callable[..., Any]
    evaluate: Callable[[Any, Path], dict[str, Any]]
    load_data: Callable[[Any], Any] | None = None


def build_parser(
    recipe: Commands, tuner: str = tuning.SearchOptions.tuner
) -> tuple[argparse.ArgumentParser, dict[str, Any]]:
    """The parser, and its subcommands' parsers by name (`tuner`: `tune`'s default)."""
    parser = argparse.ArgumentParser(
        prog=f"recipes/{recipe.name}/recipe.py",
        description=(recipe.config_class.__doc__ or "").strip().splitlines()[0],
        allow_abbrev=False,
    )
    commands = parser.add_subparsers(dest="command", required=True)

    def command(name: str, **kwargs: Any) -> argparse.ArgumentParser:
        return commands.add_parser(name, allow_abbrev=False, **kwargs)

    train = command("train", help="train a model; prints the run directory last")
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
        nargs="?",
        const="saved_model",
        default="",
        metavar="FORMATS",
        help="also export the model, each format checked against it on the test split: "
        f"comma-separated, of {','.join(exporting.FORMATS)} (alone: saved_model)",
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

    tune = command(
        "tune", help="search hyperparameters with Keras Tuner; prints best_hparams.json last"
    )
    _add_config_flags(tune, recipe.config_class)
    tuning.add_search_flags(tune, tuner)
    tune.add_argument(
        "--tiny", action="store_true", help="search tiny models for a few epochs (tests)"
    )

    evaluate = command("evaluate", help="score a saved model on a test split")
    evaluate.add_argument("--model", type=Path, required=True, help="path of a model.keras")
    _add_config_flags(evaluate, recipe.config_class, EVALUATE_FIELDS)
    predict = command(
        "predict", help="classify images or texts with a saved model; one line per input"
    )
    _add_predict_flags(predict)
    if recipe.load_data is not None:
        export = command(
            "export",
            help="export a finished run's model, each format checked against it on the test split",
        )
        export.add_argument("--model", type=Path, required=True, help="path of a model.keras")
        export.add_argument(
            "--format",
            default="saved_model,litert",
            metavar="FORMATS",
            help=f"comma-separated, of {','.join(exporting.FORMATS)} (default: saved_model,litert)",
        )
    return parser, commands.choices


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


def make_config(recipe: Commands, args: argparse.Namespace) -> RecipeConfig:
    """Defaults, then `--hparams`, then `--tiny`, then explicit flags, then the defaults that
    follow the inputs (`RecipeConfig.follow_inputs`, printed) for the fields none of those set;
    on `--resume`, the saved config, which explicit flags may not contradict."""
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
    values, given = cls().to_dict(), set(explicit)
    if getattr(args, "hparams", None):
        if not args.hparams.exists():
            raise ConfigError(f"--hparams {args.hparams}: no such file.")
        preset = coerce(cls, json.loads(args.hparams.read_text()))
        values.update(preset)
        given |= set(preset)
    config, tiny = cls.from_dict(values), set()
    if getattr(args, "tiny", False):
        config, tiny = config.tiny(), set(cls.TINY) - given
        given |= tiny
    config = dataclasses.replace(config, **explicit)
    chosen, why = config.follow_inputs(given, tiny)
    if chosen:
        settings = " ".join(_as_flag(name, value) for name, value in chosen.items())
        print(f"{why}: {settings} (a flag or --hparams sets any of them)", flush=True)
    return dataclasses.replace(config, **chosen)


def _as_flag(name: str, value: Any) -> str:
    """A config value as the flag that sets it: `--units 32,64`, `--no-flip`."""
    if isinstance(value, bool):
        return f"--{flag(name)}" if value else f"--no-{flag(name)}"
    text = ",".join(map(str, value)) if isinstance(value, tuple) else str(value)
    return f"--{flag(name)} {text}"


def saved_config(recipe: Commands, path: Path, command: str) -> RecipeConfig:
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


def main(
    name: str,
    config_class: type[RecipeConfig],
    *,
    train: Callable[..., RunResult],
    tune: Callable[..., Any],
    evaluate: Callable[[Any, Path], dict[str, Any]],
    load_data: Callable[[Any], Any] | None = None,
    argv: Sequence[str] | None = None,
    tuner: str = tuning.SearchOptions.tuner,
) -> int:
    """Parses the command line and runs the recipe's `train`, `tune`, `evaluate`, `predict` or
    `export` (offered with `load_data`); returns the exit status.

    Expected refusals (`dlrecipes.errors.RecipeError`: bad config, unknown dataset, unusable run
    directory or checkpoint, divergence) print one line and return 2; Ctrl-C prints one line
    (for `train`, the command that resumes the run) and returns 130; anything else is a bug and
    raises with its traceback. `tuner` is `tune`'s default `--tuner`.
    """
    recipe = Commands(name, config_class, train, tune, evaluate, load_data)
    parser, subparsers = build_parser(recipe, tuner)
    args, unknown = parser.parse_known_args(argv)
    if unknown:  # named by the subcommand's own usage, not the top-level one
        subparsers[args.command].error(f"unrecognized arguments: {' '.join(unknown)}")
    try:
        if args.command == "train":
            return _train(recipe, args)
        if args.command == "tune":
            return _tune(recipe, args)
        if args.command == "predict":
            return _predict(recipe, args)
        if args.command == "export":
            return _export(recipe, args)
        return _evaluate(recipe, args)
    except RecipeError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as err:
        print(_interrupted(recipe, args, getattr(err, "run_dir", None)), file=sys.stderr)
        return 130


def _interrupted(recipe: Commands, args: argparse.Namespace, run_dir: Path | None) -> str:
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
    command += ["--export", args.export] if args.export else []
    return f"interrupted; {run_dir} keeps what was done. Continue with: {shlex.join(command)}"


def _train(recipe: Commands, args: argparse.Namespace) -> int:
    if args.resume and args.run_dir is None:
        latest = sorted((Path("runs") / recipe.name).glob("*/config.json"))
        hint = f" (the latest run here is {latest[-1].parent})" if latest else ""
        raise RunDirError(
            f"--resume needs --run-dir, the directory of the run to continue{hint}: "
            f"train --run-dir DIR --resume."
        )
    config = make_config(recipe, args)
    export = exporting.parse_formats(args.export) if args.export else ()
    if args.folds:
        result = cross_validation.cross_validate(
            recipe.train,
            recipe.name,
            config,
            args.folds,
            args.run_dir,
            resume=args.resume,
            export=export,
        )
        print(cross_validation.summary_line(result.metrics))
        if "baseline" in result.metrics:  # text folds: did they beat a bag of words?
            print(baselines.verdict(result.metrics["baseline"]))
    else:
        result = recipe.train(config, args.run_dir, resume=args.resume, export=export)
        cluster.finish_together(config.strategy)
        if not result.chief:  # a multi-host process other than the chief
            print(f"Worker done; the chief writes the results to {args.run_dir}.")
            return 0
        if "accuracy" in result.metrics:
            print(
                f"test accuracy: {result.metrics['accuracy']:.4f} "
                f"({result.metrics['num_examples']} examples)"
            )
        if "baseline" in result.metrics:  # a text run: did it beat a bag of words?
            print(baselines.verdict(result.metrics["baseline"]))
    print(result.run_dir)
    return 0


def _tune(recipe: Commands, args: argparse.Namespace) -> int:
    result = recipe.tune(make_config(recipe, args), tuning.options_from_args(args))
    if result.best_hparams_path is None:
        print(f"Worker done; the chief writes the results to {result.directory}.")
    else:
        print(result.best_hparams_path)
    return 0


def _evaluate(recipe: Commands, args: argparse.Namespace) -> int:
    cls = recipe.config_class
    config = _model_config(recipe, args.model, f"evaluate --model {args.model}")
    explicit = coerce(cls, {k: v for k, v in vars(args).items() if k in field_types(cls)})
    # A fold only changes train / validation; on another dataset it would not even apply.
    config = dataclasses.replace(config, **explicit, fold=None)
    metrics = recipe.evaluate(config, args.model)
    slug = config.dataset.replace(":", "-").replace("/", "_").strip("_.")
    out = args.model.parent / f"eval-{slug}.json"
    reports.write_json(out, metrics)
    print(
        f"test accuracy on {config.dataset}: {metrics['accuracy']:.4f} "
        f"({metrics['num_examples']} examples)"
    )
    print(out)
    return 0


def _model_config(recipe: Commands, model: Path, command: str) -> RecipeConfig:
    """The config of the run that saved `model` (refused when another recipe trained it), or the
    recipe's defaults for a model outside a run directory."""
    saved = model.parent / "config.json"
    if saved.exists():
        return saved_config(recipe, saved, command)
    return recipe.config_class()


# ---------------------------------------------------------------------------------------------
# predict: a saved model's class and probability for inputs named on the command line.
# ---------------------------------------------------------------------------------------------


def _add_predict_flags(predict: argparse.ArgumentParser) -> None:
    predict.add_argument(
        "--model",
        type=Path,
        required=True,
        help="path of a model.keras, or of an export (saved_model folder, .tflite, .onnx)",
    )
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


def _predict(recipe: Commands, args: argparse.Namespace) -> int:
    inputs = " ".join(shlex.quote(i) for i in args.inputs)
    _model_config(recipe, args.model, f"predict --model {args.model} {inputs}")
    model = load_model(args.model) if args.model.suffix == ".keras" else serving.load(args.model)
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


def _export(recipe: Commands, args: argparse.Namespace) -> int:
    """Exports a finished run's model beside it, each format checked on the run's test split;
    the figures go into the run's `metrics.json` ("exports") and `report.md`."""
    formats = exporting.parse_formats(args.format)
    config = _model_config(recipe, args.model, f"export --model {args.model}")
    model = load_model(args.model, compile=False)
    splits = recipe.load_data(config)
    calibration = getattr(config, "calibration", exporting.CALIBRATION)
    rows = exporting.export(model, formats, args.model.parent, splits, calibration=calibration)
    exporting.record(args.model.parent, rows)
    for row in rows[1:]:
        print(
            f"{row['file']}: max probability difference {row['max_abs_diff']:.2g}, same class "
            f"{row['agreement']:.2%}, test accuracy {row['accuracy']:.4f}"
        )
    print(args.model.parent)
    return 0
