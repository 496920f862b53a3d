"""What a model costs to ship and to run: gzip-compressed file size, CPU latency, throughput.

Sizes are of files written without optimizer state (`strip.without_optimizer`), so a ratio of two
sizes compares the models, not their optimizers. Times are medians of repeated calls of one
compiled function after a warm-up; compare ratios measured in one process.
"""

from __future__ import annotations

import gzip
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf


def gzip_size(path: str | Path) -> int:
    """Bytes of the file (or of every file under a directory) after gzip -9."""
    path = Path(path)
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    return sum(len(gzip.compress(f.read_bytes(), compresslevel=9)) for f in files)


def file_size(path: str | Path) -> int:
    """Bytes on disk of a file, or of every file under a directory."""
    path = Path(path)
    if path.is_dir():
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    return path.stat().st_size


def _median_seconds(fn: Callable[[], object], repeats: int, min_seconds: float) -> float:
    fn()  # trace and warm up
    fn()
    times = []
    start = time.perf_counter()
    while len(times) < repeats or time.perf_counter() - start < min_seconds:
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
        if len(times) >= 50 * repeats:
            break
    return statistics.median(times)


def inference_fn(model: keras.Model) -> Callable[[np.ndarray], object]:
    """`model` in inference mode as one compiled TensorFlow function (no XLA)."""
    return tf.function(lambda x: model(x, training=False), reduce_retracing=True)


def latency(
    model: keras.Model, examples: np.ndarray, repeats: int = 30, min_seconds: float = 1.0
) -> float:
    """Median seconds to predict one example (batch 1) on this machine's CPU."""
    fn = inference_fn(model)
    x = tf.constant(examples[:1])
    return _median_seconds(lambda: fn(x), repeats, min_seconds)


def throughput(
    model: keras.Model,
    examples: np.ndarray,
    batch: int = 256,
    repeats: int = 5,
    min_seconds: float = 1.0,
) -> float:
    """Examples per second predicted in batches of `batch` (median over repeats)."""
    fn = inference_fn(model)
    copies = -(-batch // len(examples))
    x = tf.constant(np.concatenate([examples] * copies)[:batch])
    return batch / _median_seconds(lambda: fn(x), repeats, min_seconds)
