"""K-fold cross-validation: a recipe's own `train`, once per fold, then mean and spread.

runs/<recipe>/<id>/  config.json  folds.json  report.md
                     fold-1/  fold-2/  ...   (a run directory each)
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from dlrecipes.config import RecipeConfig
from dlrecipes.errors import ConfigError
from dlrecipes.multihost import cluster
from dlrecipes.reports import write_json
from dlrecipes.run import RunResult, finished_metrics, parent_run


def cross_validate(
    train: Callable[..., RunResult],
    recipe: str,
    config: RecipeConfig,
    folds: int,
    run_dir: Path | None = None,
    *,
    resume: bool = False,
    export: Sequence[str] = (),
) -> RunResult:
    """Runs `train(config_of_fold, fold_dir, resume=..., export=...)` for every fold into
    `run_dir/fold-i`, then writes the mean and spread (`folds.json`, `report.md`).

    Folds already finished (their metrics.json exists) are kept when resuming; a fold stopped at
    any point, even before it wrote its config.json, goes on where it stopped. With `export`,
    every fold writes its own exports (formats from `dlrecipes.exporting.FORMATS`).
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
                print(f"== fold {i + 1} of {folds}: {fold_dir}", flush=True)
                fold_config = dataclasses.replace(config, fold=(i, folds))
                resume_fold = (fold_dir / "config.json").exists()
                metrics = train(fold_config, fold_dir, resume=resume_fold, export=export).metrics
            per_fold.append(
                {
                    "fold": i + 1,
                    "val_accuracy": metrics["best_val_accuracy"],
                    "test_accuracy": metrics["accuracy"],
                    **({"baseline": metrics["baseline"]} if "baseline" in metrics else {}),
                }
            )
    summary = summarize(per_fold)
    write_json(run_dir / "folds.json", summary)
    (run_dir / "report.md").write_text(report(recipe, config, summary))
    return RunResult(run_dir, summary)


def summarize(per_fold: list[dict[str, Any]]) -> dict[str, Any]:
    """Mean and standard deviation over folds of validation and test accuracy; for text runs,
    the baseline's mean over folds (`baseline`, shaped like a run's `metrics["baseline"]`)."""
    val = np.array([f["val_accuracy"] for f in per_fold])
    test = np.array([f["test_accuracy"] for f in per_fold])
    summary = {
        "folds": len(per_fold),
        "per_fold": per_fold,
        "val_accuracy_mean": float(val.mean()),
        "val_accuracy_std": float(val.std(ddof=1)),
        "test_accuracy_mean": float(test.mean()),
        "test_accuracy_std": float(test.std(ddof=1)),
    }
    if per_fold and all("baseline" in f for f in per_fold):
        accuracy = float(np.mean([f["baseline"]["accuracy"] for f in per_fold]))
        summary["baseline"] = {
            "name": per_fold[0]["baseline"]["name"],
            "accuracy": accuracy,
            "detail": f"mean over {len(per_fold)} folds",
            "difference_points": 100 * (summary["test_accuracy_mean"] - accuracy),
        }
    return summary


def summary_line(summary: dict[str, Any]) -> str:
    """One line for the console: validation accuracy's mean and spread, and test's mean."""
    return (
        f"{summary['folds']}-fold validation accuracy: {summary['val_accuracy_mean']:.4f} "
        f"± {summary['val_accuracy_std']:.4f} (test accuracy, mean over folds: "
        f"{summary['test_accuracy_mean']:.4f} ± {summary['test_accuracy_std']:.4f})"
    )


def report(recipe: str, config: RecipeConfig, summary: dict[str, Any]) -> str:
    """The cross-validation's `report.md`: a row per fold, then mean ± standard deviation."""
    lines = [
        f"# {recipe}: {summary['folds']}-fold cross-validation on {config.dataset}",
        "",
        "Each fold trains on the other folds of train + validation and validates on its own;",
        "every fold is scored on the same test split. Each fold's run is in `fold-<i>/`.",
        "",
        "| fold | validation accuracy | test accuracy |",
        "|---|---|---|",
    ]
    for f in summary["per_fold"]:
        lines.append(f"| {f['fold']} | {f['val_accuracy']:.4f} | {f['test_accuracy']:.4f} |")
    lines.append(
        f"| **mean ± std** | **{summary['val_accuracy_mean']:.4f} ± "
        f"{summary['val_accuracy_std']:.4f}** | **{summary['test_accuracy_mean']:.4f} ± "
        f"{summary['test_accuracy_std']:.4f}** |"
    )
    if "baseline" in summary:
        base = summary["baseline"]
        lines += [
            "",
            f"Baseline, {base['name']} on each fold's training split ({base['detail']}): "
            f"{base['accuracy']:.4f} on test, {base['difference_points']:+.2f} points to the "
            "model.",
        ]
    return "\n".join(lines) + "\n"
