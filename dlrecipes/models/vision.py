"""Image classifiers as plain functions that return an uncompiled `keras.Model`.

Every model takes raw uint8 images: rescaling to [0, 1] is its first layer, so an exported model
needs no preprocessing from its caller.
"""

from __future__ import annotations

from collections.abc import Sequence

import keras
from keras import layers

from dlrecipes.errors import ConfigError


def regularizer(l1: float = 0.0, l2: float = 0.0) -> keras.regularizers.Regularizer | None:
    """An L1 / L2 weight penalty, or None when both are zero."""
    return keras.regularizers.L1L2(l1=l1, l2=l2) if (l1 or l2) else None


def _conv_bn_act(
    x, width: int, *, batch_norm: bool, bn_momentum: float, activation: str, reg, strides: int = 1
):
    x = layers.Conv2D(
        width, 3, strides=strides, padding="same", use_bias=not batch_norm, kernel_regularizer=reg
    )(x)
    if batch_norm:
        # Momentum 0.9, not Keras' 0.99: on a few thousand images an epoch is only ~30 steps,
        # and the slower moving statistics leave evaluation at chance for several epochs.
        x = layers.BatchNormalization(momentum=bn_momentum)(x)
    return layers.Activation(activation)(x)


HEADS = ("flatten", "avg")


def _head(x, num_classes: int, dropout: float, reg, head: str):
    if head not in HEADS:
        raise ValueError(f"head={head!r} is not one of {HEADS}.")
    # `flatten` keeps where a feature fired: on digits it learns in fewer epochs than `avg`
    # (global average pooling), but overfits a small training set sooner.
    x = layers.Flatten()(x) if head == "flatten" else layers.GlobalAveragePooling2D()(x)
    if dropout:
        x = layers.Dropout(dropout)(x)
    # float32 output keeps the softmax stable under a mixed-precision policy.
    return layers.Dense(
        num_classes,
        activation="softmax",
        kernel_regularizer=reg,
        dtype="float32",
        name="predictions",
    )(x)


def _check_stages(input_shape: Sequence[int], widths: Sequence[int]) -> None:
    """Refuses more stages than the image has pixels for: each stage after the first halves it
    (2x2 max pooling, rounding down), and a side of 0 pixels is no image."""
    side = min(input_shape[:2])
    sizes = [side]
    while sizes[-1] >= 2:
        sizes.append(sizes[-1] // 2)
    if len(widths) > len(sizes):
        halvings = len(widths) - 1
        raise ConfigError(
            f"--widths {','.join(map(str, widths))} asks for {len(widths)} stages, which halve "
            f"the image {halvings} times, but a {side}-pixel side is 1 pixel after "
            f"{len(sizes) - 1} halvings ({' -> '.join(map(str, sizes))}): give at most "
            f"{len(sizes)} widths (e.g. --widths {','.join(map(str, widths[: len(sizes)]))}), "
            "or larger images (--image-size)."
        )


def convnet(
    input_shape: Sequence[int],
    num_classes: int,
    *,
    widths: Sequence[int] = (32, 64, 128),
    convs_per_stage: int = 2,
    dropout: float = 0.3,
    batch_norm: bool = True,
    bn_momentum: float = 0.9,
    activation: str = "relu",
    head: str = "avg",
    l1: float = 0.0,
    l2: float = 0.0,
) -> keras.Model:
    """A VGG-style convnet: stages of 3x3 conv (+ batch norm) blocks, max-pooled between stages.

    Args:
        input_shape: `(height, width, channels)` of one raw image.
        num_classes: size of the softmax output.
        widths: filters per stage; depth is `len(widths) * convs_per_stage` conv layers.
        convs_per_stage: conv layers in each stage.
        dropout: dropout rate before the classifier.
        batch_norm: batch normalization after every conv.
        bn_momentum: moving-average momentum of batch norm.
        activation: any Keras activation name.
        head: `flatten` or `avg` (global average pooling) before the classifier.
        l1, l2: weight penalties on every kernel.

    Returns:
        An uncompiled model from uint8 images to class probabilities.

    Example:

    >>> model = convnet((28, 28, 1), 10)
    >>> model.output_shape
    (None, 10)
    """
    _check_stages(input_shape, widths)
    reg = regularizer(l1, l2)
    inputs = keras.Input(shape=tuple(input_shape), dtype="uint8", name="image")
    x = layers.Rescaling(1.0 / 255)(inputs)
    for stage, width in enumerate(widths):
        if stage:
            x = layers.MaxPooling2D()(x)
        for _ in range(convs_per_stage):
            x = _conv_bn_act(
                x,
                width,
                batch_norm=batch_norm,
                bn_momentum=bn_momentum,
                activation=activation,
                reg=reg,
            )
    return keras.Model(inputs, _head(x, num_classes, dropout, reg, head), name="convnet")


def resnet(
    input_shape: Sequence[int],
    num_classes: int,
    *,
    widths: Sequence[int] = (32, 64, 128),
    blocks_per_stage: int = 2,
    dropout: float = 0.2,
    batch_norm: bool = True,
    bn_momentum: float = 0.9,
    activation: str = "relu",
    head: str = "avg",
    l1: float = 0.0,
    l2: float = 0.0,
) -> keras.Model:
    """A small ResNet: a conv stem, then stages of two-conv residual blocks with batch norm.

    The first block of every stage after the first halves the resolution with a strided conv and
    projects the shortcut with a 1x1 conv. Arguments are as for `convnet`, with `blocks_per_stage`
    residual blocks (two convs each) per stage.
    """
    reg = regularizer(l1, l2)
    norm = dict(batch_norm=batch_norm, bn_momentum=bn_momentum, activation=activation, reg=reg)
    inputs = keras.Input(shape=tuple(input_shape), dtype="uint8", name="image")
    x = layers.Rescaling(1.0 / 255)(inputs)
    x = _conv_bn_act(x, widths[0], **norm)
    for stage, width in enumerate(widths):
        for block in range(blocks_per_stage):
            strides = 2 if (stage and not block) else 1
            shortcut = x
            y = _conv_bn_act(x, width, strides=strides, **norm)
            y = layers.Conv2D(
                width, 3, padding="same", use_bias=not batch_norm, kernel_regularizer=reg
            )(y)
            if batch_norm:
                y = layers.BatchNormalization(momentum=bn_momentum)(y)
            if strides != 1 or shortcut.shape[-1] != width:
                shortcut = layers.Conv2D(
                    width, 1, strides=strides, use_bias=False, kernel_regularizer=reg
                )(shortcut)
            x = layers.Activation(activation)(layers.Add()([shortcut, y]))
    return keras.Model(inputs, _head(x, num_classes, dropout, reg, head), name="resnet")


ARCHITECTURES = {"convnet": convnet, "resnet": resnet}
