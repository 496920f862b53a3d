"""What a run leaves behind for people: metrics.json, curves.png, confusion.png, report.md."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator
from sklearn.metrics import (
    ConfusionMatrixDisplay,
    accuracy_score,
    confusion_matrix,
    precision_recall_fscore_support,
)

from dlrecipes.callbacks import read_history


def classification_metrics(
    y_true: np.ndarray, y_pred: np.ndarray, class_names: Sequence[str]
) -> dict[str, Any]:
    """Accuracy, per-class precision / recall / F1 / support and the confusion matrix."""
    labels = list(range(len(class_names)))
    precision, recall, f1, support = precision_recall_fscore_support(
        y_true, y_pred, labels=labels, zero_division=0
    )
    return {
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "num_examples": int(len(y_true)),
        "macro_f1": float(np.mean(f1)),
        "per_class": {
            name: {
                "precision": float(precision[i]),
                "recall": float(recall[i]),
                "f1": float(f1[i]),
                "support": int(support[i]),
            }
            for i, name in enumerate(class_names)
        },
        "class_names": list(class_names),
        "confusion_matrix": confusion_matrix(y_true, y_pred, labels=labels).tolist(),
    }


def write_json(path: Path, values: dict[str, Any]) -> None:
    """Writes `values` as JSON in one step (a temporary file, then `os.replace`): a run killed
    while writing leaves the old file or none, never half of one."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(values, indent=2) + "\n")
    os.replace(tmp, path)


def plot_curves(history_csv: Path, out: Path) -> Figure | None:
    """Loss and accuracy per epoch, training against validation, written to `out`; a dashed line
    where a new training phase begins (a `phase` column, as `dlrecipes.phases` writes). Returns
    the figure (None, and no file, for an empty history)."""
    rows = read_history(history_csv)
    if not rows:
        return None
    epochs = [int(r["epoch"]) + 1 for r in rows]
    starts = [
        (epoch, row["phase"])
        for epoch, row, before in zip(epochs[1:], rows[1:], rows[:-1], strict=True)
        if row.get("phase") != before.get("phase")
    ]
    # A Figure of its own, not pyplot's: files only, and the user's matplotlib backend untouched.
    fig = Figure(figsize=(10, 4))
    axes = fig.subplots(1, 2)
    for ax, metric in zip(axes, ("loss", "accuracy"), strict=True):
        for key, label in ((metric, "train"), (f"val_{metric}", "validation")):
            values = [float(r[key]) for r in rows if r.get(key) not in (None, "", "NA")]
            if values:
                ax.plot(epochs[: len(values)], values, marker="o", label=label)
        for epoch, phase in starts:
            ax.axvline(epoch - 0.5, color="grey", linestyle="--", linewidth=1)
            ax.annotate(f"phase {phase}", (epoch - 0.4, 0.02), xycoords=("data", "axes fraction"))
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # epochs are whole
        ax.set_xlabel("epoch")
        ax.set_title(metric)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    return fig


def plot_confusion(matrix: Sequence[Sequence[int]], class_names: Sequence[str], out: Path) -> None:
    """The confusion matrix as an annotated heat map."""
    size = max(4.0, 0.5 * len(class_names) + 2)
    fig = Figure(figsize=(size, size))
    ax = fig.subplots()
    ConfusionMatrixDisplay(np.asarray(matrix), display_labels=list(class_names)).plot(
        ax=ax, colorbar=False, xticks_rotation="vertical" if len(class_names) > 10 else "horizontal"
    )
    fig.tight_layout()
    fig.savefig(out, dpi=100)


def write_report(
    run_dir: Path,
    title: str,
    config: dict[str, Any],
    metrics: dict[str, Any],
    extra: str = "",
) -> Path:
    """A markdown summary: headline accuracy, per-class table, plots, the config."""
    lines = [
        f"# {title}",
        "",
        f"Test accuracy: **{metrics['accuracy']:.4f}** on {metrics['num_examples']} examples "
        f"(macro F1 {metrics['macro_f1']:.4f}).",
        "",
    ]
    if "baseline" in metrics:  # a linear model on the same split (dlrecipes.baselines)
        b = metrics["baseline"]
        lines += [
            f"Baseline: {b['name']} scores **{b['accuracy']:.4f}** on the same test split "
            f"({b['detail']}); the model minus the baseline: "
            f"**{b['difference_points']:+.2f} points**.",
            "",
        ]
    lines += [
        "| class | precision | recall | F1 | support |",
        "|---|---|---|---|---|",
    ]
    for name, m in metrics["per_class"].items():
        row = (name, f"{m['precision']:.3f}", f"{m['recall']:.3f}", f"{m['f1']:.3f}", m["support"])
        lines.append("| " + " | ".join(str(v) for v in row) + " |")
    lines += ["", "![training curves](curves.png)", "", "![confusion matrix](confusion.png)", ""]
    if extra:
        lines += [extra, ""]
    lines += ["## Config", "", "```json", json.dumps(config, indent=2), "```", ""]
    path = run_dir / "report.md"
    path.write_text("\n".join(lines))
    return path
