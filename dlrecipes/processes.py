"""Child processes of the launchers (a tuning chief and its workers, the processes of a multi-host
run): started with their output echoed line by line under a `[name]` prefix, and stopped.

Plain process management; keras-tuner and TensorFlow do the distributed work themselves.
"""

from __future__ import annotations

import datetime
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Sequence
from pathlib import Path


def say(message: str) -> None:
    """One line of the launcher's own, `[launch] ...`."""
    print(f"[launch] {message}", flush=True)


def free_ports(count: int, host: str = "127.0.0.1") -> list[int]:
    """`count` distinct TCP ports free on `host` right now: all bound at once, then released."""
    sockets = []
    try:
        for _ in range(count):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sockets.append(s)
            s.bind((host, 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


class Child:
    """One child process, its output echoed line by line with a `[name]` prefix.

    Args:
        name: the prefix of its lines (`chief`, `worker1`, ...).
        command: what it runs.
        env: its whole environment.
        log: a file its output is also appended to, under a `=== <time> <name>` line.
        on_line: called with every line it prints, before the line is echoed.
        grace: seconds `stop` waits after SIGTERM before it sends SIGKILL.
    """

    def __init__(
        self,
        name: str,
        command: Sequence[str],
        env: dict[str, str],
        *,
        log: Path | None = None,
        on_line: Callable[[str], None] | None = None,
        grace: float = 10.0,
    ) -> None:
        self.name = name
        self.grace = grace
        self._on_line = on_line
        self._log = log.open("a") if log else None
        if self._log:
            stamp = datetime.datetime.now().isoformat(timespec="seconds")
            self._log.write(f"=== {stamp} {name}\n")
        self.popen = subprocess.Popen(
            list(command),
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            bufsize=1,
        )
        self._echo = threading.Thread(target=self._pump, daemon=True)
        self._echo.start()
        say(f"started {name} (pid {self.popen.pid})" + (f", log {log}" if log else ""))

    def _pump(self) -> None:
        for line in self.popen.stdout:
            if self._on_line:
                self._on_line(line)
            if self._log:
                self._log.write(line)
                self._log.flush()
            sys.stdout.write(f"[{self.name}] {line}")
            sys.stdout.flush()

    def poll(self) -> int | None:
        return self.popen.poll()

    def wait(self, timeout: float | None = None) -> int:
        """Its exit code; raises `subprocess.TimeoutExpired` past `timeout` seconds."""
        return self.popen.wait(timeout=timeout)

    def stop(self) -> None:
        """Ends it if it still runs (SIGTERM, then SIGKILL after `grace` seconds)."""
        if self.popen.poll() is None:
            self.popen.terminate()
            try:
                self.popen.wait(timeout=self.grace)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()
        self._echo.join(timeout=5)
        if self._log:
            self._log.close()
