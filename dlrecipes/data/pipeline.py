"""tf.data input pipelines: resize, cache, shuffle, batch, augment, prefetch."""

from __future__ import annotations

import dataclasses

import keras
import tensorflow as tf

from dlrecipes.data.splits import Splits

AUTOTUNE = tf.data.AUTOTUNE


@dataclasses.dataclass(frozen=True)
class Augment:
    """Random training-time augmentation, done with Keras preprocessing layers.

    Args:
        rotation: largest rotation, as a fraction of a full turn (0.05 = 18 degrees).
        translation: largest shift, as a fraction of height and width.
        zoom: largest zoom in or out, as a fraction.
        flip: horizontal flips; off for digits and text, where a mirror image is another class.
        contrast: largest contrast change, as a fraction.
    """

    rotation: float = 0.0
    translation: float = 0.0
    zoom: float = 0.0
    flip: bool = False
    contrast: float = 0.0

    def layers(self, seed: int) -> list[keras.layers.Layer]:
        """The preprocessing layers this augmentation is made of (empty when it is off), each
        seeded apart (`seed`, `seed + 1`, ...): on one seed, rotation, shift and zoom would draw
        the same random numbers and move together."""
        t = self.translation
        wanted = [
            (self.flip, lambda s: keras.layers.RandomFlip("horizontal", seed=s)),
            (
                self.rotation,
                lambda s: keras.layers.RandomRotation(self.rotation, fill_mode="constant", seed=s),
            ),
            (t, lambda s: keras.layers.RandomTranslation(t, t, fill_mode="constant", seed=s)),
            (self.zoom, lambda s: keras.layers.RandomZoom(self.zoom, fill_mode="constant", seed=s)),
            (self.contrast, lambda s: keras.layers.RandomContrast(self.contrast, seed=s)),
        ]
        makers = [make for on, make in wanted if on]
        return [make(seed + i) for i, make in enumerate(makers)]


def prepare(
    ds: tf.data.Dataset,
    batch_size: int,
    *,
    training: bool,
    augment: Augment | None = None,
    seed: int = 0,
    cache: bool = True,
    shuffle_buffer: int = 10_000,
) -> tf.data.Dataset:
    """Turns `(uint8 image, label)` pairs into batches ready for `fit`.

    Images stay uint8 after augmentation, so the model always sees raw pixels, exactly as it will
    once exported. Augmentation runs only when `training` is true.
    """
    if cache:
        ds = ds.cache()
    if training:
        ds = ds.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
    ds = ds.batch(batch_size, num_parallel_calls=AUTOTUNE)
    layers = augment.layers(seed) if (training and augment is not None) else []
    if layers:
        pipeline = keras.Sequential(layers)

        def apply(images: tf.Tensor, labels: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
            out = pipeline(tf.cast(images, tf.float32), training=True)
            return tf.cast(tf.clip_by_value(tf.round(out), 0, 255), tf.uint8), labels

        ds = ds.map(apply, num_parallel_calls=AUTOTUNE)
    return shard_by_data(ds.prefetch(AUTOTUNE))


def shard_by_data(ds: tf.data.Dataset) -> tf.data.Dataset:
    """`ds`, split across the processes of a multi-host run element by element, not by file.

    Every process reads the same pipeline (same seed, same order) and keeps its own share of each
    global batch, so no process runs short when the data sits in fewer files than processes. The
    option is read only when a multi-worker strategy distributes the dataset.
    """
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return ds.with_options(options)


def count_batches(ds: tf.data.Dataset) -> int:
    """Batches per epoch: the cardinality when tf.data knows it, else one pass to count."""
    n = int(ds.cardinality())
    if n >= 0:
        return n
    return int(ds.reduce(tf.constant(0, tf.int64), lambda total, _: total + 1))


def resize(splits: Splits, image_size: tuple[int, int]) -> Splits:
    """Resizes every image of every split to `image_size` (antialiased, still uint8)."""

    def one(image: tf.Tensor, label: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        out = tf.image.resize(image, image_size, antialias=True)
        return tf.cast(tf.clip_by_value(tf.round(out), 0, 255), tf.uint8), label

    channels = splits.info.input_shape[-1]
    resized = splits.map(lambda ds, _: ds.map(one, num_parallel_calls=AUTOTUNE))
    info = dataclasses.replace(splits.info, input_shape=(*image_size, channels))
    return dataclasses.replace(resized, info=info)
