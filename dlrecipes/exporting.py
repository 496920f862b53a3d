"""Exports of a trained model to where models are served, each checked against the Keras model.

`export(model, formats, out_dir, splits)` writes, through Keras' exporter (`model.export`):

- `saved_model`: `saved_model/`, whose `serve` endpoint takes the raw inputs (uint8 images,
  strings: a text model's tokenizer is inside);
- `litert`: `model.tflite`, and for image models `model-int8.tflite` too (int8 weights and
  activations, calibrated on training images);
- `onnx`: `model.onnx` (needs the `onnx` extra: `pip install -e ".[onnx]"`).

LiteRT and ONNX cannot run a text model's tokenizer here (the converter keeps its string ops
as TensorFlow "select" ops that neither the LiteRT interpreter nor onnxruntime has), so for a text
model they hold the classifier on token ids, written beside `tokenizer.keras` (strings to those
ids, a Keras model) and `vocabulary.txt` (one token a line, the id is the line number from 0).

Each file is written into a scratch folder, loaded back through its own runtime
(`tf.saved_model.load`, the LiteRT interpreter, onnxruntime: `dlrecipes.serving.load`) and run
on the test split: its probabilities must match the Keras model's (`TOLERANCE`) and pick the
same class (`AGREEMENT`); int8 must keep the accuracy (`INT8_DROP`). Only then is it moved into
`out_dir`, so a failed check (`ExportFailed`, one line) leaves nothing half-written.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import statistics
import tempfile
import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from dlrecipes import litert
from dlrecipes.data import Splits
from dlrecipes.errors import ConfigError, ExportFailed
from dlrecipes.models import text
from dlrecipes.reports import write_json
from dlrecipes.serving import BATCH, ONNX_MISSING, Served, load, takes_text

FORMATS = ("saved_model", "litert", "onnx")
TOLERANCE = 1e-3  # largest absolute difference of a probability from the Keras model's
AGREEMENT = 0.99  # smallest fraction of test inputs given the Keras model's class
INT8_DROP = 0.05  # largest fall in test accuracy allowed an int8 model
CALIBRATION = 500  # training images int8 calibrates its activation ranges on


def parse_formats(given: str) -> tuple[str, ...]:
    """`saved_model,litert` -> `("saved_model", "litert")`; unknown names refused in one line."""
    names = tuple(dict.fromkeys(n.strip() for n in given.split(",") if n.strip()))
    unknown = [n for n in names if n not in FORMATS]
    if unknown or not names:
        raise ConfigError(
            f"Unknown export format(s) {unknown or [given]}: choose from {','.join(FORMATS)}."
        )
    return names


# ---------------------------------------------------------------------------------------------
# Writing and checking.
# ---------------------------------------------------------------------------------------------


def export(
    model: keras.Model,
    formats: Sequence[str],
    out_dir: Path,
    splits: Splits,
    *,
    calibration: int = CALIBRATION,
) -> list[dict[str, Any]]:
    """Writes `model` in each of `formats` into `out_dir`, each checked on the test split.

    Args:
        model: a model on raw inputs (uint8 images, or strings: `text.end_to_end`).
        formats: names from `FORMATS`.
        out_dir: the run directory (files go beside its `model.keras`).
        splits: the run's data: the test split checks, training images calibrate int8.
        calibration: training images int8 calibrates on.

    Returns:
        One row per file, the Keras model's first: format, file, bytes, what it takes,
        max_abs_diff and agreement (with the Keras model), test accuracy, batch-1 latency (ms).
    """
    x, y = _arrays(splits.test)
    expected = _keras_predict(model, x)
    rows = [
        {
            "format": "keras",
            "file": "model.keras",
            "bytes": _size(out_dir / "model.keras"),
            "takes": "strings" if takes_text(model) else "uint8 images",
            "accuracy": float((expected.argmax(-1) == y).mean()),
            "latency_ms": _latency_ms(_compiled(model), tf.constant(x[:1])),
        }
    ]
    for name in formats:
        with tempfile.TemporaryDirectory(dir=out_dir, prefix=f".export-{name}-") as scratch:
            try:
                written = _WRITERS[name](model, Path(scratch), splits, calibration)
                for file, kind in written:
                    rows.append(_check(Path(scratch) / file, kind, x, y, expected, rows[0]))
            except ExportFailed:
                raise
            # The converters and runtimes raise many kinds for a model they cannot take.
            except Exception as err:  # noqa: BLE001
                raise ExportFailed(f"{name} export of {model.name}: {_cause(err)}") from err
            for item in sorted(Path(scratch).iterdir()):  # checked: moved into place
                target = out_dir / item.name
                if target.is_dir():
                    shutil.rmtree(target)
                os.replace(item, target)
    return rows


def _cause(err: Exception) -> str:
    """One line on why a converter or runtime refused the model."""
    text = str(err)
    flex = sorted(set(re.findall(r"\b(Flex\w+)", text)))
    if flex:
        return (
            f"the file needs TensorFlow ops ({', '.join(flex)}) that the LiteRT interpreter "
            "here cannot run (no Flex delegate); export another format."
        )
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return f"{type(err).__name__}: {(lines[-1] if lines else '')[:200]}"


def _check(
    path: Path, kind: str, x: np.ndarray, y: np.ndarray, expected: np.ndarray, keras_row: dict
) -> dict[str, Any]:
    served = load(path)
    probs = served.predict(x)
    row = {
        "format": kind,
        "file": path.name,
        "bytes": _size(path),
        "takes": _takes(served),
        "max_abs_diff": float(np.abs(probs - expected).max()),
        "agreement": float((probs.argmax(-1) == expected.argmax(-1)).mean()),
        "accuracy": float((probs.argmax(-1) == y).mean()),
        "latency_ms": _latency_ms(served.predict, x[:1]),
    }
    if kind.endswith("int8"):
        if row["accuracy"] < keras_row["accuracy"] - INT8_DROP:
            raise ExportFailed(
                f"{path.name} scores {row['accuracy']:.4f} on the test split, the Keras model "
                f"{keras_row['accuracy']:.4f} (more than {INT8_DROP} lower); nothing was written: "
                "calibrate on more training images, or serve the float model.tflite."
            )
    elif row["max_abs_diff"] > TOLERANCE or row["agreement"] < AGREEMENT:
        raise ExportFailed(
            f"{path.name} ({kind}) differs from the Keras model on the test split (max "
            f"probability difference {row['max_abs_diff']:.2g}, same class on "
            f"{row['agreement']:.2%}); nothing was written: export the other formats, and report "
            "this with the run's config.json."
        )
    return row


def _takes(served: Served) -> str:
    if served.tokenizer is not None:
        return "token ids (tokenizer.keras)"
    return "strings" if served.takes_text else "uint8 images"


def _write_saved_model(model: keras.Model, out: Path, splits: Splits, calibration: int) -> list:
    model.export(str(out / "saved_model"), format="tf_saved_model", verbose=False)
    return [("saved_model", "saved_model")]


def _write_litert(model: keras.Model, out: Path, splits: Splits, calibration: int) -> list:
    if takes_text(model):
        classifier = _text_parts(model, out)
        litert.export(classifier, out / "model.tflite")
        return [("model.tflite", "litert")]
    litert.export(model, out / "model.tflite")
    litert.export(model, out / "model-int8.tflite", _arrays(splits.train)[0][:calibration])
    return [("model.tflite", "litert"), ("model-int8.tflite", "litert-int8")]


def _write_onnx(model: keras.Model, out: Path, splits: Splits, calibration: int) -> list:
    try:
        import onnxruntime  # noqa: F401 - checked before the export, which needs tf2onnx too
        import tf2onnx  # noqa: F401
    except ImportError as err:
        raise ExportFailed(ONNX_MISSING) from err
    target = _text_parts(model, out) if takes_text(model) else model
    with warnings.catch_warnings():
        # Keras' patch of tf2onnx probes `np.object`, which NumPy 2 warns of: not the user's.
        warnings.filterwarnings("ignore", "In the future `np.object`", FutureWarning)
        target.export(str(out / "model.onnx"), format="onnx", verbose=False)
    return [("model.onnx", "onnx")]


_WRITERS = {"saved_model": _write_saved_model, "litert": _write_litert, "onnx": _write_onnx}


def _text_parts(model: keras.Model, out: Path) -> keras.Model:
    """A text model's classifier on token ids; writes its `tokenizer.keras` and
    `vocabulary.txt` into `out`."""
    if (parts := text.parts(model)) is None:
        raise ExportFailed(
            f"{model.name} is not a tokenizer then a classifier on ids "
            "(dlrecipes.models.text.end_to_end), so its ids cannot be exported apart."
        )
    tokenizer, classifier = parts
    texts = keras.Input(shape=(), dtype="string", name="text")
    keras.Model(texts, tokenizer(texts), name="tokenizer").save(out / "tokenizer.keras")
    vocabulary = next(
        layer.get_vocabulary()
        for layer in [tokenizer, *tokenizer._flatten_layers()]
        if hasattr(layer, "get_vocabulary")
    )
    (out / "vocabulary.txt").write_text("".join(f"{token}\n" for token in vocabulary))
    return classifier


# ---------------------------------------------------------------------------------------------
# Figures and the report.
# ---------------------------------------------------------------------------------------------


def _arrays(ds: tf.data.Dataset) -> tuple[np.ndarray, np.ndarray]:
    xs, ys = zip(*ds.as_numpy_iterator(), strict=True)
    return np.concatenate(xs), np.concatenate(ys)


def _keras_predict(model: keras.Model, x: np.ndarray) -> np.ndarray:
    if x.dtype == object:  # strings: Keras takes them as a tf.data pipeline, not NumPy
        return model.predict(tf.data.Dataset.from_tensor_slices(x).batch(BATCH), verbose=0)
    return model.predict(x, batch_size=BATCH, verbose=0)


def _compiled(model: keras.Model) -> Callable[[tf.Tensor], Any]:
    """`model` in inference mode as one TensorFlow function, as a served model runs."""
    return tf.function(lambda x: model(x, training=False), reduce_retracing=True)


def _size(path: Path) -> int:
    if path.is_dir():
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    return path.stat().st_size if path.exists() else 0


def _latency_ms(
    call: Callable[[Any], Any], one: Any, seconds: float = 0.3, least: int = 5
) -> float:
    """Median milliseconds of one call on a batch of one, after a warm-up call."""
    call(one)
    times = []
    start = time.perf_counter()
    while time.perf_counter() - start < seconds or len(times) < least:
        t = time.perf_counter()
        call(one)
        times.append(time.perf_counter() - t)
    return 1e3 * statistics.median(times)


COLUMNS = (
    "format",
    "file",
    "takes",
    "bytes",
    "max_abs_diff",
    "agreement",
    "accuracy",
    "latency_ms",
)


def section(rows: Sequence[dict[str, Any]]) -> str:
    """The report's markdown section on the exports."""
    lines = [
        "## Exports",
        "",
        "Each file run by its own runtime on the test split, against the Keras model: largest "
        "difference of a probability, share given the same class, accuracy, batch-1 latency.",
        "",
        "| " + " | ".join(COLUMNS) + " |",
        "|" + "---|" * len(COLUMNS),
    ]
    for row in rows:
        cells = []
        for column in COLUMNS:
            value = row.get(column, "")
            if column == "max_abs_diff" and value != "":
                value = f"{value:.2g}"
            elif isinstance(value, float):
                value = f"{value:.4f}" if column != "latency_ms" else f"{value:.3f}"
            elif isinstance(value, int):
                value = f"{value:,}"
            cells.append(str(value))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def record(run_dir: Path, rows: Sequence[dict[str, Any]]) -> None:
    """Adds the exports' figures to a run's `metrics.json` ("exports") and `report.md` (a
    section at the end, replacing one there before), those of them that exist."""
    metrics = run_dir / "metrics.json"
    if metrics.exists():
        write_json(metrics, json.loads(metrics.read_text()) | {"exports": list(rows)})
    report = run_dir / "report.md"
    if report.exists():
        text = report.read_text().split("\n## Exports\n")[0].rstrip("\n")
        report.write_text(f"{text}\n\n{section(rows)}")
