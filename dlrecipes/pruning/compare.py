"""Pruned models side by side: accuracy, size, compute and speed in one row each, a plot, and
the report's sections."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf
from matplotlib.figure import Figure

from dlrecipes import litert
from dlrecipes.data import Splits
from dlrecipes.pruning import measure, stats
from dlrecipes.pruning.stats import sparsity_report

# The comparison's columns, in the report and on the console.
COLUMNS = [
    "model",
    "test_accuracy",
    "points_vs_dense",
    "params",
    "nonzeros",
    "mflops",
    "sparse_mflops",
    "gzip_kb",
    "size_vs_dense",
    "latency_ms",
    "speedup_b1",
    "throughput",
    "speedup_b256",
    "tflite_latency_ms",
    "tflite_speedup_b1",
]


def arrays(ds: tf.data.Dataset) -> tuple[np.ndarray, np.ndarray]:
    """A batched `(input, label)` dataset as two arrays."""
    xs, ys = zip(*ds.as_numpy_iterator(), strict=True)
    return np.concatenate(xs), np.concatenate(ys)


def side_by_side(
    models: Mapping[str, keras.Model],
    kinds: Mapping[str, tuple[str, float]],
    splits: Splits,
    run_dir: Path,
    seconds: float,
    *,
    tflite: bool,
) -> list[dict]:
    """One row per model (the first is the dense reference): validation and test accuracy,
    parameters, non-zeros, FLOPs, gzip size of `run_dir/<name>/model.keras`, CPU latency and
    throughput (models timed in turn, `seconds` each), with `tflite` the batch-1 latency of
    each model as a TFLite file too (`run_dir/<name>/model.tflite`), and ratios to dense.

    `kinds` gives each model's kind and amount (`variants.Variant`).
    """
    x_val, y_val = arrays(splits.validation)
    x_test, y_test = arrays(splits.test)
    rows = []
    for name, model in models.items():
        kind, amount = kinds[name]
        row = {"model": name, "kind": kind, "amount": amount}
        row["val_accuracy"] = accuracy(model, x_val, y_val)
        row |= profile(model, run_dir / name / "model.keras", x_test, y_test)
        rows.append(row)
    timed = speeds(models, x_test, seconds)
    for row in rows:
        row |= timed[row["model"]]
    if tflite:  # TFLite runs no string preprocessing
        files = {
            name: litert.export(m, run_dir / name / "model.tflite") for name, m in models.items()
        }
        print("Timing the TFLite files at batch 1 through the LiteRT interpreter.")
        invoke = litert.interleaved_latency(files, x_test[0], seconds)
        dense = rows[0]["model"]
        for row in rows:
            row["tflite_latency_ms"] = 1e3 * invoke[row["model"]]
            row["tflite_speedup_b1"] = invoke[dense] / invoke[row["model"]]
    add_ratios(rows, rows[0])
    plot_accuracy_vs_size(rows, run_dir / "accuracy_vs_size.png")
    return rows


def print_rows(rows: Sequence[dict]) -> None:
    """The comparison on the console, one line per model."""
    for row in rows:
        print(" ".join(f"{k}={_short(row[k])}" for k in COLUMNS if k in row))


def _short(value) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def accuracy(model: keras.Model, x: np.ndarray, y: np.ndarray, batch: int = 256) -> float:
    """Fraction of `x` whose arg-max prediction is `y` (`x` may hold strings)."""
    if x.dtype == object:  # strings: Keras takes them as a tf.data pipeline, not NumPy
        probs = model.predict(tf.data.Dataset.from_tensor_slices(x).batch(batch), verbose=0)
    else:
        probs = model.predict(x, batch_size=batch, verbose=0)
    return float((probs.argmax(-1) == y).mean())


def profile(model: keras.Model, saved: Path, x: np.ndarray, y: np.ndarray) -> dict:
    """One row of the comparison for `model`, saved (without optimizer state) at `saved`.

    Returns:
        test accuracy on `x`, `y`, parameters, non-zeros, FLOPs per example (dense, and with
        products by zero skipped), and the gzip-compressed size of the file.
    """
    counts = stats.count(model)
    work = stats.flops(model)
    return {
        "test_accuracy": accuracy(model, x, y),
        "params": counts["params"],
        "nonzeros": counts["nonzeros"],
        "mflops": work["flops"] / 1e6,
        "sparse_mflops": work["sparse_flops"] / 1e6,
        "gzip_kb": measure.gzip_size(saved) / 1024,
    }


def speeds(
    models: Mapping[str, keras.Model], x: np.ndarray, seconds: float = 1.0
) -> dict[str, dict[str, float]]:
    """CPU latency at batch 1 (ms) and throughput at batch 256 (examples/s) of each model,
    the models' calls taken in turn (`measure.interleaved_seconds`), `seconds` per model and
    batch size."""
    fns = {name: measure.inference_fn(model) for name, model in models.items()}
    one = tf.constant(x[:1])
    batch = tf.constant(np.resize(x, (256, *x.shape[1:])))
    print(f"Timing {len(models)} models, calls taken in turn: batch 1, then 256.")
    latency = measure.interleaved_seconds(fns, one, seconds)
    per_batch = measure.interleaved_seconds(fns, batch, seconds)
    return {
        name: {"latency_ms": 1e3 * latency[name], "throughput": 256 / per_batch[name]}
        for name in models
    }


def add_ratios(rows: Sequence[dict], reference: dict) -> None:
    """Adds each row's size, latency and throughput relative to `reference` (the dense model)."""
    for row in rows:
        row["size_vs_dense"] = row["gzip_kb"] / reference["gzip_kb"]
        row["speedup_b1"] = reference["latency_ms"] / row["latency_ms"]
        row["speedup_b256"] = row["throughput"] / reference["throughput"]
        row["points_vs_dense"] = 100 * (row["test_accuracy"] - reference["test_accuracy"])


def table(rows: Sequence[dict], columns: Sequence[str]) -> str:
    """A markdown table of `rows` with `columns`; each column's floats rounded alike
    (`decimals`), so 1.046 and 0.4 read 1.0460 and 0.4000, not 1.0 and 0.4000."""
    places = {c: decimals([r[c] for r in rows if isinstance(r.get(c), float)]) for c in columns}

    def cell(value, column: str) -> str:
        if isinstance(value, float):
            return f"{value:,.{places[column]}f}"
        return f"{value:,}" if isinstance(value, int) else str(value)

    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for row in rows:
        lines.append("| " + " | ".join(cell(row.get(c, ""), c) for c in columns) + " |")
    return "\n".join(lines)


def decimals(values: Sequence[float], digits: int = 4, most: int = 4) -> int:
    """Decimal places that show the smallest non-zero of `values` with `digits` significant
    digits, at most `most` (none once the smallest is 10 ** digits or more)."""
    smallest = min((abs(v) for v in values if v and math.isfinite(v)), default=1.0)
    return max(0, min(most, digits - 1 - math.floor(math.log10(smallest))))


def plot_accuracy_vs_size(rows: Sequence[dict], out: Path) -> None:
    """Test accuracy against gzip-compressed size, one labelled point per model."""
    fig = Figure(figsize=(7, 4.5))  # not pyplot's: the user's matplotlib backend stays as it is
    ax = fig.subplots()
    for row in rows:
        ax.scatter(row["gzip_kb"], 100 * row["test_accuracy"], s=40)
        ax.annotate(
            row["model"],
            (row["gzip_kb"], 100 * row["test_accuracy"]),
            fontsize=8,
            xytext=(4, 4),
            textcoords="offset points",
        )
    ax.set_xscale("log")
    ax.set_xlabel("gzip-compressed .keras size (KiB, log scale)")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title("Accuracy against size")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(out, dpi=100)


def report(rows: Sequence[dict], best: dict, model: keras.Model) -> str:
    """The report's sections: every model, the kept model's sparsity (its exports: `run.export`)."""
    lines = [
        f"## Every model (best pruned: {best['model']}, this run's model.keras)",
        "",
        table(rows, COLUMNS),
        "",
        "![accuracy against size](accuracy_vs_size.png)",
        "",
    ]
    lines += [
        "## Per-layer sparsity of the best pruned model",
        "",
        table(sparsity_report(model), ["weight", "shape", "params", "sparsity"]),
    ]
    return "\n".join(lines)
