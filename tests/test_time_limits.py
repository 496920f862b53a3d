"""Every test has a time limit (pyproject.toml, pytest-timeout): a test whose child process hangs
fails at the limit, naming the test, and the processes it started are killed, grandchildren too."""

from __future__ import annotations

import os
import time
from pathlib import Path

from tests.conftest import ROOT, run_cli

HUNG = """
from tests.conftest import run_cli

GRANDCHILD = "import time; time.sleep(600)"
CHILD = (
    "import subprocess, sys, time; "
    f"p = subprocess.Popen([sys.executable, '-c', {GRANDCHILD!r}]); "
    "open(sys.argv[1], 'w').write(str(p.pid)); time.sleep(600)"
)


def test_a_child_that_hangs():
    run_cli("-c", CHILD, PID_FILE)
"""


def _running(pid: int) -> bool:
    """Whether `pid` still runs (a zombie waiting for its parent to reap it has ended)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    return not (stat.exists() and stat.read_text().rsplit(")", 1)[1].split()[0] == "Z")


def test_a_hung_child_fails_its_test_at_the_limit_and_is_killed_with_what_it_started(tmp_path):
    pid_file = tmp_path / "grandchild.pid"
    (tmp_path / "test_hung.py").write_text(HUNG.replace("PID_FILE", repr(str(pid_file))))
    # The project's own pytest settings (its plugins and limits), with the limit cut to 5 s.
    settings = ["-c", ROOT / "pyproject.toml", "--rootdir", ROOT, "-o", "timeout=5"]
    started = time.monotonic()
    proc = run_cli("-m", "pytest", "-q", "-p", "no:cacheprovider", *settings, tmp_path, check=False)
    assert proc.returncode == 1, proc.stdout[-3000:]
    assert "FAILED" in proc.stdout and "test_hung.py::test_a_child_that_hangs" in proc.stdout
    assert "Timeout (>5.0s) from pytest-timeout" in proc.stdout
    assert time.monotonic() - started < 120
    grandchild = int(pid_file.read_text())
    deadline = time.monotonic() + 10
    while _running(grandchild) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _running(grandchild), "the hung test's grandchild outlived it"
