"""`python -m dlrecipes copy <recipe> DEST`: put a recipe folder into another project."""

from __future__ import annotations

import shutil
from pathlib import Path

import dlrecipes
from dlrecipes.errors import RecipeError

# Recipes live beside the package in a source checkout (the way `make` installs it, editable).
RECIPES_DIR = Path(dlrecipes.__file__).resolve().parent.parent / "recipes"


def available() -> list[str]:
    """Names of the recipes that can be copied."""
    if not RECIPES_DIR.is_dir():
        return []
    return sorted(p.name for p in RECIPES_DIR.iterdir() if (p / "recipe.py").exists())


def copy_recipe(name: str, dest: str | Path) -> Path:
    """Copies `recipes/<name>/` to `dest/<name>/` and returns the new folder.

    Raises:
        RecipeError: unknown recipe (the message lists the known ones), or the target exists.
    """
    name = name.replace("-", "_")
    if name not in available():
        raise RecipeError(
            f"Unknown recipe {name!r}; available: {', '.join(available()) or 'none found'} "
            f"(looked in {RECIPES_DIR})."
        )
    target = Path(dest) / name
    if target.exists():
        raise RecipeError(
            f"{target} exists already; nothing was copied. Remove it or pick another DEST."
        )
    shutil.copytree(RECIPES_DIR / name, target, ignore=shutil.ignore_patterns("__pycache__"))
    return target


def install_hint() -> str:
    """What the other project needs installed for a copied recipe to run."""
    root = RECIPES_DIR.parent
    return (
        f"The recipe needs the dlrecipes package: pip install -e {root}  "
        f"(add [gpu] on a CUDA machine: pip install -e '{root}[gpu]')."
    )
