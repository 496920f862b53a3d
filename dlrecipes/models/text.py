"""Text classifiers as plain functions that return an uncompiled `keras.Model` on token ids.

A model trains on integer token ids, which XLA compiles; the texts are tokenized in the tf.data
pipeline (`dlrecipes.data.tokens`) by a `TextVectorization` layer adapted on the training texts
only (`vectorizer`). `end_to_end` then puts that layer in front of the trained model: the model
that is saved and exported takes raw strings, and reloads from `model.keras` with
`safe_mode=True` and no custom objects (only built-in Keras layers and ops are used).

keras-io's "text classification from scratch" does the same. On a GPU the recurrent layers run
the fused cuDNN kernel, which XLA cannot compile (Keras then trains without XLA): see
`CUDNN_ARGS` and `recurrent_classifier`'s mask.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import keras
import numpy as np
import tensorflow as tf
from keras import layers, ops

from dlrecipes.models.vision import regularizer

# The arguments that decide whether Keras runs LSTM / GRU with the fused cuDNN kernel on a GPU.
# cuDNN also needs masks that are right-padded (TextVectorization pads at the end) and never
# empty, which `recurrent_classifier` sees to.
CUDNN_ARGS = {
    "activation": "tanh",
    "recurrent_activation": "sigmoid",
    "recurrent_dropout": 0.0,
    "unroll": False,
    "use_bias": True,
}
CELLS = {"lstm": layers.LSTM, "gru": layers.GRU}
# (vocabulary, training texts split into its words) -> one vector per vocabulary entry
WordVectors = Callable[[list[str], list[list[str]]], np.ndarray]


def vectorizer(
    adapt_data: tf.data.Dataset | None, *, max_tokens: int, sequence_length: int
) -> layers.TextVectorization:
    """Lower-cases, strips punctuation, splits on whitespace and maps words to ids, right-padded.

    Args:
        adapt_data: unbatched training texts the vocabulary is learned from; None leaves the
            layer unadapted (for a model whose weights are loaded next).
        max_tokens: vocabulary size, including the padding (0) and out-of-vocabulary (1) ids.
        sequence_length: every text is cut or padded to this many ids.

    Returns:
        The `TextVectorization` layer.
    """
    layer = layers.TextVectorization(
        max_tokens=max_tokens, output_sequence_length=sequence_length, name="vectorizer"
    )
    if adapt_data is not None:
        layer.adapt(adapt_data.map(_one_line).batch(1024))
    return layer


def embedding(
    vectorizer: layers.TextVectorization,
    adapt_data: tf.data.Dataset | None,
    max_tokens: int,
    dim: int,
    word_vectors: WordVectors | None = None,
    train_embeddings: bool = True,
    name: str = "embedding",
) -> layers.Embedding:
    """Token ids -> vectors, learned from scratch or started from pretrained word vectors.

    Args:
        vectorizer: the adapted `TextVectorization` layer whose ids this layer reads.
        adapt_data: the training texts it was adapted on; pretrained vectors may read them.
        max_tokens: ids the layer takes (the vectorizer's `max_tokens`).
        dim: vector size when learning from scratch (pretrained vectors bring their own).
        word_vectors: maps the vectorizer's vocabulary and the training texts, split into its
            words, to one pretrained row per word (`dlrecipes.data.word_vectors.embedding_matrix`);
            None learns vectors from scratch.
        train_embeddings: go on training pretrained vectors, or keep them fixed.
        name: the layer's name.
    """
    if word_vectors is None:
        return layers.Embedding(max_tokens, dim, mask_zero=True, name=name)
    if adapt_data is None:
        raise ValueError("Pretrained word vectors need the training texts (adapt_data).")
    vocabulary = vectorizer.get_vocabulary()
    rows = word_vectors(vocabulary, _split(vectorizer, adapt_data))
    matrix = np.zeros((max_tokens, rows.shape[1]), np.float32)  # ids past a short vocabulary: 0
    matrix[: len(vocabulary)] = rows
    layer = layers.Embedding(
        max_tokens, rows.shape[1], mask_zero=True, trainable=train_embeddings, name=name
    )
    layer.build((None,))
    layer.set_weights([matrix])
    return layer


def _split(vectorizer: layers.TextVectorization, texts: tf.data.Dataset) -> list[list[str]]:
    """The texts as the model sees them: the vectorizer's words, "[UNK]" for any other word."""
    vocabulary = np.array(vectorizer.get_vocabulary(), dtype=object)
    sentences = []
    for batch in texts.map(_one_line).batch(1024):
        sentences.extend(vocabulary[ids[ids > 0]].tolist() for ids in vectorizer(batch).numpy())
    return sentences


def _one_line(texts: tf.Tensor) -> tf.Tensor:
    """Turns the characters `str.splitlines` breaks at into spaces.

    Keras saves a vocabulary one word per line and reads it back with `splitlines`, which also
    breaks at U+0085, U+2028 and a few other characters; one word holding one (real reviews do)
    would make the saved model unloadable.
    """
    return tf.strings.regex_replace(texts, r"[\x0b\x0c\x1c-\x1e\x85\x{2028}\x{2029}\r]", " ")


def recurrent_classifier(
    num_classes: int,
    vectorizer: layers.TextVectorization,
    adapt_data: tf.data.Dataset | None = None,
    *,
    cell: str = "lstm",
    embedding_dim: int = 64,
    units: Sequence[int] = (32,),
    spatial_dropout: float = 0.3,
    dropout: float = 0.5,
    pooling: str = "max",
    l1: float = 0.0,
    l2: float = 0.0,
    word_vectors: WordVectors | None = None,
    train_embeddings: bool = True,
) -> keras.Model:
    """Token ids -> embedding -> bidirectional LSTM / GRU layers -> softmax.

    Args:
        num_classes: number of classes of the softmax output.
        vectorizer: the adapted `TextVectorization` layer whose ids the model reads; its
            vocabulary size sizes the embedding.
        adapt_data: the unbatched training texts it was adapted on (pretrained word vectors
            read them).
        cell: `lstm` or `gru`.
        embedding_dim: size of the word vectors.
        units: units per direction of each recurrent layer, first to last.
        spatial_dropout: fraction of embedding channels dropped for whole texts in training.
        dropout: dropout before the classification head.
        pooling: `max` over the last layer's outputs at every (unmasked) step, or `last`, its
            final states only.
        l1, l2: weight penalties on the recurrent and output layers' kernels.
        word_vectors, train_embeddings: pretrained vectors for the vocabulary, see `embedding`;
            they set the vector size in place of `embedding_dim`.

    Returns:
        An uncompiled model from a batch of right-padded token ids `(batch, length)`, any
        length, to class probabilities.
    """
    if cell not in CELLS:
        raise ValueError(f"cell={cell!r} is not one of {', '.join(CELLS)}.")
    if pooling not in ("max", "last"):
        raise ValueError(f"pooling={pooling!r} is not one of max, last.")
    tokens = keras.Input(shape=(None,), dtype="int32", name="token_ids")
    embed = embedding(
        vectorizer,
        adapt_data,
        _max_tokens(vectorizer),
        embedding_dim,
        word_vectors,
        train_embeddings,
    )
    x = embed(tokens)
    if spatial_dropout:
        x = layers.SpatialDropout1D(spatial_dropout)(x)
    # The recurrent layers' mask: the text's steps, and the first step of a text with none (empty,
    # or punctuation only). cuDNN fails on a batch holding a text with no step at all, where the
    # embedding's own mask would give it one.
    steps = _steps(tokens)
    extra = {"reset_after": True} if cell == "gru" else {}  # cuDNN's GRU variant
    for i, width in enumerate(units):
        sequences = i < len(units) - 1 or pooling == "max"
        rnn = CELLS[cell](
            width,
            return_sequences=sequences,
            kernel_regularizer=regularizer(l1, l2),
            **CUDNN_ARGS,
            **extra,
        )
        x = layers.Bidirectional(rnn, name=f"bi{cell}_{i + 1}")(x, mask=steps)
    if pooling == "max":
        # Max over the text's own steps (GlobalMaxPooling1D would also take the padding's zeros).
        x = ops.max(ops.where(ops.expand_dims(steps, -1), x, -1e9), axis=1)
    return _head(tokens, x, num_classes, dropout, regularizer(l1, l2), f"bi{cell}")


def transformer_classifier(
    num_classes: int,
    vectorizer: layers.TextVectorization,
    adapt_data: tf.data.Dataset | None = None,
    *,
    embedding_dim: int = 64,
    blocks: int = 1,
    heads: int = 2,
    ff_dim: int = 64,
    spatial_dropout: float = 0.3,
    dropout: float = 0.5,
    l1: float = 0.0,
    l2: float = 0.0,
    word_vectors: WordVectors | None = None,
    train_embeddings: bool = True,
) -> keras.Model:
    """Token ids -> token + position embeddings -> Transformer encoder blocks -> softmax.

    Positions are counted over the text only (padding gets position 0 and is masked), so
    attention never looks at padding. The position table covers the vectorizer's
    `output_sequence_length`, the most ids a text gets.

    Args:
        num_classes, vectorizer, adapt_data, embedding_dim, spatial_dropout, dropout,
            word_vectors, train_embeddings: as in `recurrent_classifier`.
        l1, l2: weight penalties on the attention, feed-forward and output layers' kernels.
        blocks: number of encoder blocks (self-attention + feed-forward, each residual and
            layer-normalized).
        heads: attention heads per block.
        ff_dim: hidden width of each block's feed-forward network.

    Returns:
        An uncompiled model from a batch of right-padded token ids `(batch, length)`, at most
        the vectorizer's sequence length, to class probabilities.
    """
    sequence_length = vectorizer.get_config()["output_sequence_length"]
    if sequence_length is None:
        raise ValueError("transformer_classifier needs a vectorizer with a sequence_length.")
    reg = regularizer(l1, l2)
    tokens = keras.Input(shape=(None,), dtype="int32", name="token_ids")
    steps = ops.cast(_steps(tokens), "int32")
    positions = ops.cumsum(steps, axis=1) * steps  # 1, 2, ... on the text, 0 on padding
    words = embedding(
        vectorizer,
        adapt_data,
        _max_tokens(vectorizer),
        embedding_dim,
        word_vectors,
        train_embeddings,
    )
    x = layers.Add(name="token_and_position")(
        [
            words(tokens),
            layers.Embedding(
                sequence_length + 1, words.output_dim, mask_zero=True, name="position_embedding"
            )(positions),
        ]
    )
    if spatial_dropout:
        x = layers.SpatialDropout1D(spatial_dropout)(x)
    for i in range(blocks):
        attention = layers.MultiHeadAttention(
            heads,
            words.output_dim // heads,
            dropout=dropout / 2,
            kernel_regularizer=reg,
            name=f"attention_{i + 1}",
        )(x, x)
        x = layers.LayerNormalization(epsilon=1e-6)(layers.Add()([x, attention]))
        ff = layers.Dense(ff_dim, activation="gelu", kernel_regularizer=reg)(x)
        ff = layers.Dense(words.output_dim, kernel_regularizer=reg)(layers.Dropout(dropout / 2)(ff))
        x = layers.LayerNormalization(epsilon=1e-6)(layers.Add()([x, ff]))
    x = layers.GlobalAveragePooling1D(name="mean_over_time")(x)
    return _head(tokens, x, num_classes, dropout, reg, "transformer")


def end_to_end(tokenizer: keras.layers.Layer, model: keras.Model) -> keras.Model:
    """The model users get: raw strings -> `tokenizer` -> the model trained on its ids.

    Args:
        tokenizer: the layer that made the training ids (`vectorizer`, or
            `dlrecipes.models.transfer.tokenizer`): strings to right-padded ids.
        model: the trained classifier on token ids.

    Returns:
        A model from a batch of strings to what `model` outputs, named like it, holding
        `tokenizer` and `model` as its layers. It gives the training-time predictions (its
        tokenizer pads every text to the same length, which the masks make no difference to),
        saves to one `.keras` file and reloads with `safe_mode=True` and no custom objects.
    """
    texts = keras.Input(shape=(), dtype="string", name="text")
    return keras.Model(texts, model(tokenizer(texts)), name=model.name)


def parts(model: keras.Model) -> tuple[keras.layers.Layer, keras.Model] | None:
    """The tokenizer and the classifier on ids of a model `end_to_end` made; None for any other
    model (one that takes ids or images, or a keras-hub task with its preprocessor)."""
    layers_ = [layer for layer in model.layers if not isinstance(layer, layers.InputLayer)]
    if len(layers_) != 2 or len(model.inputs) != 1 or model.inputs[0].dtype != "string":
        return None
    tokenizer, classifier = layers_
    if not isinstance(classifier, keras.Model) or classifier.inputs[0].dtype == "string":
        return None
    return tokenizer, classifier


def _max_tokens(vectorizer: layers.TextVectorization) -> int:
    """The ids `vectorizer` gives: its `max_tokens`, or its vocabulary's size without one."""
    return vectorizer.get_config()["max_tokens"] or vectorizer.vocabulary_size()


def _steps(tokens: keras.KerasTensor) -> keras.KerasTensor:
    """True on the text's tokens and on the first step, so an empty text still has one step to
    attend to and pool over (an all-masked step would make a NaN)."""
    first = ops.equal(ops.cumsum(ops.ones_like(tokens), axis=1), 1)
    return ops.logical_or(ops.not_equal(tokens, 0), first)


def _head(
    inputs: keras.KerasTensor,
    features: keras.KerasTensor,
    num_classes: int,
    dropout: float,
    reg: keras.regularizers.Regularizer | None,
    name: str,
) -> keras.Model:
    """Dropout and a float32 softmax layer."""
    x = layers.Dropout(dropout)(features) if dropout else features
    # float32 output keeps the softmax stable under a mixed-precision policy.
    outputs = layers.Dense(
        num_classes,
        activation="softmax",
        kernel_regularizer=reg,
        dtype="float32",
        name="predictions",
    )(x)
    return keras.Model(inputs, outputs, name=name)
