"""Starts a Keras Tuner chief and N workers on this host, and waits for all of them.

    python -m dlrecipes.tuning.launch --workers 2 -- \\
        python recipes/image_classification/recipe.py tune --tuner random --max-trials 8

This is process management only: every process runs the same `tune` command, and keras-tuner's
own chief / worker oracle (gRPC, set up by `KERASTUNER_TUNER_ID`, `KERASTUNER_ORACLE_IP` and
`KERASTUNER_ORACLE_PORT`) shares the trials out. The chief holds the oracle and writes the
results; workers train.

A worker that dies mid-trial leaves its trial RUNNING in the chief's oracle, and keras-tuner's
chief waits for it forever. A worker restarted with the same `KERASTUNER_TUNER_ID` is handed that
same trial again (keras-tuner keeps one ongoing trial per tuner id), so the launcher restarts a
dead worker up to `--restarts` times. Past that, it stops the chief and fails; running the same
command again resumes the search and retries the unfinished trial.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import threading
import time
from collections.abc import Sequence

from dlrecipes.processes import Child, free_ports, say
from dlrecipes.tuning.searching import READY

# keras-tuner's chief checks every 20 s whether every worker has left; allow a few checks.
CHIEF_GRACE_SECONDS = 75.0
POLL_SECONDS = 0.5


def tuner_env(tuner_id: str, host: str, port: int) -> dict[str, str]:
    """The environment of one process of a distributed search.

    The processes share this host's GPUs: TensorFlow's memory growth is on unless the caller
    set `TF_FORCE_GPU_ALLOW_GROWTH`, so the first process does not take all of a GPU's memory
    and leave the others none.
    """
    return {
        "TF_FORCE_GPU_ALLOW_GROWTH": "true",
        **os.environ,
        "KERASTUNER_TUNER_ID": tuner_id,
        "KERASTUNER_ORACLE_IP": host,
        "KERASTUNER_ORACLE_PORT": str(port),
        "PYTHONUNBUFFERED": "1",  # the launcher echoes output line by line as it comes
    }


def launch(
    command: Sequence[str],
    workers: int,
    *,
    host: str = "127.0.0.1",
    port: int | None = None,
    restarts: int = 1,
) -> int:
    """Runs `command` as a chief and `workers` workers; returns 0 when every process succeeded.

    Args:
        command: the `tune` command line each process runs.
        workers: number of workers (`tuner0`, `tuner1`, ...); 0 runs `command` once, alone.
        host: the chief's address, given to every process as `KERASTUNER_ORACLE_IP`.
        port: the chief's port; None = a free one.
        restarts: how often each worker may be restarted after dying.
    """
    if workers < 0 or restarts < 0:
        raise ValueError("--workers and --restarts must not be negative.")
    if workers == 0:
        return subprocess.run(list(command)).returncode
    port = port or free_ports(1, host)[0]
    say(f"chief on {host}:{port}, {workers} workers: {' '.join(command)}")
    ready = threading.Event()

    def watch(line: str) -> None:
        if READY in line:
            ready.set()

    chief = Child("chief", command, tuner_env("chief", host, port), on_line=watch)
    while not ready.wait(POLL_SECONDS):
        if chief.poll() is not None:
            say(f"the chief exited with code {chief.poll()} before the search started")
            return chief.poll() or 1
    procs = {
        f"tuner{i}": Child(f"tuner{i}", command, tuner_env(f"tuner{i}", host, port))
        for i in range(workers)
    }
    left = dict.fromkeys(procs, restarts)
    failed: dict[str, int] = {}
    try:
        while True:
            time.sleep(POLL_SECONDS)
            for tuner_id, proc in procs.items():
                code = proc.poll()
                if code in (None, 0) or tuner_id in failed:
                    continue
                if left[tuner_id] > 0 and chief.poll() is None:
                    left[tuner_id] -= 1
                    say(
                        f"{tuner_id} exited with code {code} before the search ended; restarting "
                        "it with the same tuner id, so it takes up its unfinished trial again"
                    )
                    procs[tuner_id] = Child(tuner_id, command, tuner_env(tuner_id, host, port))
                else:
                    failed[tuner_id] = code
                    say(f"{tuner_id} exited with code {code}; no restarts left")
            if chief.poll() is not None or all(p.poll() is not None for p in procs.values()):
                break
        return _finish(chief, procs, failed)
    finally:
        for proc in [chief, *procs.values()]:
            proc.stop()


def _finish(chief: Child, procs: dict[str, Child], failed: dict[str, int]) -> int:
    """Waits for the side that has not ended yet and returns the exit status."""
    if chief.poll() is None:
        try:
            chief.wait(timeout=CHIEF_GRACE_SECONDS)
        except subprocess.TimeoutExpired:
            say(
                f"every worker has ended but the chief is still waiting for a trial (workers that "
                f"failed: {failed or 'none'}); stopping it. Run the same command again to resume "
                "the search: the unfinished trial is run again."
            )
            return 1
    elif chief.poll() != 0:
        say(f"the chief failed with code {chief.poll()}; stopping the workers")
        return chief.poll()
    else:
        for proc in procs.values():
            try:
                proc.wait(timeout=CHIEF_GRACE_SECONDS)
            except subprocess.TimeoutExpired:
                say(f"the chief has ended but {proc.name} has not; stopping it")
    codes = {"chief": chief.poll(), **{t: p.poll() for t, p in procs.items()}}
    bad = {t: c for t, c in codes.items() if c != 0}
    say("every process exited 0" if not bad else f"exit codes other than 0: {bad}")
    return chief.poll() or (1 if bad else 0)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m dlrecipes.tuning.launch",
        description="Run a Keras Tuner chief and N workers on this host and wait for them.",
    )
    parser.add_argument("--workers", type=int, default=2, help="worker processes (0 = no chief)")
    parser.add_argument("--host", default="127.0.0.1", help="address the chief listens on")
    parser.add_argument("--port", type=int, help="the chief's port (default: a free one)")
    parser.add_argument(
        "--restarts", type=int, default=1, help="restarts allowed per worker that dies"
    )
    parser.add_argument("command", nargs=argparse.REMAINDER, help="-- the tune command to run")
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("give the tune command after --, e.g. -- python recipe.py tune")
    return launch(command, args.workers, host=args.host, port=args.port, restarts=args.restarts)


if __name__ == "__main__":
    raise SystemExit(main())
