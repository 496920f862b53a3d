"""Datasets read through `tfds.load`: the TFDS catalog and the embedded builders alike."""

from __future__ import annotations

import contextlib
import dataclasses
import urllib.parse

import tensorflow as tf
import tensorflow_datasets as tfds

from dlrecipes import console, online, progress
from dlrecipes.data import builders
from dlrecipes.data.splits import DataInfo, Splits
from dlrecipes.errors import DatasetError

# What `tfds.load` raises for a dataset it cannot find or fetch.
TFDS_LOAD_ERRORS = (
    tfds.core.registered.DatasetNotFoundError,
    tfds.download.DownloadError,
    tfds.core.download.download_manager.NonMatchingChecksumError,
)


@dataclasses.dataclass(frozen=True)
class TfdsSource:
    """Which TFDS split strings make our train / validation / test splits."""

    train: str = "train[:90%]"
    validation: str = "train[90%:]"
    test: str = "test"
    embedded: bool = False


# Catalog sets that need a download once; embedded ones come with a package (see builders).
SOURCES: dict[str, TfdsSource] = {
    "mnist": TfdsSource(),
    "fashion_mnist": TfdsSource(),
    "cifar10": TfdsSource(),
    "cifar100": TfdsSource(),
    "tf_flowers": TfdsSource(train="train[:80%]", validation="train[80%:90%]", test="train[90%:]"),
    **{
        name: TfdsSource(train="train", validation="validation", test="test", embedded=True)
        for name in builders.EMBEDDED
        if name not in builders.TEXT
    },
}


def load_tfds(
    name: str,
    data_dir: str | None = None,
    download: bool = True,
    sources: dict[str, TfdsSource] | None = None,
) -> Splits:
    """Loads `name` with `tfds.load` as `(input, label)` pairs with int64 labels.

    Inputs are uint8 images, or strings for a dataset whose input feature is text. `sources`
    is the registry `name` is looked up in (default: the image sets, `SOURCES`).
    """
    sources = SOURCES if sources is None else sources
    source = sources[name]
    embedded = ", ".join(n for n, s in sources.items() if s.embedded)
    where = data_dir or "~/tensorflow_datasets"
    if download and not source.embedded and not _prepared(name, data_dir) and not _online(name):
        hosts = ", ".join(urllib.parse.urlsplit(url).netloc for url in download_urls(name))
        raise DatasetError(
            f"Dataset {name!r} is not prepared under data_dir={where} and this machine cannot "
            f"reach {hosts} to download it (directly, or through the "
            f"proxy HTTPS_PROXY / HTTP_PROXY name). {_how_to_get(name, embedded)}"
        )
    if source.embedded:
        console.prepare_embedded(tfds.builder(name, data_dir=data_dir), progress.interactive())
    try:
        with console.tfds_bars(progress.interactive()):  # a catalog download's bars, too
            datasets, info = tfds.load(
                name,
                split=[source.train, source.validation, source.test],
                data_dir=data_dir,
                download=download,
                as_supervised=True,
                with_info=True,
            )
    # Not on disk (AssertionError from `as_dataset`), unknown to this TFDS version, or the
    # download failed; anything else is a bug and keeps its traceback.
    except (AssertionError, OSError, tf.errors.OpError, *TFDS_LOAD_ERRORS) as err:
        if source.embedded:
            raise
        raise DatasetError(
            f"Dataset {name!r} could not be loaded from data_dir={where} "
            f"({type(err).__name__}: {str(err)[:300]}). {_how_to_get(name, embedded)}"
        ) from err
    train, validation, test = datasets
    label = info.features["label"]
    image = info.features[info.supervised_keys[0]]
    cast = _cast_text if isinstance(image, tfds.features.Text) else _cast
    splits = info.splits
    counts = {}
    for ours, theirs in (
        ("train", source.train),
        ("validation", source.validation),
        ("test", source.test),
    ):
        with contextlib.suppress(KeyError, ValueError):  # mocked or unprepared metadata
            counts[ours] = int(splits[theirs].num_examples)
    return Splits(
        train=train.map(cast, num_parallel_calls=tf.data.AUTOTUNE),
        validation=validation.map(cast, num_parallel_calls=tf.data.AUTOTUNE),
        test=test.map(cast, num_parallel_calls=tf.data.AUTOTUNE),
        info=DataInfo(
            name=name,
            class_names=tuple(label.names),
            input_shape=tuple(image.shape),
            num_examples=counts,
        ),
    )


def _cast(image: tf.Tensor, label: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    return tf.cast(image, tf.uint8), tf.cast(label, tf.int64)


def _cast_text(text: tf.Tensor, label: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    return text, tf.cast(label, tf.int64)


def _how_to_get(name: str, embedded: str) -> str:
    return (
        f'On a machine with internet, run once: python -c "import tensorflow_datasets as tfds; '
        f"tfds.load('{name}', data_dir='DIR')\", copy DIR here and pass --data-dir DIR. "
        f"Or use an embedded dataset, which TFDS need not download: --dataset {embedded}."
    )


def _prepared(name: str, data_dir: str | None) -> bool:
    try:
        with console.absl_errors_only():
            return tfds.builder(name, data_dir=data_dir).is_prepared()
    except Exception:  # noqa: BLE001 - a builder that cannot even be made is not prepared
        return False


def _online(name: str) -> bool:
    """True when every host TFDS would download `name` from answers, through the proxy the
    environment names; offline, a download would only retry for minutes."""
    return all(online.reachable(url) for url in download_urls(name))


def download_urls(name: str) -> list[str]:
    """One URL per host that TFDS downloads the catalog dataset `name` from (its checksums)."""
    by_host = {}
    for url in tfds.builder_cls(name).url_infos or {}:
        by_host.setdefault(urllib.parse.urlsplit(url)[:2], url)
    return list(by_host.values())
