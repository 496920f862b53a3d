"""Exported models loaded back, each run by its own runtime and called like a Keras model.

`load(path)` takes a SavedModel folder (TensorFlow's loader), a `.tflite` file (the LiteRT
interpreter of `ai-edge-litert`) or a `.onnx` file (onnxruntime, the `onnx` extra). A LiteRT or
ONNX text model takes token ids: the `tokenizer.keras` written beside it goes in front, so every
`Served` model takes the raw inputs (uint8 images, strings). `dlrecipes.exporting` checks each
export through it; `predict --model FILE` serves through it.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from dlrecipes import litert
from dlrecipes.errors import ExportFailed
from dlrecipes.saving import load_model

BATCH = 256  # inputs per call
ONNX_MISSING = (
    'ONNX export needs tf2onnx and onnxruntime: pip install -e ".[onnx]" (or drop onnx from '
    "the formats)."
)


class Served:
    """An exported model run by its own runtime on raw inputs (uint8 images, strings), with the
    surface `dlrecipes.predicting` uses of a Keras model: `input_shape` and `output_shape` (batch
    first, None), `predict(inputs, batch_size)`, and `takes_text`. Make one with `load(path)`.
    """

    def __init__(
        self,
        call: Callable[[np.ndarray], np.ndarray],
        input_shape: tuple[int | None, ...],
        num_classes: int,
        *,
        tokenizer: keras.Model | None = None,
        takes_text: bool = False,
    ) -> None:
        self._call = call
        self.input_shape = (None, *input_shape) if tokenizer is None else (None,)
        self.output_shape = (None, num_classes)
        self.tokenizer = tokenizer
        self.takes_text = takes_text or tokenizer is not None
        # In a graph: keras-hub's tokenizers run their TensorFlow ops only there.
        self._tokenize = tokenizer and tf.function(lambda t: tokenizer(t, training=False))

    def predict(self, inputs: np.ndarray, batch_size: int = BATCH, verbose: int = 0) -> np.ndarray:
        """Probabilities of `inputs` (a uint8 image batch, or an array of strings); `verbose`
        is Keras' argument, and ignored."""
        outputs = []
        for start in range(0, len(inputs), batch_size):
            chunk = np.asarray(inputs[start : start + batch_size])
            if self.tokenizer is not None:
                chunk = self._tokenize(tf.constant(chunk)).numpy()
            outputs.append(self._call(chunk))
        return np.concatenate(outputs)


def load(path: str | Path) -> Served:
    """An exported model (a SavedModel folder, `.tflite` or `.onnx`) run by its own runtime; a
    LiteRT or ONNX text model with the `tokenizer.keras` written beside it."""
    path = Path(path)
    if (path / "saved_model.pb").exists():
        return _saved_model(path)
    if path.suffix not in (".tflite", ".onnx") or not path.is_file():
        raise ExportFailed(
            f"{path} is no exported model: give a SavedModel folder, a .tflite or a .onnx file."
        )
    call, dtype, shape, classes = _litert(path) if path.suffix == ".tflite" else _onnx(path)
    tokenizer = None
    if np.issubdtype(dtype, np.integer) and len(shape) == 1:  # token ids: (batch, length)
        tokenizer = load_model(path.parent / "tokenizer.keras", compile=False)
    return Served(call, shape, classes, tokenizer=tokenizer)


def _saved_model(path: Path) -> Served:
    import tensorflow_text  # noqa: F401 - the ops of a keras-hub tokenizer inside a SavedModel

    # Keras' `serve` endpoint: the `serving_default` signature runs the same graph, but each
    # call measured over ten times slower at batch 1 here.
    loaded = tf.saved_model.load(str(path))
    concrete = loaded.serve.concrete_functions[0]
    spec = concrete.structured_input_signature[0][0]
    classes = concrete.structured_outputs.shape[-1]

    def call(batch: np.ndarray) -> np.ndarray:
        return loaded.serve(tf.constant(batch, dtype=spec.dtype)).numpy()

    return Served(call, tuple(spec.shape[1:]), classes, takes_text=spec.dtype == tf.string)


def _litert(path: Path) -> tuple[Callable, np.dtype, tuple, int]:
    interpreter = litert.Interpreter(model_path=str(path))
    given = interpreter.get_input_details()[0]
    classes = int(interpreter.get_output_details()[0]["shape"][-1])
    shape = tuple(None if d < 0 else int(d) for d in given["shape_signature"][1:])
    return litert.runner(path), np.dtype(given["dtype"]), shape, classes


def _onnx(path: Path) -> tuple[Callable, np.dtype, tuple, int]:
    try:
        import onnxruntime
    except ImportError as err:
        raise ExportFailed(ONNX_MISSING) from err
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    given = session.get_inputs()[0]
    kind = given.type.removeprefix("tensor(").removesuffix(")")
    dtype = np.dtype("float32" if kind == "float" else kind)
    shape = tuple(d if isinstance(d, int) else None for d in given.shape[1:])

    def call(batch: np.ndarray) -> np.ndarray:
        return session.run(None, {given.name: batch.astype(dtype)})[0]

    return call, dtype, shape, int(session.get_outputs()[0].shape[-1])


def takes_text(model: keras.Model | Served) -> bool:
    """Whether the model (or an exported one) reads strings rather than images."""
    if isinstance(model, Served):
        return model.takes_text
    return keras.backend.standardize_dtype(model.inputs[0].dtype) == "string"
