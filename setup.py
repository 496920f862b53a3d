"""Ships the recipes inside the wheel: `recipes/` installs as `dlrecipes/recipes/`, so
`python -m dlrecipes copy` finds them in an installed package too. Everything else is declared in
pyproject.toml; only this mapping needs code, since pyproject's package discovery cannot place a
folder under another name. Every `recipes/<name>/` with its `recipe.py` and `README.md` ships."""

from setuptools import find_packages, setup

setup(
    packages=[*find_packages(include=["dlrecipes", "dlrecipes.*"]), "dlrecipes.recipes"],
    package_dir={"dlrecipes.recipes": "recipes"},
    package_data={"dlrecipes.recipes": ["*.md", "*/*.py", "*/*.md", "*/*.json"]},
)
