"""`predict`: a saved model's class and probability for inputs named on the command line.

Image models read image files, or folders of them; text models read texts, or text files holding
one text per line. The model takes them raw (uint8 pixels, strings), as it was exported.

Example:

>>> model = dlrecipes.load_model("runs/text_bilstm/<id>/model.keras")
>>> results = predicting.predict(model, ["A moving film.", "reviews.txt"], ["fresh", "rotten"])
>>> print(predicting.as_lines(results))
fresh   0.9312  A moving film.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from dlrecipes.data.folder import IMAGE_SUFFIXES
from dlrecipes.errors import DatasetError
from dlrecipes.serving import Served, takes_text

SHOWN_CHARS = 80  # a long text is cut to this in the plain output (JSON keeps it whole)


@dataclasses.dataclass(frozen=True)
class Prediction:
    """One input's predicted class, its probability, and every class's probability.

    `input` is the image's path or the text; `source` the `file:line` a text was read from.
    """

    input: str
    label: str
    probability: float
    probabilities: dict[str, float]
    source: str | None = None
    is_text: bool = False


def class_names(model_path: str | Path, num_classes: int) -> tuple[list[str], bool]:
    """The class names of a run's model, from the `metrics.json` written beside it, and whether
    they were found (else the class indices, as strings)."""
    metrics = Path(model_path).parent / "metrics.json"
    if metrics.exists():
        names = json.loads(metrics.read_text()).get("class_names")
        if names and len(names) == num_classes:
            return list(names), True
    return [str(i) for i in range(num_classes)], False


def read_texts(items: Sequence[str]) -> tuple[list[str], list[str | None]]:
    """The texts of `items`: each names an existing file of one text per line (blank lines
    skipped), or is a text itself. Returns the texts and the `file:line` each came from (None
    for a text given as it is)."""
    texts: list[str] = []
    sources: list[str | None] = []
    for item in items:
        path = Path(item)
        if not path.is_file():
            texts.append(item)
            sources.append(None)
            continue
        try:
            lines = path.read_bytes().decode("utf-8-sig").splitlines()
        except UnicodeDecodeError as err:
            raise DatasetError(
                f"{path} is not UTF-8 text (byte 0x{err.object[err.start]:02x} at offset "
                f"{err.start}). Re-encode it, e.g. `iconv -f latin1 -t utf-8 IN > OUT`."
            ) from err
        for number, line in enumerate(lines, start=1):
            if line.strip():
                sources.append(f"{path}:{number}")
                texts.append(line)
    if not texts:
        raise DatasetError(f"No texts to classify in {list(items)}: the files are empty.")
    return texts, sources


def image_files(items: Sequence[str]) -> list[Path]:
    """The image files named by `items`: files as given, folders as every image in them
    (recursively, sorted)."""
    files = []
    for item in items:
        path = Path(item)
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
            if not found:
                raise DatasetError(
                    f"{path} holds no images; image types read: {sorted(IMAGE_SUFFIXES)}."
                )
            files += found
        elif path.is_file():
            files.append(path)
        else:
            raise DatasetError(
                f"{item}: no such file or folder. An image model takes image files or folders "
                "of them."
            )
    return files


def read_images(files: Sequence[Path], shape: tuple[int | None, ...]) -> np.ndarray:
    """The images as one uint8 batch of `shape` (height, width, channels), resized as the
    training data was (antialiased)."""
    height, width, channels = shape
    batch = []
    for path in files:
        try:
            image = tf.io.decode_image(
                tf.io.read_file(str(path)), channels=channels, expand_animations=False
            )
        except tf.errors.InvalidArgumentError as err:
            raise DatasetError(
                f"{path} is not an image TensorFlow can decode (PNG, JPEG, GIF or BMP); leave it "
                "out of the inputs."
            ) from err
        if tuple(image.shape[:2]) != (height, width):
            image = tf.image.resize(image, (height, width), antialias=True)
            image = tf.cast(tf.clip_by_value(tf.round(image), 0, 255), tf.uint8)
        batch.append(image.numpy())
    return np.stack(batch)


def predict(
    model: keras.Model | Served, items: Sequence[str], names: Sequence[str], batch_size: int = 256
) -> list[Prediction]:
    """Classifies the texts or images `items` name (see `read_texts`, `image_files`).

    Args:
        model: a saved recipe model, taking raw strings or uint8 images, or an exported one
            (`dlrecipes.serving.load`: SavedModel, LiteRT, ONNX).
        items: command-line inputs.
        names: the class names, in output order.
        batch_size: inputs per model call.
    """
    if takes_text(model):
        shown, sources = read_texts(items)
        inputs = tf.constant(shown)
    else:
        files = image_files(items)
        shape = tuple(model.input_shape[1:])
        if len(shape) != 3 or None in shape:
            raise DatasetError(f"predict takes images of a fixed size; this model takes {shape}.")
        shown, sources = [str(f) for f in files], [None] * len(files)
        inputs = read_images(files, shape)
    probs = model.predict(inputs, batch_size=batch_size, verbose=0)
    return [
        Prediction(
            input=item,
            label=names[int(row.argmax())],
            probability=float(row.max()),
            probabilities={name: float(p) for name, p in zip(names, row, strict=True)},
            source=source,
            is_text=takes_text(model),
        )
        for item, source, row in zip(shown, sources, probs, strict=True)
    ]


def as_lines(results: Sequence[Prediction]) -> str:
    """One line per input: class, probability, input (a long text cut to `SHOWN_CHARS`; an
    image's path in full)."""
    width = max(len(r.label) for r in results)
    lines = []
    for r in results:
        shown = " ".join(r.input.split()) if r.is_text else r.input
        if r.is_text and len(shown) > SHOWN_CHARS:
            shown = shown[: SHOWN_CHARS - 3] + "..."
        lines.append(f"{r.label:<{width}}  {r.probability:.4f}  {shown}")
    return "\n".join(lines)


def as_json(results: Sequence[Prediction]) -> str:
    """A JSON list, one object per input: input, class, probability, probabilities, and for a
    text read from a file its source (`file:line`)."""
    return json.dumps(
        [
            {
                "input": r.input,
                **({"source": r.source} if r.source else {}),
                "class": r.label,
                "probability": r.probability,
                "probabilities": r.probabilities,
            }
            for r in results
        ],
        indent=2,
        ensure_ascii=False,
    )
