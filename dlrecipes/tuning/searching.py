"""Running a search: `search(recipe, config, options)` runs or resumes it and writes its results."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from dlrecipes import runtime
from dlrecipes.config import RecipeConfig
from dlrecipes.contract import Recipe
from dlrecipes.errors import TuningFailed
from dlrecipes.tuning import report
from dlrecipes.tuning.options import SearchOptions
from dlrecipes.tuning.tuners import build_tuner, is_worker

# Printed once the search's data is prepared, just before it starts searching. The launcher
# (`dlrecipes.tuning.launch`) starts the workers after it: processes preparing the same TFDS
# dataset at once collide.
READY = "search ready"


@dataclasses.dataclass
class SearchResult:
    """What a search left behind (None on a worker: only the chief has the trials)."""

    directory: Path
    summary: report.Summary | None
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
        report.remove(directory)
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
    print(f"{tuner.tuner_id}: {READY}", flush=True)
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
    summary = report.summarize(
        tuner.oracle,
        project_dir=Path(tuner.project_dir),
        fields=[hp.name for hp in tuner.oracle.get_space().space if hp.name in config_fields],
        config_class=type(config),
        tuner=options.tuner,
        epochs=epochs,
        stopped=stopped,
    )
    best = report.write(directory, summary, recipe.name)
    report_path = directory / "tuning_report.md"
    print(f"\n{summary.table()}\n\n{summary.counts_text()}; report: {report_path}")
    if best is None:
        raise TuningFailed(
            f"No trial completed ({summary.counts_text()}), so no best hyperparameters were "
            f"written. The errors are in the table above and in {report_path}. Fix the cause, "
            "then run again with --overwrite."
        )
    return SearchResult(directory, summary, best)
