"""TFLite (LiteRT) files from Keras models, float or int8, scored through the LiteRT interpreter.

Keras writes the file (`model.export(path, format="litert")`, TensorFlow's converter underneath);
`tf.lite.Interpreter` is deprecated in TensorFlow 2.21, so files are run with the interpreter of
the `ai-edge-litert` package.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf
from ai_edge_litert.interpreter import Interpreter


def export(
    model: keras.Model,
    path: str | Path,
    calibration: np.ndarray | None = None,
) -> Path:
    """Writes `model` as a `.tflite` file: float32, or int8 with post-training quantization.

    Args:
        model: the model; its input dtype is kept (uint8 images stay uint8).
        path: where the file goes (`.tflite`).
        calibration: inputs to calibrate int8 activation ranges on (a few hundred examples);
            None writes a float32 model.
    """
    path = Path(path)
    options = {}
    if calibration is not None:

        def representative() -> Iterator[list[np.ndarray]]:
            for example in calibration:
                yield [example[None]]

        options = {
            "optimizations": [tf.lite.Optimize.DEFAULT],
            "representative_dataset": representative,
        }
    model.export(str(path), format="litert", verbose=False, **options)
    return path


def runner(path: str | Path) -> Callable[[np.ndarray], np.ndarray]:
    """A function from a batch of inputs to the outputs of the `.tflite` model at `path` (int8
    outputs dequantized), run by one LiteRT interpreter resized to each batch size it meets."""
    interpreter = Interpreter(model_path=str(path))
    given = interpreter.get_input_details()[0]
    taken = interpreter.get_output_details()[0]
    shape: list[tuple[int, ...]] = []

    def run(batch: np.ndarray) -> np.ndarray:
        if shape != [batch.shape]:
            shape[:] = [batch.shape]
            interpreter.resize_tensor_input(given["index"], list(batch.shape))
            interpreter.allocate_tensors()
        interpreter.set_tensor(given["index"], batch.astype(given["dtype"]))
        interpreter.invoke()
        out = interpreter.get_tensor(taken["index"])
        scale, zero = taken["quantization"]
        return (out.astype(np.float32) - zero) * scale if scale else out

    return run


def predict(path: str | Path, inputs: np.ndarray, batch: int = 256) -> np.ndarray:
    """The outputs of a `.tflite` model for `inputs`, run by the LiteRT interpreter."""
    run = runner(path)
    return np.concatenate([run(inputs[i : i + batch]) for i in range(0, len(inputs), batch)])


def interleaved_latency(
    paths: Mapping[str, str | Path], example: np.ndarray, seconds: float = 1.0, least: int = 5
) -> dict[str, float]:
    """Median seconds of one `invoke` at batch 1 of each `.tflite` file, calls taken in turn
    (as `measure.interleaved_seconds` does for Keras models)."""
    runners = {}
    for name, path in paths.items():
        interpreter = Interpreter(model_path=str(path))
        given = interpreter.get_input_details()[0]
        interpreter.resize_tensor_input(given["index"], [1, *example.shape])
        interpreter.allocate_tensors()
        interpreter.set_tensor(given["index"], example[None].astype(given["dtype"]))
        interpreter.invoke()  # warm-up
        runners[name] = interpreter
    times: dict[str, list[float]] = {name: [] for name in runners}
    start = time.perf_counter()
    while (
        time.perf_counter() - start < seconds * len(runners)
        or min(map(len, times.values())) < least
    ):
        for name, interpreter in runners.items():
            t = time.perf_counter()
            interpreter.invoke()
            times[name].append(time.perf_counter() - t)
    return {name: statistics.median(t) for name, t in times.items()}
