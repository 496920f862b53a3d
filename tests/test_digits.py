"""The embedded `digits` set (scikit-learn's 8x8 digits) and few-label training subsets."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
import tensorflow as tf

from dlrecipes import data
from dlrecipes.data.builders import digits


def _arrays(ds: tf.data.Dataset) -> tuple[np.ndarray, np.ndarray]:
    images, labels = zip(*ds.batch(2048).as_numpy_iterator(), strict=True)
    return np.concatenate(images), np.concatenate(labels)


def test_digits_are_scikit_learns_split_once_and_stratified():
    splits = data.load("digits")
    assert splits.info.input_shape == (8, 8, 1) and splits.info.num_classes == 10
    assert data.kind("digits") == "images" and data.kind("rt_snippets") == "text"
    seen, sizes = set(), {}
    for name in ("train", "validation", "test"):
        images, labels = _arrays(getattr(splits, name))
        assert images.dtype == np.uint8 and images.shape[1:] == (8, 8, 1)
        sizes[name] = np.bincount(labels, minlength=10)
        hashes = {
            hashlib.sha1(im.tobytes() + bytes([y])).hexdigest()
            for im, y in zip(images, labels, strict=True)
        }
        assert not seen & hashes
        seen |= hashes
    assert {k: int(v.sum()) for k, v in sizes.items()} == {
        "train": 1078,
        "validation": 180,
        "test": 539,
    }
    assert sizes["test"].min() >= 52 and sizes["train"].min() == 104
    # 0-16 counts scaled to 0-255: the 17 levels of scikit-learn's digits, and nothing else.
    images, _ = digits.images_and_labels()
    assert images.max() == 255 and sorted(np.unique(images)) == [
        round(v * 255 / 16) for v in range(17)
    ]


def test_keep_per_class_is_stratified_seeded_and_refuses_too_many():
    labels = np.repeat(np.arange(3), [5, 7, 9])
    ds = tf.data.Dataset.from_tensor_slices((np.arange(21), labels))
    names = ("a", "b", "c")
    kept = _arrays(data.keep_per_class(ds, 4, seed=1, class_names=names))
    assert np.bincount(kept[1]).tolist() == [4, 4, 4]
    assert list(kept[0]) == sorted(kept[0])  # the kept examples keep their order
    again = _arrays(data.keep_per_class(ds, 4, seed=1, class_names=names))
    other = _arrays(data.keep_per_class(ds, 4, seed=2, class_names=names))
    assert np.array_equal(again[0], kept[0]) and not np.array_equal(other[0], kept[0])
    with pytest.raises(data.DatasetError, match="--labels-per-class 6 .* 5 examples of class 'a'"):
        data.keep_per_class(ds, 6, seed=0, class_names=names, what="toy")
