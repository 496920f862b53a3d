"""Ships the recipes inside the wheel: `recipes/` installs as `dlrecipes/recipes/`, so
`python -m dlrecipes copy` finds them in an installed package too. Everything else is declared in
pyproject.toml; only this mapping needs code, since pyproject's package discovery cannot place a
folder under another name. Every `recipes/<name>/` with a `recipe.py` ships as a package of its
own (with its README and presets): setuptools warns about any folder of modules it is not told of.
"""

import warnings
from pathlib import Path

from setuptools import find_packages, setup

RECIPES = [
    f"dlrecipes.recipes.{p.parent.name}" for p in sorted(Path("recipes").glob("*/recipe.py"))
]

# `pip install -e .` of a checkout without a src/ folder installs through an import hook, which
# setuptools announces with an informational notice, not a problem; it is expected here.
warnings.filterwarnings("ignore", message="Editable installation", category=UserWarning)

setup(
    packages=[*find_packages(include=["dlrecipes", "dlrecipes.*"]), "dlrecipes.recipes", *RECIPES],
    package_dir={"dlrecipes.recipes": "recipes"},
    package_data={"dlrecipes.recipes": ["*.md"], **dict.fromkeys(RECIPES, ["*.md", "*.json"])},
)
