"""Teacher and student side by side: accuracy, parameters, file size, CPU speed, agreement.

Speeds are measured the way a server calls a model: one compiled function from raw strings to
probabilities (`teacher.serving_function`), the two models in turns in one process, so that a
neighbour loading the machine slows both alike. Sizes are of each model saved without optimizer
state, or the size would measure the optimizer.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from dlrecipes.distillation.teacher import serving_function


def saved_bytes(model: keras.Model) -> int:
    """The size of `model` saved as a `.keras` file (load it with `compile=False` first to leave
    its optimizer state out)."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.keras"
        model.save(path)
        return path.stat().st_size


def speeds(
    models: dict[str, keras.Model],
    texts: Sequence[str],
    *,
    rounds: int = 5,
    calls: int = 20,
    batch_size: int = 256,
) -> dict[str, dict[str, float]]:
    """Batch-1 latency and large-batch throughput of each model, measured in alternating turns.

    Args:
        models: the models by name, each taking raw strings.
        texts: texts to call them on (cycled when fewer than needed).
        rounds: turns per model; the median over turns is reported.
        calls: batch-1 calls per turn, one text each.
        batch_size: texts per call for throughput.

    Returns:
        `{name: {"latency_ms": ..., "texts_per_second": ...}}`.
    """
    texts = list(texts)
    singles = [tf.constant([texts[i % len(texts)]]) for i in range(calls)]
    batch = tf.constant([texts[i % len(texts)] for i in range(batch_size)])
    serve = {name: serving_function(model) for name, model in models.items()}
    for fn in serve.values():  # trace and warm up
        fn(singles[0]).numpy()
        fn(batch).numpy()
    latency: dict[str, list[float]] = {name: [] for name in serve}
    throughput: dict[str, list[float]] = {name: [] for name in serve}
    for _ in range(rounds):
        for name, fn in serve.items():
            start = time.perf_counter()
            for x in singles:
                fn(x).numpy()
            latency[name].append(1000 * (time.perf_counter() - start) / calls)
            start = time.perf_counter()
            fn(batch).numpy()
            throughput[name].append(batch_size / (time.perf_counter() - start))
    return {
        name: {
            "latency_ms": statistics.median(latency[name]),
            "texts_per_second": statistics.median(throughput[name]),
        }
        for name in serve
    }


def compare(
    teacher: keras.Model,
    student: keras.Model,
    teacher_probs: np.ndarray,
    student_probs: np.ndarray,
    labels: np.ndarray,
    texts: Sequence[str],
) -> dict[str, Any]:
    """Both models on the same test texts, and on this CPU.

    Args:
        teacher, student: the two models, loaded without optimizer state.
        teacher_probs, student_probs: their probabilities for `texts`.
        labels: the true classes of `texts`.
        texts: the test texts (also what speeds are measured on).

    Returns:
        `{"agreement", "speedup_batch_1", "speedup_batch_256", "teacher": {...}, "student": {...}}`
        where each model has `accuracy`, `parameters`, `file_bytes`, `latency_ms` and
        `texts_per_second`.
    """
    timing = speeds({"teacher": teacher, "student": student}, texts)
    result: dict[str, Any] = {
        "agreement": float((teacher_probs.argmax(1) == student_probs.argmax(1)).mean()),
    }
    for name, model, probs in (
        ("teacher", teacher, teacher_probs),
        ("student", student, student_probs),
    ):
        result[name] = {
            "accuracy": float((probs.argmax(1) == labels).mean()),
            "parameters": int(model.count_params()),
            "file_bytes": saved_bytes(model),
            **timing[name],
        }
    result["speedup_batch_1"] = timing["teacher"]["latency_ms"] / timing["student"]["latency_ms"]
    result["speedup_batch_256"] = (
        timing["student"]["texts_per_second"] / timing["teacher"]["texts_per_second"]
    )
    return result


def table(comparison: dict[str, Any]) -> str:
    """`compare`'s result as a markdown table, teacher and student side by side."""
    t, s = comparison["teacher"], comparison["student"]
    rows = [
        ("test accuracy", f"{t['accuracy']:.2%}", f"{s['accuracy']:.2%}",
         f"{100 * (s['accuracy'] - t['accuracy']):+.2f} points"),
        ("parameters", f"{t['parameters']:,}", f"{s['parameters']:,}",
         _times(t["parameters"] / s["parameters"], "fewer", "more")),
        ("file size, no optimizer state", _mb(t["file_bytes"]), _mb(s["file_bytes"]),
         _times(t["file_bytes"] / s["file_bytes"], "smaller", "larger")),
        ("latency at batch 1", f"{t['latency_ms']:.2f} ms", f"{s['latency_ms']:.2f} ms",
         _times(comparison["speedup_batch_1"], "faster", "slower")),
        ("throughput at batch 256", f"{t['texts_per_second']:,.0f} texts/s",
         f"{s['texts_per_second']:,.0f} texts/s",
         _times(comparison["speedup_batch_256"], "faster", "slower")),
    ]  # fmt: skip
    lines = ["| | teacher | student | student vs teacher |", "|---|---|---|---|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def _times(ratio: float, better: str, worse: str) -> str:
    """`28.6x fewer` for a ratio of 28.6, `1.6x more` for 0.62."""
    return f"{ratio:.1f}x {better}" if ratio >= 1 else f"{1 / ratio:.1f}x {worse}"


def _mb(size: int) -> str:
    return f"{size / 1e6:.2f} MB"
