"""The settings every recipe shares, their checks, and their JSON form.

A recipe's `Config` subclasses `RecipeConfig`, adds its own fields and sets its own best defaults.
Each field is also a command-line flag (`learning_rate` -> `--learning-rate`) and a Keras Tuner
hyperparameter name, so `best_hparams.json` maps straight onto a config.
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from collections.abc import Set as AbstractSet
from pathlib import Path
from typing import Any, ClassVar

from dlrecipes.errors import ConfigError

OPTIMIZERS = ("sgd", "momentum", "adagrad", "rmsprop", "adam", "adamw")
SCHEDULES = ("constant", "cosine", "step")
PRECISIONS = ("auto", "float32", "mixed_float16", "mixed_bfloat16")
STRATEGIES = ("auto", "default", "mirrored", "multi_host")
# The key of a saved config (a run's config.json) that names the recipe it was trained by.
RECIPE_KEY = "recipe"


@dataclasses.dataclass
class RecipeConfig:
    """Shared settings: data, optimizer and schedule, regularization, runtime."""

    # --- input
    dataset: str = "mnist_sample"  # a dataset name, or a path prefixed with its format
    data_dir: str | None = None  # TFDS data directory; None = ~/tensorflow_datasets
    # --- optimizer
    epochs: int = 10  # passes over the training split
    batch_size: int = 128  # examples per training step
    optimizer: str = "adamw"  # momentum = SGD with momentum
    learning_rate: float = 1e-3  # peak learning rate, after warm-up
    schedule: str = "cosine"  # constant | cosine (with warm-up) | step (x0.1 at 50% and 75%)
    warmup_epochs: float = 1.0  # linear warm-up from 0 to the learning rate
    momentum: float = 0.9  # for momentum SGD and RMSprop
    weight_decay: float = 1e-4  # decoupled, AdamW only
    # Momentum of an exponential moving average of the weights (0 = off). Validation, the best
    # checkpoint and the exported model use the averaged weights; training goes on with the raw.
    ema: float = 0.0
    # --- regularization
    dropout: float = 0.0  # fraction of units dropped before the classifier
    l1: float = 0.0  # L1 penalty on the kernels
    l2: float = 0.0  # L2 penalty on the kernels
    early_stopping: int = 0  # patience in epochs on validation accuracy; 0 = off
    # --- runtime
    seed: int = 0  # seeds weights, shuffling, augmentation and the data split
    deterministic: bool = False  # op determinism: reproducible to the bit, slower
    jit: bool | None = None  # XLA; None = the measured default for this device
    precision: str = "auto"  # auto = mixed_float16 on GPU, float32 on CPU
    # auto = multi_host when TF_CONFIG names several processes, else MirroredStrategy when several
    # GPUs are visible. multi_host: --batch-size is the global batch, split across processes.
    strategy: str = "auto"
    backup_steps: int = 0  # also back up every N training steps (0 = after every epoch only)
    fold: tuple[int, int] | None = None  # (i, k): set by `train --folds k`

    # Overrides that shrink a run to seconds, for tests and a first look (`--tiny`).
    TINY: ClassVar[dict[str, Any]] = {"epochs": 1}
    # Extra choice-valued fields of a subclass: {"arch": ("convnet", "resnet")}.
    CHOICES: ClassVar[dict[str, tuple[str, ...]]] = {}

    def __post_init__(self) -> None:
        self.validate()

    @classmethod
    def choices(cls) -> dict[str, tuple[str, ...]]:
        """The allowed values of every choice-valued field."""
        return {
            "optimizer": OPTIMIZERS,
            "schedule": SCHEDULES,
            "precision": PRECISIONS,
            "strategy": STRATEGIES,
            **cls.CHOICES,
        }

    def validate(self) -> None:
        """Raises ConfigError naming the field, the bad value and what is allowed."""
        for name, allowed in self.choices().items():
            value = getattr(self, name)
            if value not in allowed:
                raise ConfigError(
                    f"{name}={value!r} is not allowed; use one of: {', '.join(allowed)} "
                    f"(--{flag(name)} {allowed[0]})."
                )
        for name in ("epochs", "batch_size"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be at least 1; got {getattr(self, name)}.")
        if not self.learning_rate > 0:
            raise ConfigError(f"learning_rate must be positive; got {self.learning_rate}.")
        for name in ("dropout", "ema"):
            if not 0 <= getattr(self, name) < 1:
                raise ConfigError(f"{name} must be in [0, 1); got {getattr(self, name)}.")
        for name in ("l1", "l2", "weight_decay", "momentum", "warmup_epochs", "early_stopping"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{name} must not be negative; got {getattr(self, name)}.")
        if self.backup_steps < 0:
            raise ConfigError(f"backup_steps must not be negative; got {self.backup_steps}.")
        size = getattr(self, "image_size", None)  # the recipes that read images
        if size is not None and (len(size) != 2 or min(size) < 1):
            shown = ",".join(map(str, size))
            raise ConfigError(
                f"--image-size {shown} is not a height and a width: give two sizes of at least "
                "1 pixel (--image-size 64,64)."
            )

    def follow_inputs(
        self, given: AbstractSet[str], tiny: AbstractSet[str] = frozenset()
    ) -> tuple[dict[str, Any], str]:
        """Defaults that follow what the config reads (a recipe's own rule, e.g. the kind of
        base it fine-tunes), for the fields not in `given` (set by a flag, `--hparams` or
        `--tiny`): `({field: value}, why)`. `tiny`: the fields of `given` that only `--tiny`
        set, which a recipe may shrink to fit the data (never ask for more than it holds).
        Here none."""
        return {}, ""

    def tiny(self) -> RecipeConfig:
        """The same config shrunk by `TINY`, for tests and quick local runs."""
        return dataclasses.replace(self, **self.TINY)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def save(self, path: str | Path, recipe: str | None = None) -> None:
        """Writes the config as JSON; `recipe` records which recipe it belongs to."""
        values = {RECIPE_KEY: recipe, **self.to_dict()} if recipe else self.to_dict()
        Path(path).write_text(json.dumps(values, indent=2) + "\n")

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> RecipeConfig:
        """A config from plain values (JSON lists become tuples); unknown keys are refused."""
        return cls(**coerce(cls, values))

    @classmethod
    def load(cls, path: str | Path) -> RecipeConfig:
        """The config saved at `path` (the recipe it names, if any, is not a field)."""
        values = json.loads(Path(path).read_text())
        values.pop(RECIPE_KEY, None)
        return cls.from_dict(values)


def flag(name: str) -> str:
    """The command-line flag of a field: `learning_rate` -> `learning-rate`."""
    return name.replace("_", "-")


def field_types(cls: type) -> dict[str, Any]:
    """Resolved type hints of a config class's fields."""
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls)}


def coerce(cls: type, values: dict[str, Any]) -> dict[str, Any]:
    """Checks keys against `cls`'s fields and turns JSON values into the fields' types."""
    types_ = field_types(cls)
    unknown = sorted(set(values) - set(types_))
    if unknown:
        raise ConfigError(
            f"Unknown config field(s) {unknown}; known fields: {', '.join(sorted(types_))}."
        )
    return {name: _convert(value, types_[name], name) for name, value in values.items()}


def _convert(value: Any, hint: Any, name: str) -> Any:
    if value is None:
        return None
    base = strip_optional(hint)
    origin = typing.get_origin(base)
    try:
        if origin is tuple:
            items = value.split(",") if isinstance(value, str) else list(value)
            item_type = typing.get_args(base)[0]
            return tuple(item_type(v) for v in items)
        if base is bool:
            if isinstance(value, str):
                if value.lower() not in ("true", "false", "1", "0", "yes", "no"):
                    raise ValueError(value)
                return value.lower() in ("true", "1", "yes")
            return bool(value)
        if base in (int, float, str):
            if base is int and isinstance(value, float) and not value.is_integer():
                raise ValueError(value)
            return base(value)
    except (TypeError, ValueError) as err:
        raise ConfigError(f"{name}={value!r} is not a valid {_type_name(hint)}.") from err
    return value


def strip_optional(hint: Any) -> Any:
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return hint


def _type_name(hint: Any) -> str:
    return getattr(hint, "__name__", str(hint))
