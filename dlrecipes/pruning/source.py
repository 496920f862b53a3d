"""The model a pruning run starts from: a trained `model.keras` of this project, or the image
recipe's default, trained once into a cache and reused by later runs."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from dlrecipes.copying import recipes_dir
from dlrecipes.data.wheels import cache_dir
from dlrecipes.errors import CheckpointError, ConfigError
from dlrecipes.saving import load_model

DEFAULT_RECIPE = "image_classification"


def cached_run(kind: str) -> Path:
    """Where the image recipe's `default` or `tiny` model is trained and kept."""
    return cache_dir() / "pruning" / f"{DEFAULT_RECIPE}-{kind}"


def model_path(model: str, kind: str = "default", seed: int = 0) -> Path:
    """`model` when given; else the image recipe's `kind` (`default` or `tiny`) model, trained by
    running that recipe once into the cache (`cached_run`), where a stopped training is resumed
    the next time."""
    if model:
        return Path(model)
    run = cached_run(kind)
    if (run / "metrics.json").exists():
        return run / "model.keras"
    script = recipes_dir() / DEFAULT_RECIPE / "recipe.py"
    if not script.exists():
        raise CheckpointError(
            f"No --model given and the image recipe is not at {script} to train one; pass "
            "--model PATH of a trained model.keras."
        )
    resume = (run / "config.json").exists()
    print(
        f"No --model given: {'resuming' if resume else 'training'} the image recipe's {kind} "
        f"model once, in {run} (later runs reuse it)."
    )
    run.parent.mkdir(parents=True, exist_ok=True)
    args = ["train", "--run-dir", str(run)]
    args += ["--resume"] if resume else ["--seed", str(seed)]
    args += ["--tiny"] if kind == "tiny" and not resume else []
    status = _train([sys.executable, str(script), *args], run)
    if status != 0:
        raise CheckpointError(
            f"Training the image recipe's {kind} model failed (exit status {status}, its output "
            "is above); pass --model PATH to prune a model you have."
        )
    return run / "model.keras"


def _train(command: list[str], run: Path) -> int:
    """Runs the image recipe's `train`, showing its output but its last line (the cached run's
    directory: the pruning run prints its own); returns its exit status."""
    with subprocess.Popen(command, stdout=subprocess.PIPE, text=True) as child:
        for line in child.stdout:
            if line.strip() != str(run):
                print(line, end="", flush=True)
    return child.returncode


def training_config(path: Path) -> dict:
    """The config.json of the run that saved the model at `path` ({} if it has none)."""
    config = Path(path).parent / "config.json"
    return json.loads(config.read_text()) if config.exists() else {}


def resolve(config: Any) -> Any:
    """The pruning config with the source model's path (`model`), its data (`dataset`,
    `image_size`, the split's `data_seed`) and its kind of input (`inputs`) filled in from the
    run that trained it, where the config leaves them empty."""
    path = model_path(config.model, config.default_model, config.seed)
    # First: a file that is no model is refused as such (not for lacking a config.json).
    takes_text = load_model(path, compile=False).inputs[0].dtype == "string"
    trained = training_config(path)
    dataset = config.dataset or trained.get("dataset")
    if not dataset:
        raise ConfigError(
            f"{path} has no config.json beside it to tell its dataset; pass --dataset (the one "
            "it was trained on)."
        )
    image_size = config.image_size or trained.get("image_size")
    return dataclasses.replace(
        config,
        model=str(path),
        dataset=dataset,
        inputs=config.inputs or ("text" if takes_text else "image"),
        image_size=tuple(image_size) if image_size else None,
        data_seed=trained.get("seed", config.seed)
        if config.data_seed is None
        else config.data_seed,
    )
