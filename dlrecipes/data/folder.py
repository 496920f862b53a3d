"""`folder:PATH`: a user's own images, one sub-folder per class."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import tensorflow as tf

from dlrecipes.data.splits import DataInfo, Splits
from dlrecipes.errors import DatasetError, DataWarning
from dlrecipes.plurals import count

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif"}


class ImageDataWarning(DataWarning):
    """Files of a `folder:` dataset were left out; the message names them."""


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

    Every file is decoded once before anything trains: files that are no readable image (and
    files of other types) are left out with an `ImageDataWarning` naming them.
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
    found = {name: _visible_files(root / name) for name in classes}
    everything = [p for paths in found.values() for p in paths]
    other = [p for p in everything if p.suffix.lower() not in IMAGE_SUFFIXES]
    if other:
        types = ", ".join(sorted(IMAGE_SUFFIXES))
        _warn(root, f"left out {count(len(other), 'file')} not named as an image ({types})", other)
    bad = unreadable([p for p in everything if p.suffix.lower() in IMAGE_SUFFIXES], channels)
    if bad:
        _warn(root, f"left out {count(len(bad), 'file')} that cannot be decoded as an image", bad)
    skipped = set(other) | set(bad)
    rng = np.random.default_rng(seed)
    parts: dict[str, list[tuple[str, int]]] = {"train": [], "validation": [], "test": []}
    for label, name in enumerate(classes):
        files = [str(p) for p in found[name] if p not in skipped]
        if len(files) < 3:
            raise DatasetError(
                f"folder:{root}/{name} has {count(len(files), 'readable image')}; every class "
                "needs at least 3 (one each for train, validation and test). Image types read: "
                f"{sorted(IMAGE_SUFFIXES)}."
            )
        files = [files[i] for i in rng.permutation(len(files))]
        n_val = max(1, round(fractions[0] * len(files)))
        n_test = max(1, round(fractions[1] * len(files)))
        parts["validation"] += [(f, label) for f in files[:n_val]]
        parts["test"] += [(f, label) for f in files[n_val : n_val + n_test]]
        parts["train"] += [(f, label) for f in files[n_val + n_test :]]

    def decode(path: tf.Tensor, label: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        image = tf.image.resize(_decode(path, channels), image_size, antialias=True)
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


def unreadable(paths: Sequence[Path], channels: int = 3) -> list[Path]:
    """The files among `paths` that TensorFlow cannot decode as an image (decoded in parallel)."""
    if not paths:
        return []
    names = tf.data.Dataset.from_tensor_slices([str(p) for p in paths])
    decoded = names.map(
        lambda p: (p, tf.shape(_decode(p, channels))), num_parallel_calls=tf.data.AUTOTUNE
    )
    ok = {p.decode() for p, _ in decoded.ignore_errors().as_numpy_iterator()}
    return [p for p in paths if str(p) not in ok]


def _visible_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file() and not p.name.startswith("."))


def _decode(path: tf.Tensor, channels: int) -> tf.Tensor:
    return tf.io.decode_image(tf.io.read_file(path), channels=channels, expand_animations=False)


def _warn(root: Path, what: str, paths: Sequence[Path]) -> None:
    names = [str(p.relative_to(root)) for p in paths]
    shown = ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
    warnings.warn(
        f"folder:{root}: {what}: {shown}. Remove them to silence this warning.",
        ImageDataWarning,
        stacklevel=3,
    )
