"""Running a search: `search(recipe, config, options, ...)` runs or resumes it and writes its
results."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import keras

from dlrecipes.config import RecipeConfig, flag
from dlrecipes.data import DataInfo, Splits
from dlrecipes.errors import RunDirError, TuningFailed
from dlrecipes.tuning import report
from dlrecipes.tuning.hypermodel import ConfigHyperModel, Space
from dlrecipes.tuning.options import SearchOptions
from dlrecipes.tuning.tuners import build_tuner, is_worker

# Printed once the search's data is prepared, just before it starts searching. The launcher
# (`dlrecipes.tuning.launch`) starts the workers after it: processes preparing the same TFDS
# dataset at once collide.
READY = "search ready"
# What a search was started with, in keras-tuner's project directory: a resumed search must
# match it (other flags would compare trials trained on other settings).
SEARCH_FILE = "search.json"
# How many differing settings a refusal names before it says "and N more".
SHOWN_DIFFERENCES = 4


@dataclasses.dataclass
class SearchResult:
    """What a search left behind (None on a worker: only the chief has the trials)."""

    directory: Path
    summary: report.Summary | None
    best_hparams_path: Path | None


def search(
    recipe: str,
    config: RecipeConfig,
    options: SearchOptions,
    *,
    load_data: Callable[[Any], Splits],
    build_model: Callable[[Any, DataInfo], keras.Model],
    fit: Callable[[keras.Model, Any, Splits, Any], Any],
    space: Space,
) -> SearchResult:
    """Runs (or resumes) a hyperparameter search over `space` for the recipe named `recipe`,
    training every trial with the recipe's own `load_data`, `build_model` and `fit` (see
    `ConfigHyperModel`), then writes its results.

    The results, in `options.directory` (default `runs/<recipe>/tuning/`): `best_hparams.json`
    (the best trial's whole config, for `train --hparams`), `trials.csv`, `tuning_report.md` and
    `objective.png`. keras-tuner's own state lives in `<directory>/<recipe>/`, with each trial's
    whole config in `trial_<id>/config.json`.

    Raises:
        RunDirError: `directory` holds a search started with another tuner or other settings.
        TuningFailed: no trial completed; the results still list every trial and its error.
    """
    directory = Path(options.directory or Path("runs") / recipe / "tuning")
    epochs = options.max_epochs or config.epochs
    config = dataclasses.replace(config, epochs=epochs)
    record_path = directory / recipe / SEARCH_FILE
    record = _record(config, options)
    if not options.overwrite:
        _check_resumable(directory, record_path, record)
    if options.overwrite and not is_worker():
        report.remove(directory)
    hypermodel = ConfigHyperModel(
        config, space, load_data=load_data, build_model=build_model, fit=fit
    )
    # Prepares the dataset (TFDS, word vectors) once, before the workers start.
    load_data(config)
    tuner = build_tuner(
        hypermodel,
        options,
        directory=directory,
        project_name=recipe,
        max_epochs=epochs,
        seed=config.seed,
    )
    if not is_worker():
        record_path.parent.mkdir(parents=True, exist_ok=True)
        record_path.write_text(json.dumps(record, indent=2) + "\n")
    for note in _notes(hypermodel, options):
        print(note)
    print(f"{tuner.tuner_id}: {READY}", flush=True)
    stopped = None
    try:
        tuner.search(verbose=2)
    except RuntimeError as err:
        if "consecutive failures" not in str(err):
            raise
        stopped = str(err).splitlines()[0]
    if is_worker():
        return SearchResult(directory, None, None)
    summary = report.summarize(
        tuner.oracle,
        project_dir=Path(tuner.project_dir),
        fields=list(hypermodel.space),
        config_of=lambda trial: hypermodel.train_config(trial.hyperparameters),
        tuner=options.tuner,
        stopped=stopped,
    )
    best = report.write(directory, summary, recipe)
    report_path = directory / "tuning_report.md"
    print(f"\n{summary.table()}\n\n{summary.counts_text()}; report: {report_path}")
    if best is None:
        raise TuningFailed(
            f"No trial completed ({summary.counts_text()}), so no best hyperparameters were "
            f"written. The errors are in the table above and in {report_path}. Fix the cause, "
            "then run again with --overwrite."
        )
    return SearchResult(directory, summary, best)


def _record(config: RecipeConfig, options: SearchOptions) -> dict[str, Any]:
    """The settings a resumed search must share with the search it continues, as JSON values."""
    settings = {
        "tuner": options.tuner,
        "objective": options.objective,
        "executions_per_trial": options.executions_per_trial,
        **config.to_dict(),
    }
    return json.loads(json.dumps(settings))


def _check_resumable(directory: Path, record_path: Path, record: dict[str, Any]) -> None:
    """Refuses to resume a search in `directory` that was started with other settings."""
    if not record_path.exists():
        return
    saved = json.loads(record_path.read_text())
    elsewhere = "--overwrite to replace it, or --directory DIR to search elsewhere"
    if saved.get("tuner") != record["tuner"]:
        raise RunDirError(
            f"{directory} holds a {saved.get('tuner')} search, which --tuner {record['tuner']} "
            f"cannot continue. Pass --tuner {saved.get('tuner')} to continue it, {elsewhere}."
        )
    differ = [k for k in record if saved.get(k) != record[k]]
    if differ:
        shown = ", ".join(
            f"--{flag(k)} {_show(saved.get(k))} (now {_show(record[k])})"
            for k in differ[:SHOWN_DIFFERENCES]
        )
        if len(differ) > SHOWN_DIFFERENCES:
            shown += f" and {len(differ) - SHOWN_DIFFERENCES} more"
        raise RunDirError(
            f"{directory} holds a search started with {shown}; a resumed search keeps its "
            f"settings. Run it with those, pass {elsewhere}."
        )


def _show(value: Any) -> str:
    return ",".join(map(str, value)) if isinstance(value, list) else str(value)


def _notes(hypermodel: ConfigHyperModel, options: SearchOptions) -> list[str]:
    """What the search does with the config's values that the user may not expect."""
    notes = list(hypermodel.notes)
    config = hypermodel.config
    # Hyperband's shortest trials train one epoch; the others train `epochs`.
    shortest = 1 if options.tuner == "hyperband" else config.epochs
    if config.warmup_epochs > shortest / 4:
        notes.append(
            f"warmup_epochs: {config.warmup_epochs:g} is capped at a quarter of each trial's "
            f"epochs ({shortest / 4:g} for a {shortest}-epoch trial), so no trial is all warm-up."
        )
    return notes
