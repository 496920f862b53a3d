"""Starts one multi-host training run as N processes on this host, and waits for all of them.

    python -m dlrecipes.multihost.launch --workers 2 -- \\
        python recipes/image_classification/recipe.py train --epochs 5

This is process management only: every process runs the same `train` command with its own TF_CONFIG
(all N addresses on this host, free ports), and MultiWorkerMirroredStrategy trains them as one
(`dlrecipes.multihost.cluster`). Process 0 is the chief and writes the run directory. Each process's
output goes to `<run-dir>/logs/worker-<i>.log` (appended to across restarts) and, prefixed with
`[worker<i>]`, to this terminal. When a process fails the others are stopped at once, and the
launcher exits non-zero with the command that resumes the run from its last backup.

On several hosts, start the same `train` command on each host with TF_CONFIG set by hand; see the
README's "Scaling out".
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path

from dlrecipes.errors import ConfigError, RecipeError, RunDirError
from dlrecipes.processes import Child, free_ports, say

POLL_SECONDS = 0.5
STOP_GRACE_SECONDS = 5.0  # TensorFlow catches SIGTERM (preemption notices); SIGKILL follows
# A port chosen free can be taken by another program before TensorFlow listens on it. The process
# then fails with this (dlrecipes.multihost.cluster.join) and the launcher retries with new ports.
PORT_TAKEN = "port is already in use"
PORT_RETRIES = 3
LOGS = "logs"


def tf_config(addresses: Sequence[str], index: int) -> str:
    """The TF_CONFIG of process `index` of a cluster of workers at `addresses`."""
    return json.dumps(
        {"cluster": {"worker": list(addresses)}, "task": {"type": "worker", "index": index}}
    )


def with_run_dir(command: list[str]) -> tuple[list[str], Path]:
    """`command` with an explicit `--run-dir` (`runs/<recipe>/<timestamp>` when it has none), so
    every process and the logs agree on it, and that directory."""
    for i, arg in enumerate(command):
        if arg == "--run-dir" and i + 1 < len(command):
            return command, Path(command[i + 1])
        if arg.startswith("--run-dir="):
            return command, Path(arg.split("=", 1)[1])
    script = next((Path(a) for a in command if a.endswith("recipe.py")), None)
    if script is None:
        raise ConfigError("Give --run-dir DIR, or run a recipes/<name>/recipe.py train command.")
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    run_dir = Path("runs") / script.parent.name / stamp
    return [*command, "--run-dir", str(run_dir)], run_dir


def launch(command: Sequence[str], workers: int, *, host: str = "127.0.0.1") -> int:
    """Runs `command` as `workers` processes of one multi-host run; 0 when every one succeeded.

    Args:
        command: the `train` command line every process runs.
        workers: number of processes, the chief included.
        host: the address every process listens on.
    """
    if workers < 1:
        raise ConfigError(f"--workers must be at least 1; got {workers}.")
    command, run_dir = with_run_dir(list(command))
    for i, arg in enumerate(command[:-1]):
        if arg == "--strategy" and command[i + 1] not in ("auto", "multi_host"):
            raise ConfigError(
                f"--strategy {command[i + 1]} trains each process alone, all into one run "
                "directory; drop it (auto turns multi_host under the launcher)."
            )
    resume = "--resume" in command
    if not resume and run_dir.exists() and any(p.name != LOGS for p in run_dir.iterdir()):
        raise RunDirError(
            f"{run_dir} already holds a run. Pass --resume to continue it, or choose "
            "another --run-dir; nothing was overwritten."
        )
    (run_dir / LOGS).mkdir(parents=True, exist_ok=True)
    threads = os.environ.get("TF_NUM_INTRAOP_THREADS") or str(
        max(1, (os.cpu_count() or 1) // workers)
    )
    say(f"{workers} processes on {host}, run directory {run_dir}: {' '.join(command)}")
    for _attempt in range(PORT_RETRIES):
        addresses = [f"{host}:{port}" for port in free_ports(workers, host)]
        port_taken = threading.Event()

        def watch(line: str, port_taken: threading.Event = port_taken) -> None:
            if PORT_TAKEN in line:
                port_taken.set()

        procs = [
            Child(
                f"worker{i}",
                command,
                {
                    **os.environ,
                    "TF_CONFIG": tf_config(addresses, i),
                    # The processes share this host's cores instead of each taking all of them.
                    "TF_NUM_INTRAOP_THREADS": threads,
                    "PYTHONUNBUFFERED": "1",  # output is echoed line by line as it comes
                },
                log=run_dir / LOGS / f"worker-{i}.log",
                on_line=watch,
                grace=STOP_GRACE_SECONDS,
            )
            for i in range(workers)
        ]
        try:
            code = _wait(procs)
        finally:
            for proc in procs:
                proc.stop()
        if code == 0 or not port_taken.is_set():
            break
        say("a port was taken before TensorFlow could listen on it; starting again on new ports")
    if code == 0:
        say(f"every process exited 0; run directory {run_dir}")
        return 0
    if (run_dir / "config.json").exists():
        again = command if resume else [*command, "--resume"]
        say(
            f"stopped. Go on from the last backup in {run_dir} with: python -m "
            f"dlrecipes.multihost.launch --workers {workers} -- {' '.join(again)}"
        )
    else:
        say("stopped before training began")
    return code


def _wait(procs: list[Child]) -> int:
    """Waits until every process exited 0 (returns 0) or one failed (returns its exit code)."""
    while True:
        for proc in procs:
            code = proc.poll()
            if code not in (None, 0):
                say(f"{proc.name} exited with code {code}; stopping the others")
                return code if code > 0 else 1
        if all(proc.poll() == 0 for proc in procs):
            return 0
        time.sleep(POLL_SECONDS)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m dlrecipes.multihost.launch",
        description="Run one training job as N processes on this host and wait for them.",
    )
    parser.add_argument("--workers", type=int, default=2, help="processes, the chief included")
    parser.add_argument("--host", default="127.0.0.1", help="address every process listens on")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="-- the train command to run")
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("give the train command after --, e.g. -- python recipe.py train")
    try:
        return launch(command, args.workers, host=args.host)
    except RecipeError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
