"""Pretrained bases for fine-tuning: the network a new head is put on, without its own head.

- `minilm`: all-MiniLM-L6-v2, read from the wheel `dlrecipes.data.word_vectors` fetches and
  checks, as `keras_hub` BERT layers (no pooler): token ids -> one 384-d vector per word piece.
- `tiny-bert`: a 1-layer, 32-wide BERT with MiniLM's vocabulary, randomly initialised: the
  same plumbing in seconds, for tests and `--tiny` runs. It has learned nothing.
- `mobilenet_v3_small`, `efficientnet_v2_b0`, `resnet50`: `keras.applications` without their
  top, with ImageNet weights that Keras downloads once into `~/.keras/models`.
- the path of a `model.keras` trained by this project's image or text recipe (or by this one):
  every layer before its head (the last Dense, and the dropout feeding it) becomes the base. A
  text model saved as tokenizer + classifier on token ids (`models.text.end_to_end`) gives a
  base on token ids, and its tokenizer.

Every base is a `keras.Model` named `base`. `load(spec, pretrained=False)` gives the same
architecture with fresh random weights, the baseline of a few-label study.

Example:

>>> base = bases.load("mobilenet_v3_small", input_size=96)
>>> base.model.output_shape
(None, 3, 3, 576)
"""

from __future__ import annotations

import dataclasses
import json
import os
import zipfile
from collections.abc import Callable
from pathlib import Path

import keras
import keras_hub

from dlrecipes import online
from dlrecipes.data import word_vectors
from dlrecipes.errors import CheckpointError, ConfigError, WeightsUnavailable
from dlrecipes.models import text

NAME = "base"
TEXT = ("minilm", "tiny-bert")


@dataclasses.dataclass(frozen=True)
class Application:
    """A `keras.applications` base: its constructor, ImageNet weights and preprocessing.

    Args:
        build: the constructor (`keras.applications.ResNet50`, ...).
        weights_url: where Keras downloads the no-top weights from, into `~/.keras/models`
            under the URL's file name.
        caffe: the base wants BGR pixels minus the ImageNet mean (ResNet50); the others take
            RGB in 0-255 and rescale inside (`include_preprocessing`).
    """

    build: Callable[..., keras.Model]
    weights_url: str
    caffe: bool = False

    @property
    def weights_file(self) -> str:
        """The file name Keras keeps the weights under."""
        return self.weights_url.rsplit("/", 1)[1]


# Where keras.applications keeps its weights (its BASE_WEIGHTS_PATH constants).
KERAS_WEIGHTS = "https://storage.googleapis.com/tensorflow/keras-applications"


APPLICATIONS = {
    "mobilenet_v3_small": Application(
        keras.applications.MobileNetV3Small,
        f"{KERAS_WEIGHTS}/mobilenet_v3/weights_mobilenet_v3_small_224_1.0_float_no_top_v2.h5",
    ),
    "efficientnet_v2_b0": Application(
        keras.applications.EfficientNetV2B0,
        f"{KERAS_WEIGHTS}/efficientnet_v2/efficientnetv2-b0_notop.h5",
    ),
    "resnet50": Application(
        keras.applications.ResNet50,
        f"{KERAS_WEIGHTS}/resnet/resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5",
        caffe=True,
    ),
}
NAMES = (*TEXT, *APPLICATIONS)
DEFAULT_INPUT_SIZE = 224  # the ImageNet bases' own input side; smaller sides work too (>= 32)
CAFFE_MEAN = (103.939, 116.779, 123.68)  # BGR ImageNet mean that ResNet50's weights expect


@dataclasses.dataclass(frozen=True)
class Base:
    """A base network and what the classifier built on it needs to know.

    Args:
        spec: what `--base` named.
        model: the network, named `base`.
        reads: `tokens` (a BERT: `token_ids`, `segment_ids`, `padding_mask` in, one vector per
            word piece out), `ids` (a saved text model's layers after its tokenizer: token ids
            in), `strings` (a saved text model that tokenizes inside: raw strings in) or
            `images`.
        vocabulary: the WordPiece vocabulary of a `tokens` base, in id order.
        tokenizer: the saved tokenizer of an `ids` base: strings to the ids it reads.
        caffe: an image base that wants BGR pixels minus the ImageNet mean.
    """

    spec: str
    model: keras.Model
    reads: str
    vocabulary: tuple[str, ...] = ()
    tokenizer: keras.layers.Layer | None = None
    caffe: bool = False

    @property
    def kind(self) -> str:
        """`text` or `images`."""
        return "images" if self.reads == "images" else "text"


def is_path(spec: str) -> bool:
    """Whether `--base` names a file rather than one of `NAMES`."""
    return spec not in NAMES and (spec.endswith(".keras") or os.sep in spec or "/" in spec)


def check_spec(spec: str) -> None:
    """Raises ConfigError for a `--base` that is neither a known name nor a model path."""
    if spec not in NAMES and not is_path(spec):
        raise ConfigError(
            f"Unknown base {spec!r}. Use one of {', '.join(NAMES)}, or the path of a "
            "model.keras trained by this project (--base runs/image_classification/ID/model.keras)."
        )


def kind(spec: str) -> str:
    """`text` or `images`: what the base reads. A saved model is asked without loading it."""
    check_spec(spec)
    if spec in TEXT:
        return "text"
    if spec in APPLICATIONS:
        return "images"
    path = _existing(spec)
    try:
        with zipfile.ZipFile(path) as archive:
            config = json.loads(archive.read("config.json"))
        inputs = [
            layer["config"].get("dtype")
            for layer in config["config"]["layers"]
            if layer["class_name"] == "InputLayer"
        ]
    except (OSError, KeyError, TypeError, ValueError, zipfile.BadZipFile) as err:
        raise _unreadable(path, err) from err
    return "text" if "string" in inputs else "images"


def load(
    spec: str,
    *,
    pretrained: bool = True,
    input_size: int | None = None,
    dtype: str | None = None,
) -> Base:
    """The base `spec` names.

    Args:
        spec: a name from `NAMES` or the path of a saved `model.keras`.
        pretrained: False gives the same architecture with fresh random weights.
        input_size: side of the square a `keras.applications` base reads (default 224).
        dtype: dtype policy of a BERT base (`mixed_bfloat16`, ...); default Keras' global one.

    Raises:
        ConfigError: an unknown name, or ImageNet weights that cannot be downloaded here.
        CheckpointError: a path that is missing or holds no readable Keras model.
    """
    check_spec(spec)
    if spec in TEXT:
        return _bert(spec, pretrained, dtype or keras.config.dtype_policy().name)
    if spec in APPLICATIONS:
        return _application(spec, pretrained, input_size or DEFAULT_INPUT_SIZE)
    return _saved(spec, pretrained)


def _bert(spec: str, pretrained: bool, dtype: str) -> Base:
    if spec == "minilm":
        backbone = word_vectors.encoder(dtype)
        if not pretrained:
            backbone = keras_hub.models.BertBackbone.from_config(backbone.get_config())
    else:
        backbone = keras_hub.models.BertBackbone(
            vocabulary_size=word_vectors.VOCABULARY_SIZE,
            num_layers=1,
            num_heads=2,
            hidden_dim=32,
            intermediate_dim=64,
            max_sequence_length=word_vectors.MAX_PIECES,
            dtype=dtype,
        )
    # The backbone without its pooler: a mean over the word pieces replaces it.
    model = keras.Model(backbone.inputs, backbone.output["sequence_output"], name=NAME)
    return Base(spec, model, "tokens", vocabulary=tuple(word_vectors.vocabulary()))


def _application(spec: str, pretrained: bool, size: int) -> Base:
    app = APPLICATIONS[spec]
    weights = "imagenet" if pretrained else None
    if pretrained:
        _check_downloadable(spec, app)
    model = app.build(include_top=False, weights=weights, input_shape=(size, size, 3))
    # Renamed by rewrapping: EfficientNetV2 looks its blocks up by the name it is given.
    return Base(spec, keras.Model(model.input, model.output, name=NAME), "images", caffe=app.caffe)


def _check_downloadable(spec: str, app: Application) -> None:
    """Fails at once, with what to do, when the weights are neither cached nor downloadable."""
    cache = Path(os.environ.get("KERAS_HOME", Path.home() / ".keras")) / "models"
    if (cache / app.weights_file).exists() or online.reachable(app.weights_url):
        return
    raise WeightsUnavailable(
        f"--base {spec} needs its ImageNet weights, which Keras downloads once from "
        f"{app.weights_url}, and this machine cannot reach it (directly, or through the proxy "
        f'HTTPS_PROXY names). On a machine that can, run `python -c "import keras; '
        f'keras.applications.{app.build.__name__}(include_top=False)"`, then copy '
        f"{cache / app.weights_file} to the same place here; or fine-tune a model of this "
        "project (--base runs/<recipe>/<run-id>/model.keras)."
    )


def _existing(spec: str) -> Path:
    path = Path(spec)
    if not path.is_file():
        raise CheckpointError(
            f"--base {spec}: no such file. Pass the model.keras of a finished run "
            "(runs/<recipe>/<run-id>/model.keras), or a base name: " + ", ".join(NAMES) + "."
        )
    return path


def _unreadable(path: Path, err: Exception) -> CheckpointError:
    return CheckpointError(
        f"--base {path} is not a readable Keras model ({type(err).__name__}: {str(err)[:200]}). "
        "It may be corrupt or half-written: point at the model.keras of a finished run."
    )


def _saved(spec: str, pretrained: bool) -> Base:
    path = _existing(spec)
    try:
        saved = keras.saving.load_model(path, safe_mode=True, compile=False)
    except Exception as err:  # noqa: BLE001 - a half-written or foreign file raises many kinds
        raise _unreadable(path, err) from err
    tokenizer = None
    if parts := text.parts(saved):  # strings -> tokenizer -> classifier on ids
        tokenizer, saved = parts
    head = saved.layers[-1]
    if not isinstance(head, keras.layers.Dense) or len(saved.inputs) != 1:
        raise CheckpointError(
            f"--base {spec}: expected a classifier of this project (one input, a Dense layer "
            f"last), found {type(head).__name__} last and {len(saved.inputs)} input(s)."
        )
    features = head.input
    before = saved.layers[-2] if len(saved.layers) > 1 else None
    if isinstance(before, keras.layers.Dropout) and before.output is features:
        features = before.input  # the head's dropout goes with the head
    model = keras.Model(saved.inputs[0], features, name=NAME)
    if not pretrained:
        model = keras.models.clone_model(model, clone_function=_fresh)
    if tokenizer is not None:
        return Base(spec, model, "ids", tokenizer=tokenizer)
    reads = "strings" if saved.inputs[0].dtype == "string" else "images"
    return Base(spec, model, reads)


def _fresh(layer: keras.layers.Layer) -> keras.layers.Layer:
    """A new layer with fresh weights, except vocabularies, which are data, not learning."""
    if isinstance(layer, keras.layers.TextVectorization):
        return layer
    return layer.__class__.from_config(layer.get_config())
