"""`digits`: the 1,797 real 8x8 handwritten digits that scikit-learn ships, as a TFDS dataset.

`sklearn.datasets.load_digits()` is the test part of the UCI "optical recognition of handwritten
digits" set: 32x32 bitmaps written by 13 people, each 4x4 block counted into one pixel of 0-16.
Here every pixel is scaled to 0-255 (`round(v * 255 / 16)`) and stored as an 8x8x1 uint8 image,
so the set looks like any other image dataset. It is split once, stratified per class with seed
0, into 60% train, 10% validation and 30% test: 1,078 / 180 / 539 digits, at least 104 training
digits of every class. The test split is larger than usual so that few-label studies on this
small set can tell models apart.
"""

from __future__ import annotations

import numpy as np
import tensorflow_datasets as tfds

from dlrecipes.data.labelled import stratified_split

SPLIT_SEED = 0
FRACTIONS = (0.1, 0.3)  # validation, test


def images_and_labels() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's digits as `(n, 8, 8, 1)` uint8 images in 0-255 and int64 labels."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = np.round(digits.images * (255 / 16)).astype(np.uint8)[..., None]
    return images, digits.target.astype(np.int64)


class Digits(tfds.core.GeneratorBasedBuilder):
    """scikit-learn's 1,797 8x8 digits, split 60 / 10 / 30 per class."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "First release: 0-16 scaled to 0-255, stratified 60/10/30, seed 0."}

    def _info(self) -> tfds.core.DatasetInfo:
        return self.dataset_info_from_configs(
            features=tfds.features.FeaturesDict(
                {
                    "image": tfds.features.Image(shape=(8, 8, 1)),
                    "label": tfds.features.ClassLabel(num_classes=10),
                }
            ),
            supervised_keys=("image", "label"),
            homepage="https://scikit-learn.org/stable/datasets/toy_dataset.html#digits-dataset",
        )

    def _split_generators(self, dl_manager: tfds.download.DownloadManager):
        del dl_manager  # the data ships inside the scikit-learn wheel: nothing to download
        images, labels = images_and_labels()
        splits = stratified_split(labels, FRACTIONS, SPLIT_SEED)
        return {name: self._generate_examples(images, labels, idx) for name, idx in splits.items()}

    def _generate_examples(self, images: np.ndarray, labels: np.ndarray, idx: np.ndarray):
        for i in idx:
            yield int(i), {"image": images[i], "label": int(labels[i])}
