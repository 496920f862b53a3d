"""Image recipe trained by two processes on this host (MultiWorkerMirroredStrategy) vs by one.

Both runs use the recipe's defaults and go through `dlrecipes.multihost.launch` (`--workers 1` is a
plain single-process run), one after the other. Reported: the best checkpoint's accuracy on the
official MNIST test split (10,000 digits neither saw), whether every process of the two-process
run ended with the same weights (the SHA-256 each prints), training throughput from the seconds
of each epoch in the run's history.csv (validation included) over the chief's steps an epoch (the
first epoch, which traces and compiles, left out), and each run's wall time from start to exit.
"""

from __future__ import annotations

import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from common import REPO, load_recipe, mnist_test, write_result

import dlrecipes
from dlrecipes import callbacks

RECIPE = REPO / "recipes" / "image_classification" / "recipe.py"
# The chief's first line: "Training image_classification on mnist_sample: 32 steps/epoch, ...".
STEPS = re.compile(r"\[worker0\] Training \S+ on \S+: (\d+) steps?/epoch")
DIGEST = re.compile(r"\[(worker\d+)\] Weights of process \d+ of \d+ \(\S+\): sha256 (\w+)")


def run(workers: int, run_dir: Path) -> str:
    """Trains the image recipe's defaults as `workers` processes; returns the launcher's output."""
    command = [
        sys.executable, "-m", "dlrecipes.multihost.launch", "--workers", str(workers), "--",
        sys.executable, str(RECIPE), "train", "--run-dir", str(run_dir),
    ]  # fmt: skip
    proc = subprocess.run(command, cwd=REPO, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"{workers} process(es) failed:\n{proc.stdout[-5000:]}")
    return proc.stdout


def seconds_per_step(out: str, run_dir: Path) -> float:
    """Mean seconds a training step took, over every epoch after the first: the seconds of the
    run's epochs (history.csv, validation included) over the chief's steps an epoch."""
    steps = int(STEPS.search(out)[1])
    history = callbacks.read_history(run_dir / "history.csv")
    return float(np.mean([float(row[callbacks.SECONDS]) for row in history[1:]])) / steps


def main() -> None:
    config = load_recipe("image_classification").Config()
    test_x, test_y = mnist_test()
    rows, digests = [], {}
    with tempfile.TemporaryDirectory() as tmp:
        for workers in (1, 2):
            run_dir = Path(tmp) / f"workers-{workers}"
            start = time.perf_counter()
            out = run(workers, run_dir)
            wall = time.perf_counter() - start
            model = dlrecipes.load_model(run_dir / "model.keras")
            accuracy = float(
                (model.predict(test_x, batch_size=1000, verbose=0).argmax(-1) == test_y).mean()
            )
            step = seconds_per_step(out, run_dir)
            digests[workers] = dict(DIGEST.findall(out))
            rows.append(
                {
                    "processes": workers,
                    "epochs": config.epochs,
                    "global_batch": config.batch_size,
                    "s_per_step": round(step, 4),
                    "examples_per_s": round(config.batch_size / step, 1),
                    "wall_s": round(wall),
                    "mnist_test_acc": round(accuracy, 4),
                    "same_weights_everywhere": len(set(digests[workers].values())) == 1
                    if workers > 1
                    else None,
                }
            )
    one, two = rows
    ratio = two["examples_per_s"] / one["examples_per_s"]
    gap = abs(two["mnist_test_acc"] - one["mnist_test_acc"]) * 100
    notes = (
        f"Two processes reach {two['mnist_test_acc']:.4f} on the official MNIST test split, one "
        f"reaches {one['mnist_test_acc']:.4f} ({gap:.2f} points apart; target: within 0.5). "
        f"Final weights' SHA-256 per process: {digests[2]}. Throughput, two processes vs one: "
        f"{ratio:.2f}x. Both processes share this host's cores (one intra-op thread each, against "
        "every core for the single process), each runs the whole input pipeline and keeps half of "
        "every global batch, and every step adds an all-reduce of the gradients and of the "
        "batch-norm statistics over gRPC; a second host adds cores, which is what multi-host "
        "training is for."
    )
    path = write_result(
        "multihost",
        "Image recipe, two processes (multi_host) vs one",
        rows,
        notes,
        data=("mnist_sample",),
    )
    print(path.read_text())


if __name__ == "__main__":
    main()
