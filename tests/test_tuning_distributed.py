"""A distributed search on 127.0.0.1: a chief and two workers through keras-tuner's own oracle,
started by `dlrecipes.tuning.launch`, with one worker killed in the middle of its trial."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time

import pytest

from tests.conftest import ROOT, started

RECIPE = ROOT / "recipes" / "image_classification" / "recipe.py"
TIMEOUT = 400  # seconds; a hang fails the test instead of blocking the suite


@pytest.mark.slow
def test_chief_and_two_workers_share_the_search_and_survive_a_killed_worker(tmp_path):
    directory = tmp_path / "search"
    command = [
        sys.executable, "-m", "dlrecipes.tuning.launch", "--workers", "2", "--",
        sys.executable, str(RECIPE), "tune", "--tiny", "--tuner", "random",
        "--max-trials", "2", "--max-epochs", "1", "--directory", str(directory),
    ]  # fmt: skip
    output = {"stdout": subprocess.PIPE, "stderr": subprocess.STDOUT, "text": True}
    with started(command, cwd=ROOT, **output) as launcher:
        timer = threading.Timer(TIMEOUT, launcher.kill)
        timer.start()
        lines, pids, killed = [], {}, None
        try:
            for line in launcher.stdout:
                lines.append(line)
                launched = re.match(r"\[launch\] started (\S+) \(pid (\d+)\)", line)
                if launched:
                    pids.setdefault(launched[1], []).append(int(launched[2]))
                running = re.match(r"\[(tuner\d)\] \1 runs trial (\S+)", line)
                if killed is None and running:
                    time.sleep(1)  # into the trial: building or training its model
                    killed = running.groups()
                    os.kill(pids[killed[0]][-1], signal.SIGKILL)
            code = launcher.wait()
        finally:
            timer.cancel()
    out = "".join(lines)
    assert code == 0, out[-6000:]
    assert killed is not None, out[-6000:]

    # The killed worker was restarted with its tuner id and took its trial up again.
    tuner_id, trial_id = killed
    assert len(pids[tuner_id]) == 2
    assert f"[{tuner_id}] {tuner_id} runs trial {trial_id}" in out.split("restarting it")[1]
    # The chief recorded every trial exactly once, each COMPLETED, and wrote the results.
    files = sorted((directory / "image_classification").glob("trial_*/trial.json"))
    records = [json.loads(f.read_text()) for f in files]
    assert sorted(r["trial_id"] for r in records) == ["0", "1"]
    assert all(r["status"] == "COMPLETED" for r in records)
    best = directory / "best_hparams.json"
    assert f"[chief] {best}" in out and best.exists()
    assert "2 trials: 2 completed, 0 failed" in out
    # Every process exited.
    for pid in [p for group in pids.values() for p in group]:
        assert not _alive(pid), pid


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie (exited, not yet reaped by its parent) counts as exited.
    with open(f"/proc/{pid}/stat") as f:
        return f.read().split(")")[-1].split()[0] != "Z"
