"""Saving and loading `.keras` models: safe mode always, one-line errors, whole files only."""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

import keras

from dlrecipes.backups import signals_held
from dlrecipes.errors import CheckpointError


def load_model(path: str | Path, *, compile: bool = True) -> keras.Model:
    """Loads a `.keras` model in safe mode (no arbitrary code); a clear error if unreadable."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(
            f"No model at {path}. Train one first, or pass the path of a model.keras."
        )
    try:
        return keras.saving.load_model(path, safe_mode=True, compile=compile)
    # What Keras raises for a file that is no .keras zip (ValueError), a zip without a model
    # (KeyError), a class it cannot find (TypeError), truncated weights (OSError). Anything
    # else is a bug and keeps its traceback.
    except (ValueError, KeyError, TypeError, OSError, zipfile.BadZipFile) as err:
        raise CheckpointError(
            f"{path} is not a readable Keras model ({type(err).__name__}: {str(err)[:200]}). "
            "It may be corrupt or half-written: retrain, or point at another model.keras."
        ) from err


def save_atomic(model: keras.Model, path: str | Path) -> Path:
    """Saves `model` to `path` whole or not at all: written beside it, then moved into place,
    with Ctrl-C and SIGTERM held until it is done. A resume can trust any file it finds."""
    path = Path(path)
    partial = path.with_name(f".{path.stem}.partial{os.getpid()}.keras")
    with signals_held():
        model.save(partial)
        os.replace(partial, path)
    return path
