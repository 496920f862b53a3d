"""A new head on a pretrained base, and which of the base's layers train in each phase.

`classifier` puts a dropout + softmax head on a base (`dlrecipes.models.bases`) and, for images,
everything the base needs in front of it inside the model: the resize into the base's input, the
channels it reads and its own pixel preprocessing; an image model takes uint8 images of the
dataset's size. A BERT classifier takes WordPiece ids, which XLA compiles: `tokenizer` makes them
from strings, in the tf.data pipeline for training (`dlrecipes.data.tokens`) and in front of the
trained model for saving (`dlrecipes.models.text.end_to_end`). Either reloads from `model.keras`
in safe mode with built-in Keras and keras-hub layers only.

`unfreeze` decides which layers train: the new head, and the top N *units* of the base (layers
holding weights, batch norm aside; a transformer block counts as one), or all of them. Batch
norm stays frozen, and that is what keeps it in inference mode: in Keras 3 the `training` flag
of `fit` reaches every layer of a nested model, so calling the base with `training=False` would
not (keras-team/keras#20285), but a frozen BatchNormalization normalizes with its moving
statistics and never updates them. The base's dropout follows `fit`'s flag like any layer's.

Example:

>>> base = bases.load("tiny-bert")
>>> model = transfer.classifier(base, info, dropout=0.1)  # WordPiece ids -> probabilities
>>> strings = text.end_to_end(transfer.tokenizer(base, 64), model)
>>> transfer.unfreeze(model, 0)      # phase 1: only the head trains
>>> transfer.unfreeze(model, "all")  # phase 2: the head and every unit of the base
"""

from __future__ import annotations

import math

import keras
import keras_hub
from keras import layers, ops

from dlrecipes.data import Augment, DataInfo
from dlrecipes.data.tokens import PAD_ID
from dlrecipes.errors import ConfigError
from dlrecipes.models.bases import CAFFE_MEAN, NAME, Base


def classifier(
    base: Base,
    info: DataInfo,
    *,
    dropout: float = 0.1,
    margin: float = 0.0,
    augment: Augment | None = None,
    seed: int = 0,
) -> keras.Model:
    """Inputs -> what the base needs -> base -> pooled features -> dropout -> softmax.

    Args:
        base: the pretrained (or freshly initialised) base.
        info: the dataset's info: input shape and classes.
        dropout: dropout rate before the new softmax layer.
        margin: for images, the border left around the image inside the base's input, as a
            fraction of its side (MNIST digits fill a 20x20 box centred in 28x28: 4/28).
        augment: random image augmentation, applied in training only, after the resize.
        seed: seed of the augmentation.

    Returns:
        An uncompiled model to class probabilities, from a batch of `tokenizer`'s right-padded
        ids of any length (BERT bases, where the padding mask follows from the ids, and saved
        text models on ids), of raw strings (an older saved text model that tokenizes inside),
        or of uint8 images.
    """
    if base.reads == "tokens":
        inputs = keras.Input(shape=(None,), dtype="int32", name="token_ids")
        mask = ops.not_equal(inputs, PAD_ID)
        vectors = base.model(
            {"token_ids": inputs, "segment_ids": ops.zeros_like(inputs), "padding_mask": mask}
        )
        weights = ops.expand_dims(ops.cast(mask, vectors.dtype), -1)
        features = ops.sum(vectors * weights, axis=1) / ops.maximum(ops.sum(weights, axis=1), 1.0)
    elif base.reads == "ids":
        inputs = keras.Input(shape=(None,), dtype="int32", name="token_ids")
        features = base.model(inputs)
    elif base.reads == "strings":
        inputs = keras.Input(shape=(), dtype="string", name="text")
        features = base.model(inputs)
    else:
        inputs = keras.Input(shape=tuple(info.input_shape), dtype="uint8", name="image")
        x = _fit_images(inputs, base, margin)
        for layer in augment.layers(seed) if augment else []:
            x = layer(x)
        if base.caffe:
            x = ops.flip(x, axis=-1)  # RGB -> BGR
            x = layers.Normalization(mean=CAFFE_MEAN, variance=(1.0, 1.0, 1.0))(x)
        if base.model.inputs[0].dtype == "uint8":
            x = ops.cast(ops.round(ops.clip(x, 0, 255)), "uint8")
        features = base.model(x)
        if len(features.shape) == 4:
            features = layers.GlobalAveragePooling2D(name="pool")(features)
    x = layers.Dropout(dropout, name="head_dropout")(features) if dropout else features
    # float32 output keeps the softmax stable under a mixed-precision policy.
    outputs = layers.Dense(
        info.num_classes, activation="softmax", dtype="float32", name="predictions"
    )(x)
    return keras.Model(inputs, outputs, name="fine_tuned")


def tokenizer(base: Base, sequence_length: int) -> keras.layers.Layer:
    """Strings -> the ids a text base reads, right-padded with `dlrecipes.data.tokens.PAD_ID`.

    For a BERT base, its WordPiece ids packed as `[CLS] ... [SEP]`; for a saved text model on
    ids, the tokenizer saved with it (which keeps its own sequence length).

    Args:
        base: a base that reads `tokens` or `ids`.
        sequence_length: word pieces per text, `[CLS]` and `[SEP]` included; longer texts are
            cut, shorter ones padded with `[PAD]` (id 0).

    Returns:
        A layer from a batch of strings to `(batch, sequence_length)` integer ids, for
        `dlrecipes.data.tokens.batches` and `dlrecipes.models.text.end_to_end`.
    """
    if base.reads == "ids":
        return base.tokenizer
    if base.reads != "tokens":
        raise ValueError(f"A base that reads {base.reads} has no tokenizer.")
    vocabulary = list(base.vocabulary)
    if vocabulary.index("[PAD]") != PAD_ID:
        raise ValueError(f"[PAD] must have id {PAD_ID}; it has {vocabulary.index('[PAD]')}.")
    texts = keras.Input(shape=(), dtype="string", name="text")
    tokenize = keras_hub.tokenizers.WordPieceTokenizer(
        vocabulary=vocabulary, lowercase=True, strip_accents=True, name="wordpiece"
    )
    pack = keras_hub.layers.StartEndPacker(
        sequence_length=sequence_length,
        start_value=vocabulary.index("[CLS]"),
        end_value=vocabulary.index("[SEP]"),
        pad_value=PAD_ID,
        name="pack",
    )
    # String ops: Keras then compiles a model holding them without XLA (keras-hub's layers do
    # not say so themselves, and the flag is not saved: a reloaded one needs jit_compile=False).
    for layer in (tokenize, pack):
        layer.supports_jit = False
    return keras.Model(texts, pack(tokenize(texts)), name="tokenizer")


def _fit_images(images, base: Base, margin: float):
    """uint8 images of any size -> float pixels in 0-255 at the base's input size and channels.

    The image is resized to the base's side minus the margin and padded with zeros back to it.
    """
    height, width, channels = base.model.inputs[0].shape[1:]
    x = ops.cast(images, "float32")
    pad_h, pad_w = round(margin * height), round(margin * width)
    inner = (height - 2 * pad_h, width - 2 * pad_w)
    if tuple(images.shape[1:3]) != inner:
        x = layers.Resizing(*inner, antialias=True, name="resize")(x)
    if pad_h or pad_w:
        x = layers.ZeroPadding2D(((pad_h, pad_h), (pad_w, pad_w)), name="margin")(x)
    if images.shape[-1] == 1 and channels == 3:
        x = ops.repeat(x, 3, axis=-1)
    elif images.shape[-1] == 3 and channels == 1:
        x = ops.image.rgb_to_grayscale(x)
    return x


def leaves(model: keras.Model) -> list[keras.layers.Layer]:
    """The layers of `model`, nested models opened up, in the order the data flows."""
    out = []
    for layer in model.layers:
        out.extend(leaves(layer) if isinstance(layer, keras.Model) else [layer])
    return out


def base_of(model: keras.Model) -> keras.Model:
    """The base inside a `classifier`, or inside the classifier that `text.end_to_end` wraps."""
    names = {layer.name: layer for layer in model.layers}
    if NAME in names:
        return names[NAME]
    nested = [layer for layer in model.layers if isinstance(layer, keras.Model)]
    if nested:  # the trained model comes last, after the tokenizer
        return base_of(nested[-1])
    raise ValueError(f"{model.name} holds no base (a layer named {NAME!r}).")


def units(model: keras.Model) -> list[keras.layers.Layer]:
    """The units of the base inside `model`, bottom to top: layers that hold trainable weights,
    batch norm aside; a composite layer (a transformer block) counts as one.

    Sets every layer of the base trainable to find them; `unfreeze` sets the flags afterwards.
    """
    base = base_of(model)
    _set_trainable(base)
    return [
        layer
        for layer in leaves(base)
        if not isinstance(layer, keras.layers.BatchNormalization) and layer.trainable_weights
    ]


def _set_trainable(model: keras.Model) -> None:
    """Makes every layer of `model` trainable. A functional model's `trainable = True` alone
    does not reach the layers inside it that were frozen one by one."""
    model.trainable = True
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            _set_trainable(layer)
        else:
            layer.trainable = True


def depth(top: str | int, model: keras.Model) -> int:
    """How many units `top` (`all`, or a count from the top) unfreezes in `model`'s base.

    Raises:
        ConfigError: `top` is more than the base has.
    """
    return _count(top, len(units(model)))


def _count(top: str | int, available: int) -> int:
    if top == "all":
        return available
    count = int(top)
    if count > available:
        raise ConfigError(
            f"--unfreeze {count} is more than the base has: {available} layers with weights "
            f"(batch norm aside; a transformer block counts as one). Use 0 to {available}, or all."
        )
    return count


def describe_trainable(model: keras.Model) -> str:
    """How many of `model`'s weights train, e.g. "1,290 of 22,714,370 weights train"."""
    trainable = sum(math.prod(w.shape) for w in model.trainable_weights)
    return f"{trainable:,} of {model.count_params():,} weights train"


def unfreeze(model: keras.Model, top: str | int, *, batch_norm: bool = False) -> None:
    """Sets which layers train: the head, and the top `top` units of the base (`all`: every one).

    Batch-norm layers stay frozen, which in Keras 3 also keeps them in inference mode: they
    normalize with their moving statistics and never update them.

    Args:
        model: a `classifier`.
        top: units of the base that train, counted from its output; 0 trains the head alone.
        batch_norm: let batch-norm layers learn too, statistics included (training mode): only
            for a base trained from scratch.

    Raises:
        ConfigError: `top` is more than the base has.
    """
    _set_trainable(model)
    found = units(model)
    for layer in found[: len(found) - _count(top, len(found))]:
        layer.trainable = False
    if not batch_norm:
        for layer in leaves(base_of(model)):
            if isinstance(layer, keras.layers.BatchNormalization):
                layer.trainable = False
