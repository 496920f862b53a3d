"""What a model costs to ship and to run: gzip-compressed file size, CPU latency, throughput.

Sizes are of files written without optimizer state (`strip.without_optimizer`), so a ratio of two
sizes compares the models, not their optimizers. Times are medians of calls of one compiled
function per model after a warm-up, the models' calls taken in turn; compare ratios measured in
one process.
"""

from __future__ import annotations

import gzip
import statistics
import time
from collections.abc import Callable, Mapping
from pathlib import Path

import keras
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


def inference_fn(model: keras.Model) -> Callable[[tf.Tensor], object]:
    """`model` in inference mode as one compiled TensorFlow function (no XLA)."""
    return tf.function(lambda x: model(x, training=False), reduce_retracing=True)


def interleaved_seconds(
    fns: Mapping[str, Callable[[tf.Tensor], object]],
    x: tf.Tensor,
    seconds: float = 1.0,
    least: int = 5,
) -> dict[str, float]:
    """Median seconds of one call of each function on `x`, calls taken in turn.

    Each function is called twice first (tracing, warm-up); then one call of each, over and
    over, for `seconds` per function and at least `least` calls each. Taking turns call by call
    means a busy spell of a shared machine slows every function alike, so ratios hold.
    """
    for fn in fns.values():
        fn(x)
        fn(x)
    times: dict[str, list[float]] = {name: [] for name in fns}
    start = time.perf_counter()
    while time.perf_counter() - start < seconds * len(fns) or len(times[next(iter(fns))]) < least:
        for name, fn in fns.items():
            t = time.perf_counter()
            fn(x)
            times[name].append(time.perf_counter() - t)
    return {name: statistics.median(t) for name, t in times.items()}
