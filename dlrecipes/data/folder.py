"""`folder:PATH`: a user's own images, one sub-folder per class."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import tensorflow as tf

from dlrecipes.data.splits import DataInfo, Splits
from dlrecipes.errors import DatasetError

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif"}


def load_folder(
    root: str | Path,
    image_size: tuple[int, int] | None,
    channels: int = 3,
    fractions: tuple[float, float] = (0.1, 0.1),
    seed: int = 0,
) -> Splits:
    """Reads `root/<class>/<image>` files and splits each class deterministically.

    Args:
        root: folder with one sub-folder per class; class names are the sub-folder names, sorted.
        image_size: `(height, width)` every image is resized to (required: files differ in size).
        channels: 1 for grayscale, 3 for RGB.
        fractions: the validation and test fractions taken from every class.
        seed: seed of the per-class shuffle that decides the split.
    """
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"folder:{root} does not exist or is not a directory.")
    if image_size is None:
        raise DatasetError(
            f"folder:{root} needs an image size because files can differ: pass --image-size 64,64."
        )
    classes = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if len(classes) < 2:
        raise DatasetError(
            f"folder:{root} must hold one sub-folder per class (at least two); found {classes}."
        )
    rng = np.random.default_rng(seed)
    parts: dict[str, list[tuple[str, int]]] = {"train": [], "validation": [], "test": []}
    for label, name in enumerate(classes):
        files = sorted(
            str(p) for p in (root / name).rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES
        )
        if len(files) < 3:
            raise DatasetError(
                f"folder:{root}/{name} has {len(files)} images; every class needs at least 3 "
                f"(one each for train, validation and test). Image types read: "
                f"{sorted(IMAGE_SUFFIXES)}."
            )
        files = [files[i] for i in rng.permutation(len(files))]
        n_val = max(1, round(fractions[0] * len(files)))
        n_test = max(1, round(fractions[1] * len(files)))
        parts["validation"] += [(f, label) for f in files[:n_val]]
        parts["test"] += [(f, label) for f in files[n_val : n_val + n_test]]
        parts["train"] += [(f, label) for f in files[n_val + n_test :]]

    def decode(path: tf.Tensor, label: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        image = tf.io.decode_image(
            tf.io.read_file(path), channels=channels, expand_animations=False
        )
        image = tf.image.resize(image, image_size, antialias=True)
        return tf.cast(tf.clip_by_value(tf.round(image), 0, 255), tf.uint8), label

    def dataset(items: list[tuple[str, int]]) -> tf.data.Dataset:
        paths, labels = zip(*items, strict=True)
        ds = tf.data.Dataset.from_tensor_slices((list(paths), np.asarray(labels, np.int64)))
        return ds.map(decode, num_parallel_calls=tf.data.AUTOTUNE)

    return Splits(
        train=dataset(parts["train"]),
        validation=dataset(parts["validation"]),
        test=dataset(parts["test"]),
        info=DataInfo(
            name=f"folder:{root}",
            class_names=tuple(classes),
            input_shape=(*image_size, channels),
            num_examples={k: len(v) for k, v in parts.items()},
        ),
    )
