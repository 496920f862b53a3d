"""The thin training loop every recipe shares: compile, fit with callbacks, evaluate, report."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import shutil
import warnings
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from dlrecipes import callbacks as cb
from dlrecipes import optimizers, phases, reports, runtime
from dlrecipes.config import RecipeConfig
from dlrecipes.contract import Recipe
from dlrecipes.data import Splits, no_training_split
from dlrecipes.errors import (
    CheckpointError,
    ConfigError,
    DatasetError,
    RecipeError,
    RunDirError,
    TrainingDiverged,
)
from dlrecipes.multihost import cluster
from dlrecipes.wording import count


@dataclasses.dataclass
class RunResult:
    run_dir: Path
    metrics: dict[str, Any]


def compile_model(
    model: keras.Model,
    config: RecipeConfig,
    steps_per_epoch: int,
    loss: Any = "sparse_categorical_crossentropy",
    metrics: list[Any] | None = None,
) -> keras.Model:
    """Compiles for integer-label classification (or the given `loss` and `metrics`, named
    `accuracy`) with the config's optimizer, schedule and XLA.

    Call it inside the strategy's scope: XLA follows `runtime.use_jit` for that many replicas.
    Keras runs a model holding layers XLA cannot compile (string preprocessing) without XLA;
    `model.jit_compile` says what it runs.
    """
    jit = runtime.use_jit(config.jit, tf.distribute.get_strategy().num_replicas_in_sync)
    if jit:
        with warnings.catch_warnings():
            # Keras' own check, which warns when it says no; the training log says so instead.
            warnings.filterwarnings("ignore", message="Model doesn't support `jit_compile=True`")
            model.jit_compile = True
        jit = model.jit_compile  # saved with the model: a reload must not warn either
    model.compile(
        optimizer=optimizers.optimizer(config, steps_per_epoch),
        loss=loss,
        metrics=metrics or ["accuracy"],
        jit_compile=jit,
    )
    return model


def count_batches(ds: tf.data.Dataset) -> int:
    """Batches per epoch: the cardinality when tf.data knows it, else one pass to count."""
    n = int(ds.cardinality())
    if n >= 0:
        return n
    return int(ds.reduce(np.int64(0), lambda count, _: count + 1))


def check_run_dir(run_dir: Path | None, resume: bool) -> None:
    """Refuses a run directory that cannot be used, before anything is loaded or written."""
    if resume:
        if run_dir is None:
            raise RunDirError(
                "--resume continues a run in its directory: pass it with --run-dir (the last "
                "line the run printed, or the one named when it was interrupted)."
            )
        if not (run_dir / "config.json").exists():
            raise RunDirError(
                f"--resume: {run_dir} holds no config.json, so there is no run to resume. "
                "Drop --resume to start a new run there."
            )
    # `logs/` alone is no run: `dlrecipes.multihost.launch` writes the processes' logs there first.
    elif (
        run_dir is not None
        and run_dir.exists()
        and any(p.name != "logs" for p in run_dir.iterdir())
    ):
        raise RunDirError(
            f"{run_dir} already holds a run. Pass --resume to continue it, or choose another "
            "--run-dir; nothing was overwritten."
        )


def claim_run_dir(run_dir: Path | None, recipe: str, config: RecipeConfig) -> Path:
    """Creates the run directory and its config.json, which names the recipe.

    `run_dir=None` makes a new `runs/<recipe>/<timestamp>`. config.json is linked into place
    complete and only if no other run wrote one first, so two runs never share a directory.
    """
    if run_dir is None:
        run_dir = runtime.new_run_dir("runs", recipe)
    run_dir.mkdir(parents=True, exist_ok=True)
    tmp = run_dir / f".config.json.{os.getpid()}"
    config.save(tmp, recipe=recipe)
    try:
        os.link(tmp, run_dir / "config.json")
    except FileExistsError as err:
        raise RunDirError(
            f"{run_dir} was taken by another run that started at the same time; choose another "
            "--run-dir."
        ) from err
    finally:
        tmp.unlink()
    return run_dir


def finished_metrics(run_dir: Path) -> dict[str, Any] | None:
    """The metrics of a finished run (metrics.json is written last), or None.

    A backup left behind by a run killed just after writing metrics.json is deleted.
    """
    if not (run_dir / "metrics.json").exists():
        return None
    shutil.rmtree(run_dir / "backup", ignore_errors=True)
    return json.loads((run_dir / "metrics.json").read_text())


class Interrupted(KeyboardInterrupt):
    """Ctrl-C during a run whose directory exists: `run_dir` is where `--resume` continues."""

    def __init__(self, run_dir: Path) -> None:
        super().__init__(str(run_dir))
        self.run_dir = run_dir


@contextlib.contextmanager
def interruptible(run_dir: Path) -> Iterator[None]:
    """Turns Ctrl-C into `Interrupted(run_dir)`, so the caller can say how to resume."""
    try:
        yield
    except KeyboardInterrupt as err:
        raise Interrupted(run_dir) from err


@contextlib.contextmanager
def parent_run(
    run_dir: Path | None, recipe: Recipe, config: RecipeConfig, *, resume: bool
) -> Iterator[Path]:
    """The directory of a run made of other runs (`--folds`, a few-label study), claimed unless
    resumed (`run_dir` None: a new `runs/<recipe>/<timestamp>`). Ctrl-C inside raises
    `Interrupted` naming it; a refusal before anything in it was written leaves nothing."""
    run_dir = None if run_dir is None else Path(run_dir)
    check_run_dir(run_dir, resume)
    if not resume:
        run_dir = claim_run_dir(run_dir, recipe.name, config)
    try:
        with interruptible(run_dir):
            yield run_dir
    except RecipeError:
        if not resume and [p.name for p in run_dir.iterdir()] == ["config.json"]:
            shutil.rmtree(run_dir)  # refused before its first run trained: leave nothing
        raise


def load_model(path: str | Path) -> keras.Model:
    """Loads a `.keras` model in safe mode (no arbitrary code); a clear error if unreadable."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(
            f"No model at {path}. Train one first, or pass the path of a model.keras."
        )
    try:
        return keras.saving.load_model(path, safe_mode=True)
    # What Keras raises for a file that is no .keras zip (ValueError), a zip without a model
    # (KeyError), a class it cannot find (TypeError), truncated weights (OSError). Anything
    # else is a bug and keeps its traceback.
    except (ValueError, KeyError, TypeError, OSError, zipfile.BadZipFile) as err:
        raise CheckpointError(
            f"{path} is not a readable Keras model ({type(err).__name__}: {str(err)[:200]}). "
            "It may be corrupt or half-written: retrain, or point at another model.keras."
        ) from err


def predict(model: keras.Model, ds: tf.data.Dataset) -> tuple[np.ndarray, np.ndarray]:
    """Labels and predicted class probabilities over a batched `(input, label)` dataset."""
    y_true = np.concatenate([y for _, y in ds.as_numpy_iterator()])
    y_prob = model.predict(ds.map(lambda x, y: x), verbose=0)
    return y_true, y_prob


def evaluate_model(
    model: keras.Model, splits: Splits
) -> tuple[dict[str, Any], np.ndarray, np.ndarray]:
    """Test-split metrics of `model`, with the labels and probabilities they came from."""
    expected = tuple(model.input_shape[1:])
    given = tuple(splits.info.input_shape)
    if len(expected) != len(given) or any(
        e is not None and g is not None and e != g for e, g in zip(expected, given, strict=False)
    ):
        raise DatasetError(
            f"The model takes inputs of shape {expected} but {splits.info.name} gives {given}. "
            "Evaluate on the kind of data the model was trained on, or resize it (--image-size)."
        )
    y_true, y_prob = predict(model, splits.test)
    metrics = reports.classification_metrics(y_true, y_prob.argmax(-1), splits.info.class_names)
    return metrics, y_true, y_prob


def train(
    recipe: Recipe,
    config: RecipeConfig,
    run_dir: Path | None = None,
    *,
    resume: bool = False,
    export: bool = False,
    extra_callbacks: list[keras.callbacks.Callback] | None = None,
) -> RunResult:
    """Trains `recipe` with `config` into `run_dir`: fit, pick the best epoch, score, report.

    The run directory (`None`: a new `runs/<recipe>/<timestamp>`) is created only once the data
    is loaded and the model is built, so a run refused before training leaves nothing behind.
    A run killed at any point continues from its last backup with `resume=True`; one killed
    after training only writes its report. Ctrl-C raises `Interrupted` naming the directory.
    `extra_callbacks` run after the standard ones (benchmarks use them to time epochs).
    Under `--strategy multi_host` only the chief writes `run_dir`; every other process trains in
    step with it, writing into a scratch directory, and returns a result without metrics.
    """
    run_dir = None if run_dir is None else Path(run_dir)
    task = cluster.task(config.strategy)
    if task is not None:
        if run_dir is None:
            raise ConfigError(
                "A multi-host run needs --run-dir: every process names the same directory, and "
                "the chief writes it."
            )
        if not task.is_chief:
            run_dir = cluster.scratch_dir(task, run_dir, resume)
    check_run_dir(run_dir, resume)
    if resume and (run_dir / "metrics.json").exists():
        if not (run_dir / "backup").exists():
            raise RunDirError(
                f"--resume: the run in {run_dir} finished already (metrics.json is written). "
                "Start a new --run-dir to train again."
            )
        return RunResult(run_dir, finished_metrics(run_dir))  # killed just before cleaning up
    runtime.seed_everything(config.seed, config.deterministic)
    precision = runtime.set_precision(config.precision)
    strategy = runtime.strategy(config.strategy)
    runtime.use_jit(config.jit, strategy.num_replicas_in_sync)  # refuses now, before the data
    with cluster.chief_first(strategy, task):  # TFDS preparation and teacher predictions, once
        splits = recipe.load_data(config)
        # With a teacher, the model fits its soft targets over a transfer set
        # (dlrecipes.distillation).
        distill = recipe.distill(config, splits) if recipe.distill else None
    epochs = sum(p.config.epochs for p in recipe.phases(config)) if recipe.phases else config.epochs
    if resume and cb.training_finished(run_dir, epochs):
        if task is not None and not task.is_chief:
            return RunResult(run_dir, {})  # the chief writes the report
        print(f"Training in {run_dir} had finished; writing its report.")
        with interruptible(run_dir):
            return finish(recipe, config, run_dir, splits, export=export, distill=distill)
    fit_data = (distill.train, distill.validation) if distill else (splits.train, splits.validation)
    if task is not None:
        fit_data = tuple(cluster.shard_by_data(ds) for ds in fit_data)
    steps = count_batches(fit_data[0])
    if steps == 0:
        raise no_training_split(splits.info)
    with strategy.scope():
        model = compile_model(
            recipe.build_model(config, splits.info),
            config,
            steps,
            **(distill.compile_args() if distill else {}),
        )
    if not resume:
        run_dir = claim_run_dir(run_dir, recipe.name, config)
    xla = "on" if model.jit_compile else "off"  # what Keras runs: off for string models too
    print(
        f"Training {recipe.name} on {config.dataset}: {count(steps, 'step')}/epoch, "
        f"{count(epochs, 'epoch')}, {count(strategy.num_replicas_in_sync, 'replica')}, "
        f"XLA {xla}, precision {precision}."
    )
    with interruptible(run_dir):
        callbacks, guard = cb.standard(run_dir, config)
        backup = next(c for c in callbacks if isinstance(c, cb.RunCheckpoints))
        train_data, steps_per_epoch = backup.resumable(fit_data[0], steps)
        try:
            callbacks = [*callbacks, cb.EpochProgress(epochs), *(extra_callbacks or [])]
            # verbose=0 and EpochProgress: one line an epoch, a bar on a terminal.
            # shuffle=False: the tf.data pipeline shuffles, and Keras warns about shuffle=True.
            fit_args = {"steps_per_epoch": steps_per_epoch, "verbose": 0, "shuffle": False}
            if recipe.phases is None:
                model.fit(
                    train_data,
                    validation_data=fit_data[1],
                    epochs=config.epochs,
                    callbacks=callbacks,
                    **fit_args,
                )
            else:  # several fits, each phase with its own trainable layers and optimizer
                phases.fit(
                    model,
                    recipe.phases(config),
                    train_data,
                    fit_data[1],
                    steps=steps,
                    compile=compile_model,
                    callbacks=callbacks,
                    **fit_args,
                )
        except (tf.errors.UnavailableError, tf.errors.AbortedError) as err:
            if task is None:
                raise
            raise cluster.lost(err) from err
        if guard.message:
            raise TrainingDiverged(guard.message)
        if task is not None:
            print(f"Weights of {task}: sha256 {cluster.weights_digest(model)}")
            if not task.is_chief:
                return RunResult(run_dir, {})
        return finish(recipe, config, run_dir, splits, export=export, distill=distill)


def finish(
    recipe: Recipe,
    config: RecipeConfig,
    run_dir: Path,
    splits: Splits,
    *,
    export: bool = False,
    distill: Any = None,
) -> RunResult:
    """Scores the best checkpoint on the test split and writes plots, the report, the export and,
    last, metrics.json; then deletes the backup. Killed before metrics.json is in place, the run
    resumes here.

    After distillation (`distill`, a `dlrecipes.distillation.Distillation`) the model file is
    made an ordinary model first (again, on a resume: it is idempotent), and the teacher is
    compared with it.
    """
    if distill:
        distill.finalize(run_dir / "model.keras")
    model = load_model(run_dir / "model.keras")
    metrics, y_true, y_prob = evaluate_model(model, splits)
    if distill:
        metrics["distillation"] = distill.compare(model, splits, y_prob)
    history = cb.read_history(run_dir / "history.csv")
    metrics["best_val_accuracy"] = max(float(r[cb.MONITOR]) for r in history) if history else None
    metrics["epochs_run"] = len(history)
    reports.plot_curves(run_dir / "history.csv", run_dir / "curves.png")
    reports.plot_confusion(
        metrics["confusion_matrix"], splits.info.class_names, run_dir / "confusion.png"
    )
    extra = recipe.report_extra(splits, y_true, y_prob) if recipe.report_extra else ""
    if distill:
        extra = "\n\n".join(filter(None, [distill.report(metrics["distillation"]), extra]))
    reports.write_report(
        run_dir, f"{recipe.name}: {config.dataset}", config.to_dict(), metrics, extra
    )
    if export:
        export_dir = run_dir / "saved_model"
        shutil.rmtree(export_dir, ignore_errors=True)
        model.export(str(export_dir), verbose=False)
    reports.write_json(run_dir / "metrics.json", metrics)
    shutil.rmtree(run_dir / "backup", ignore_errors=True)
    return RunResult(run_dir, metrics)


def cross_validate(
    recipe: Recipe,
    config: RecipeConfig,
    folds: int,
    run_dir: Path | None = None,
    *,
    resume: bool = False,
    export: bool = False,
) -> RunResult:
    """K-fold cross-validation: one full run per fold in `run_dir/fold-i`, then mean and spread
    (the result's `metrics`, also written to `folds.json`).

    Folds already finished (their metrics.json exists) are kept when resuming; a fold killed at
    any point, even before it wrote its config.json, goes on where it stopped. With `export`,
    every fold writes its own SavedModel (`fold-i/saved_model`).
    """
    if folds < 2:
        raise ConfigError(f"--folds must be at least 2; got {folds}.")
    if cluster.task(config.strategy) is not None:
        raise ConfigError(
            "--folds trains the folds one after another on one host; drop --strategy multi_host "
            "(and TF_CONFIG), or train each fold as its own multi-host run."
        )
    per_fold = []
    with parent_run(run_dir, recipe, config, resume=resume) as run_dir:
        for i in range(folds):
            fold_dir = run_dir / f"fold-{i + 1}"
            metrics = finished_metrics(fold_dir)
            if metrics is None:
                fold_config = dataclasses.replace(config, fold=(i, folds))
                resume_fold = (fold_dir / "config.json").exists()
                result = train(recipe, fold_config, fold_dir, resume=resume_fold, export=export)
                metrics = result.metrics
            per_fold.append(
                {
                    "fold": i + 1,
                    "val_accuracy": metrics["best_val_accuracy"],
                    "test_accuracy": metrics["accuracy"],
                }
            )
    val = np.array([f["val_accuracy"] for f in per_fold])
    summary = {
        "folds": folds,
        "per_fold": per_fold,
        "val_accuracy_mean": float(val.mean()),
        "val_accuracy_std": float(val.std(ddof=1)),
        "test_accuracy_mean": float(np.mean([f["test_accuracy"] for f in per_fold])),
    }
    reports.write_json(run_dir / "folds.json", summary)
    return RunResult(run_dir, summary)
