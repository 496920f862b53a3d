"""Tuning: Hyperband on a budget against the hand-set defaults, and one worker against two.

    python benchmarks/bench_tuning.py        # ~20 min on 2 CPU cores

1. Hyperband (`max_epochs` 4, factor 3: 26 epochs in all, under the 30-epoch budget) on the image
   recipe. Its best hyperparameters and the recipe's defaults are then each trained from scratch by
   `train` for the same 4 epochs, and their best validation accuracies are compared.
2. The same small random search (tiny models, 4 trials of 2 epochs) run by a chief with one worker
   and by a chief with two workers, through `dlrecipes.tuning.launch`; wall time of each.
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import REPO, load_recipe, write_result

from dlrecipes import tuning

RECIPE = REPO / "recipes" / "image_classification" / "recipe.py"
HYPERBAND_MAX_EPOCHS = 4
EPOCH_BUDGET = 30
WORKER_SEARCH = ["--tiny", "--tuner", "random", "--max-trials", "4", "--max-epochs", "2"]


def hyperband_vs_defaults(work: Path) -> list[dict]:
    module = load_recipe("image_classification")
    config = dataclasses.replace(module.Config(), epochs=HYPERBAND_MAX_EPOCHS)
    options = tuning.SearchOptions(
        tuner="hyperband",
        max_epochs=HYPERBAND_MAX_EPOCHS,
        directory=work / "hyperband",
        overwrite=True,
    )
    start = time.perf_counter()
    result = module.tune(config, options)  # the recipe's own search space
    search_seconds = time.perf_counter() - start
    rows = result.summary.rows
    epochs_trained = sum(_trained_epochs(r, rows) for r in rows)
    assert epochs_trained <= EPOCH_BUDGET, epochs_trained
    best = json.loads(result.best_hparams_path.read_text())
    # The best trial's whole config, trained from scratch for the longest trial's epochs.
    best_config = dataclasses.replace(module.Config.from_dict(best), epochs=HYPERBAND_MAX_EPOCHS)
    out = [
        {
            "run": f"hyperband search ({len(rows)} trials, {epochs_trained} epochs in all)",
            "epochs": HYPERBAND_MAX_EPOCHS,
            "val_accuracy": result.summary.best.score,
            "seconds": search_seconds,
            "hparams": json.dumps(result.summary.best.values),
        }
    ]
    for name, cfg in (("defaults", config), ("best hyperparameters", best_config)):
        start = time.perf_counter()
        run = module.train(cfg, work / name)
        out.append(
            {
                "run": f"{name}, trained by train",
                "epochs": cfg.epochs,
                "val_accuracy": run.metrics["best_val_accuracy"],
                "seconds": time.perf_counter() - start,
                "hparams": "",
            }
        )
    return out


def _trained_epochs(row, rows) -> int:
    """Epochs a Hyperband trial trained itself (a continued trial starts where its parent ended)."""
    parent = next((r for r in rows if r.trial_id == row.continues), None)
    return row.epochs - (parent.epochs if parent else 0)


def workers_wall_time(work: Path) -> list[dict]:
    out = []
    for workers in (1, 2):
        directory = work / f"workers-{workers}"
        command = [
            sys.executable, "-m", "dlrecipes.tuning.launch", "--workers", str(workers), "--",
            sys.executable, str(RECIPE), "tune", *WORKER_SEARCH,
            "--directory", str(directory), "--overwrite",
        ]  # fmt: skip
        start = time.perf_counter()
        proc = subprocess.run(command, cwd=REPO, capture_output=True, text=True)
        seconds = time.perf_counter() - start
        if proc.returncode != 0:
            raise RuntimeError(f"{workers} worker(s) failed:\n{proc.stdout[-3000:]}")
        statuses = [
            json.loads(f.read_text())["status"]
            for f in (directory / "image_classification").glob("trial_*/trial.json")
        ]
        out.append(
            {
                "run": f"random search, chief + {workers} worker(s)",
                "trials_completed": statuses.count("COMPLETED"),
                "seconds": seconds,
            }
        )
    out.append(
        {
            "run": "ratio 1 worker / 2 workers",
            "trials_completed": None,
            "seconds": out[0]["seconds"] / out[1]["seconds"],
        }
    )
    return out


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        workers = workers_wall_time(work)
        hyperband = hyperband_vs_defaults(work)
    print(json.dumps(hyperband + workers, indent=2))
    write_result(
        "tuning_hyperband",
        "Hyperband (26 epochs in all) against the hand-set defaults, image recipe",
        hyperband,
        notes=(
            "Validation accuracy on the 500 held-out digits of `mnist_sample`. Both `train` rows "
            f"train from scratch for {HYPERBAND_MAX_EPOCHS} epochs, the longest trial of the "
            "search; the defaults are also the search's first trial."
        ),
        data=("mnist_sample",),
    )
    write_result(
        "tuning_workers",
        "One tuning worker against two, same random search (tiny models), one 2-core host",
        workers,
        notes=(
            "Wall time of `python -m dlrecipes.tuning.launch --workers N -- ... tune "
            f"{' '.join(WORKER_SEARCH)}`, chief start and its 20 s exit check included. "
            "Both workers share the same 2 cores, so the gain comes only from overlapping "
            "process start-up, graph tracing and input work, not from more compute."
        ),
        data=("mnist_sample",),
    )


if __name__ == "__main__":
    main()
