"""`python -m dlrecipes copy <recipe> DEST`: put a recipe folder into another project.

The recipes ship inside the package (`dlrecipes/recipes/<name>/`, see setup.py), so an installed
dlrecipes copies them out as well as a source checkout does (where they are `recipes/<name>/`).
The copied README is the repository's one with the commands pointed at the copy and the section
about the dlrecipes repository itself (make targets, benchmarks, shared test data) left out.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import dlrecipes
from dlrecipes.errors import RecipeError

PACKAGE_DIR = Path(dlrecipes.__file__).resolve().parent
# The README section that only makes sense inside the dlrecipes repository; `copy` drops it.
REPOSITORY_SECTION = "## In the dlrecipes repository"


def recipes_dir() -> Path:
    """Where the recipes are: inside an installed package, else beside a source checkout's."""
    installed = PACKAGE_DIR / "recipes"
    return installed if installed.is_dir() else PACKAGE_DIR.parent / "recipes"


def available() -> list[str]:
    """Names of the recipes that can be copied."""
    root = recipes_dir()
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if (p / "recipe.py").exists())


def copy_recipe(name: str, dest: str | Path) -> Path:
    """Copies the recipe `name` to `dest/<name>/` and returns the new folder.

    Raises:
        RecipeError: unknown recipe (the message lists the known ones), or the target exists.
    """
    name = name.replace("-", "_")
    if name not in available():
        raise RecipeError(
            f"Unknown recipe {name!r}; available: {', '.join(available()) or 'none found'} "
            f"(looked in {recipes_dir()})."
        )
    target = Path(dest) / name
    if target.exists():
        raise RecipeError(
            f"{target} exists already; nothing was copied. Remove it or pick another DEST."
        )
    shutil.copytree(recipes_dir() / name, target, ignore=shutil.ignore_patterns("__pycache__"))
    for path in (*target.glob("*.md"), *target.glob("*.py")):
        path.write_text(standalone(path.read_text()))
    return target


def standalone(text: str) -> str:
    """A recipe file as it reads in another project, where recipes are copied side by side:
    `<recipe>/recipe.py` (and the folder's other files) in place of `recipes/<recipe>/recipe.py`,
    for this recipe and the others it mentions, and without the README's section about the
    repository."""
    if REPOSITORY_SECTION in text:
        text = text.split(f"\n{REPOSITORY_SECTION}", 1)[0].rstrip() + "\n"
    names = "|".join(map(re.escape, available()))
    return re.sub(rf"(?<![\w/.-])recipes/({names})/", r"\1/", text)


def install_hint() -> str:
    """What another environment needs for a copied recipe to run."""
    checkout = PACKAGE_DIR.parent
    if (checkout / "pyproject.toml").exists() and (checkout / "recipes").is_dir():
        source = f"pip install {checkout}  (or `make dist` there and pip install the wheel)"
    else:
        source = (
            f"pip install dlrecipes-{dlrecipes.__version__}-py3-none-any.whl (`make dist` in the "
            "dlrecipes repository builds it)"
        )
    return (
        f"The recipe needs the dlrecipes package; this Python has it. Another environment: "
        f"{source}, with [gpu] on a CUDA machine."
    )
