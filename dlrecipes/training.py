"""The thin training loop every recipe shares: compile, fit with callbacks, evaluate, report."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from dlrecipes import callbacks as cb
from dlrecipes import cluster, optimizers, reports, runtime
from dlrecipes.config import RecipeConfig
from dlrecipes.contract import Recipe
from dlrecipes.data import Splits
from dlrecipes.errors import (
    CheckpointError,
    ConfigError,
    DatasetError,
    RunDirError,
    TrainingDiverged,
)


@dataclasses.dataclass
class RunResult:
    run_dir: Path
    metrics: dict[str, Any]


def compile_model(model: keras.Model, config: RecipeConfig, steps_per_epoch: int) -> keras.Model:
    """Compiles for integer-label classification with the config's optimizer, schedule and XLA."""
    model.compile(
        optimizer=optimizers.optimizer(config, steps_per_epoch),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
        jit_compile=runtime.use_jit(config.jit),
    )
    return model


def count_batches(ds: tf.data.Dataset) -> int:
    """Batches per epoch: the cardinality when tf.data knows it, else one pass to count."""
    n = int(ds.cardinality())
    if n >= 0:
        return n
    return int(ds.reduce(np.int64(0), lambda count, _: count + 1))


def prepare_run_dir(run_dir: Path, resume: bool) -> None:
    """Creates `run_dir`, refusing to write over a finished or foreign run."""
    if resume:
        if not (run_dir / "config.json").exists():
            raise RunDirError(
                f"--resume: {run_dir} holds no config.json, so there is no run to resume. "
                "Drop --resume to start a new run there."
            )
        if (run_dir / "metrics.json").exists() and not (run_dir / "backup").exists():
            raise RunDirError(
                f"--resume: the run in {run_dir} finished already (metrics.json is written and "
                "no backup is left). Start a new --run-dir to train again."
            )
        return
    # `logs/` alone is no run: `dlrecipes.train_launch` writes the processes' logs there first.
    if run_dir.exists() and any(p.name != "logs" for p in run_dir.iterdir()):
        raise RunDirError(
            f"{run_dir} already holds a run. Pass --resume to continue it, or choose another "
            "--run-dir; nothing was overwritten."
        )
    run_dir.mkdir(parents=True, exist_ok=True)


def load_model(path: str | Path) -> keras.Model:
    """Loads a `.keras` model in safe mode (no arbitrary code); a clear error if unreadable."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(
            f"No model at {path}. Train one first, or pass the path of a model.keras."
        )
    try:
        return keras.saving.load_model(path, safe_mode=True)
    except Exception as err:  # noqa: BLE001 - a half-written or foreign file raises many kinds
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
    run_dir: Path,
    *,
    resume: bool = False,
    export: bool = False,
    extra_callbacks: list[keras.callbacks.Callback] | None = None,
) -> RunResult:
    """Trains `recipe` with `config` into `run_dir`: fit, pick the best epoch, score, report.

    A run killed at any point continues from its last backup with `resume=True`.
    `extra_callbacks` run after the standard ones (benchmarks use them to time epochs).
    Under `--strategy multi_host` only the chief writes `run_dir`; every other process trains in
    step with it, writing into a scratch directory, and returns a result without metrics.
    """
    run_dir = Path(run_dir)
    task = cluster.task(config.strategy)
    if task is not None and not task.is_chief:
        run_dir = cluster.scratch_dir(task, run_dir, resume)
    prepare_run_dir(run_dir, resume)
    runtime.seed_everything(config.seed, config.deterministic)
    precision = runtime.set_precision(config.precision)
    strategy = runtime.strategy(config.strategy)
    with cluster.chief_first(strategy, task):
        splits = recipe.load_data(config)
    if task is not None:
        splits = splits.map(lambda ds, _: cluster.shard_by_data(ds))
    steps = count_batches(splits.train)
    if steps == 0:
        raise DatasetError(f"The training split of {config.dataset} is empty.")
    with strategy.scope():
        model = compile_model(recipe.build_model(config, splits.info), config, steps)
    if not resume:
        config.save(run_dir / "config.json")
    xla = "on" if runtime.use_jit(config.jit) else "off"
    print(
        f"Training {recipe.name} on {config.dataset}: {steps} steps/epoch, {config.epochs} epochs, "
        f"{strategy.num_replicas_in_sync} replica(s), XLA {xla}, precision {precision}."
    )
    callbacks, guard = cb.standard(run_dir, config)
    backup = next(c for c in callbacks if isinstance(c, cb.BackupAndRestore))
    train_data, steps_per_epoch = backup.resumable(splits.train, steps)
    try:
        model.fit(
            train_data,
            steps_per_epoch=steps_per_epoch,
            validation_data=splits.validation,
            epochs=config.epochs,
            callbacks=callbacks + (extra_callbacks or []),
            verbose=2,
        )
    except (OSError, ValueError) as err:
        if "backup" in str(err) or "weights.h5" in str(err):
            raise CheckpointError(
                f"The backup in {run_dir / 'backup'} cannot be restored ({err}). Move that folder "
                "away to restart this run from epoch 1; the rest of the run directory is kept."
            ) from err
        raise
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
    return finish(recipe, config, run_dir, splits, export=export)


def finish(
    recipe: Recipe, config: RecipeConfig, run_dir: Path, splits: Splits, *, export: bool = False
) -> RunResult:
    """Scores the best checkpoint on the test split and writes metrics, plots and the report."""
    model = load_model(run_dir / "model.keras")
    metrics, y_true, y_prob = evaluate_model(model, splits)
    history = cb.read_history(run_dir / "history.csv")
    metrics["best_val_accuracy"] = max(float(r[cb.MONITOR]) for r in history) if history else None
    metrics["epochs_run"] = len(history)
    reports.write_json(run_dir / "metrics.json", metrics)
    reports.plot_curves(run_dir / "history.csv", run_dir / "curves.png")
    reports.plot_confusion(
        metrics["confusion_matrix"], splits.info.class_names, run_dir / "confusion.png"
    )
    extra = recipe.report_extra(splits, y_true, y_prob) if recipe.report_extra else ""
    reports.write_report(
        run_dir, f"{recipe.name}: {config.dataset}", config.to_dict(), metrics, extra
    )
    if export:
        export_dir = run_dir / "saved_model"
        shutil.rmtree(export_dir, ignore_errors=True)
        model.export(str(export_dir), verbose=False)
    return RunResult(run_dir, metrics)


def cross_validate(
    recipe: Recipe, config: RecipeConfig, folds: int, run_dir: Path, *, resume: bool = False
) -> dict[str, Any]:
    """K-fold cross-validation: one full run per fold in `run_dir/fold-i`, then mean and spread.

    Folds already finished (their metrics.json exists) are kept when resuming.
    """
    if folds < 2:
        raise ConfigError(f"--folds must be at least 2; got {folds}.")
    if cluster.task(config.strategy) is not None:
        raise ConfigError(
            "--folds trains the folds one after another on one host; drop --strategy multi_host "
            "(and TF_CONFIG), or train each fold as its own multi-host run."
        )
    run_dir = Path(run_dir)
    prepare_run_dir(run_dir, resume)
    if not resume:
        config.save(run_dir / "config.json")
    per_fold = []
    for i in range(folds):
        fold_dir = run_dir / f"fold-{i + 1}"
        metrics_path = fold_dir / "metrics.json"
        if metrics_path.exists():
            metrics = json.loads(metrics_path.read_text())
        else:
            fold_config = dataclasses.replace(config, fold=(i, folds))
            metrics = train(recipe, fold_config, fold_dir, resume=fold_dir.exists()).metrics
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
    return summary
