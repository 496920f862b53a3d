"""One training run over several processes: the cluster from TF_CONFIG, joining it, and where each
process writes.

Multi-host training is `tf.distribute.MultiWorkerMirroredStrategy`: every process holds the whole
model, trains on its share of each global batch, and the gradients are averaged across processes
at every step. Each process gets the standard TensorFlow `TF_CONFIG`, the same `cluster` and its
own `task`:

    TF_CONFIG='{"cluster": {"worker": ["host1:23456", "host2:23456"]},
                "task": {"type": "worker", "index": 0}}'

Task 0 is the chief: it writes the run directory. The others run the very same callbacks, saves
included, into a scratch directory that is deleted when they exit: the usual TensorFlow pattern,
since a save may read variables aggregated over all processes, which every process must join.
Keras 3 needs a patch to train there at all (`dlrecipes.multihost.shim`), applied on joining.
"""

from __future__ import annotations

import atexit
import contextlib
import dataclasses
import functools
import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import keras
import tensorflow as tf

from dlrecipes.errors import ClusterError, ConfigError
from dlrecipes.multihost import shim

TIMEOUT_ENV = "DLRECIPES_CLUSTER_TIMEOUT"
# Seconds a process waits for the others: enough to start them by hand on several hosts.
DEFAULT_TIMEOUT = 180.0
# Run by `join` in its own process: kills the joining process (pid, argv[1]) with a message
# (argv[3]) unless its stdin closes within argv[2] seconds.
_WATCHDOG = """
import os, select, signal, sys
if not select.select([sys.stdin], [], [], float(sys.argv[2]))[0]:
    print(sys.argv[3], file=sys.stderr, flush=True)
    os.kill(int(sys.argv[1]), signal.SIGKILL)
"""
# A non-chief process starts from a copy of these, so every process restores the same state.
_CHIEF_STATE = ("config.json", "backup", "history.csv", "model.keras")


@dataclasses.dataclass(frozen=True)
class Task:
    """This process's place in a multi-host run.

    Args:
        addresses: `host:port` of every process, the chief first.
        index: this process's position in `addresses`; 0 is the chief.
    """

    addresses: tuple[str, ...]
    index: int

    @property
    def is_chief(self) -> bool:
        return self.index == 0

    @property
    def size(self) -> int:
        return len(self.addresses)

    def __str__(self) -> str:
        return f"process {self.index} of {self.size} ({self.addresses[self.index]})"


def from_env(environ: dict[str, str] | None = None) -> Task | None:
    """The task TF_CONFIG describes, or None when it is unset or names a single process.

    Raises:
        ConfigError: TF_CONFIG is not JSON with a `cluster` and a `task` of type chief or worker.
    """
    raw = (os.environ if environ is None else environ).get("TF_CONFIG", "").strip()
    if not raw:
        return None
    try:
        spec = json.loads(raw)
        cluster, task = spec["cluster"], spec["task"]
        chiefs, workers = list(cluster.get("chief", [])), list(cluster.get("worker", []))
        kind, index = task["type"], int(task["index"])
    except (ValueError, KeyError, TypeError) as err:
        raise ConfigError(
            f"TF_CONFIG is not a valid cluster spec ({type(err).__name__}: {err}); expected "
            '{"cluster": {"worker": ["host:port", ...]}, "task": {"type": "worker", "index": i}}.'
        ) from err
    addresses = tuple(chiefs + workers)
    if kind not in ("chief", "worker") or set(cluster) - {"chief", "worker"}:
        raise ConfigError(
            f"TF_CONFIG names task type {kind!r} and jobs {sorted(cluster)}; multi-host training "
            "uses only 'chief' and 'worker' tasks (MultiWorkerMirroredStrategy)."
        )
    position = index if kind == "chief" else len(chiefs) + index
    if not 0 <= position < len(addresses):
        raise ConfigError(
            f"TF_CONFIG's task {kind} {index} is not in its cluster {addresses}; set task.index "
            "to this process's place in the list."
        )
    return Task(addresses, position) if len(addresses) > 1 else None


def task(strategy: str) -> Task | None:
    """This process's task when `strategy` trains on several processes, else None.

    `multi_host` requires TF_CONFIG; `auto` turns multi-host when TF_CONFIG names several
    processes; any other strategy ignores it.
    """
    found = from_env()
    if strategy == "multi_host" and found is None:
        raise ConfigError(
            "--strategy multi_host needs TF_CONFIG naming at least two processes (see the "
            "README's 'Scaling out'); `make train-distributed` sets it for processes on this host."
        )
    return found if strategy in ("multi_host", "auto") else None


def timeout() -> float:
    """Seconds to wait for the other processes: DLRECIPES_CLUSTER_TIMEOUT, else the default."""
    raw = os.environ.get(TIMEOUT_ENV)
    try:
        value = float(raw) if raw else DEFAULT_TIMEOUT
    except ValueError:
        value = -1.0
    if not value > 0:
        raise ConfigError(f"{TIMEOUT_ENV}={raw!r} is not a positive number of seconds.")
    return value


@functools.cache
def join(current: Task) -> tf.distribute.MultiWorkerMirroredStrategy:
    """Joins the cluster (once per process) and returns its strategy.

    A non-chief process first waits for the chief's port; joining then waits for every process.
    Each wait is bounded by `timeout()`: past it, the process fails with one line instead of
    hanging (an unreachable chief raises; a cluster that never forms gets the process killed,
    since TensorFlow's wait cannot be interrupted).

    Raises:
        ClusterError: the chief cannot be reached, or this process's port is taken.
    """
    seconds = timeout()
    if not current.is_chief:
        _wait_for_port(current, seconds)
    # Joining blocks inside TensorFlow, holding the GIL, until every process has joined: only
    # another process can end the wait. The watchdog exits quietly once the pipe closes.
    message = (
        f"error: the cluster did not form within {seconds:.0f} s: {current} waited for the "
        f"others of {', '.join(current.addresses)}. Start every process of TF_CONFIG, or wait "
        f"longer with {TIMEOUT_ENV}=SECONDS."
    )
    watchdog = subprocess.Popen(
        [sys.executable, "-c", _WATCHDOG, str(os.getpid()), str(seconds), message],
        stdin=subprocess.PIPE,
    )
    try:
        strategy = tf.distribute.MultiWorkerMirroredStrategy()
    except tf.errors.UnknownError as err:  # "Could not start gRPC server"
        raise ClusterError(
            f"{current} cannot listen on {current.addresses[current.index]} ({err.message}): the "
            "port is already in use. Give this process another port in TF_CONFIG."
        ) from err
    finally:
        watchdog.stdin.close()
        watchdog.wait()
    shim.apply()  # after joining: looking for the bugs starts TensorFlow's runtime
    return strategy


def _wait_for_port(current: Task, seconds: float) -> None:
    host, port = current.addresses[0].rsplit(":", 1)
    deadline = time.monotonic() + seconds
    while True:
        try:
            socket.create_connection((host.strip("[]"), int(port)), timeout=5).close()
            return
        except OSError as err:
            if time.monotonic() >= deadline:
                raise ClusterError(
                    f"{current} could not reach the chief at {current.addresses[0]} within "
                    f"{seconds:.0f} s ({err.strerror or err}). Start the chief (the first address "
                    f"of TF_CONFIG), check the addresses and the firewall, or wait longer with "
                    f"{TIMEOUT_ENV}=SECONDS."
                ) from err
        time.sleep(0.5)


def scratch_dir(current: Task, run_dir: Path, resume: bool) -> Path:
    """Where a non-chief process writes its copy of the run: an empty temporary directory, removed
    when the process exits. On `resume` it starts from a copy of the chief's config, backup,
    history and best model, so it restores the same state and makes the same saving decisions.

    Raises:
        ClusterError: resuming, but the chief's run directory is not visible from this host.
    """
    # One name per run and process: a process killed before it could clean up leaves one
    # directory, which its restart replaces.
    key = hashlib.sha256(str(run_dir.resolve()).encode()).hexdigest()[:12]
    scratch = Path(tempfile.gettempdir()) / f"dlrecipes-{key}-worker{current.index}"
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir(mode=0o700)
    atexit.register(shutil.rmtree, scratch, ignore_errors=True)
    if resume:
        if not (run_dir / "config.json").exists():
            raise ClusterError(
                f"--resume: {current} cannot see the run to resume in {run_dir}. Every process "
                "restores the chief's backup, so the run directory must be on storage every "
                "host reads (NFS or similar) under the same path."
            )
        for name in _CHIEF_STATE:
            source = run_dir / name
            if source.is_dir():
                shutil.copytree(source, scratch / name)
            elif source.exists():
                shutil.copy2(source, scratch / name)
    return scratch


@contextlib.contextmanager
def chief_first(strategy: tf.distribute.Strategy, current: Task | None) -> Iterator[None]:
    """Runs the block on the chief, then on every other process: preparing a TFDS dataset once,
    where processes preparing it at once would collide. No-op on one process."""
    if current is not None and not current.is_chief:
        _barrier(strategy)
    yield
    if current is not None and current.is_chief:
        _barrier(strategy)


def finish_together(strategy: str) -> None:
    """Multi-host: returns once every process has finished its run. A worker that exited while
    the chief still evaluates and writes would stop sending the coordination service heartbeats,
    and TensorFlow would log on the chief that the worker "crashed". No-op on one process.

    Raises:
        ClusterError: another process stopped before it finished.
    """
    current = task(strategy)
    if current is None:
        return
    try:
        _barrier(join(current))
    except (tf.errors.UnavailableError, tf.errors.AbortedError) as err:
        raise lost(err) from err


def _barrier(strategy: tf.distribute.Strategy) -> None:
    """Returns once every process has called it: a sum over all replicas."""
    strategy.reduce("SUM", strategy.run(lambda: tf.constant(1.0)), axis=None)


def weights_digest(model: keras.Model) -> str:
    """A short SHA-256 of every weight of `model`, equal on processes that hold the same model."""
    digest = hashlib.sha256()
    for weight in model.weights:
        digest.update(keras.ops.convert_to_numpy(weight).tobytes())
    return digest.hexdigest()[:16]


def lost(err: tf.errors.OpError) -> ClusterError:
    """The error for a collective that failed because another process stopped."""
    lines = [line.strip() for line in err.message.splitlines() if line.strip()]
    cause = next((line for line in lines if "aborted" in line or "unhealthy" in line), None)
    cause = (cause or (lines[0] if lines else type(err).__name__))[:200]
    return ClusterError(
        f"Another process of this multi-host run stopped ({cause}). Start every process "
        "again with the same command plus --resume: training goes on from the last backup."
    )
