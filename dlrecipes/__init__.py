"""dlrecipes: the shared parts of end-to-end Keras 3 recipes.

Data pipelines (`data`), model builders (`models`), the training runtime (`runtime`, `training`),
callbacks, Keras Tuner glue (`tuning`), reports and the shared command line (`cli`).
"""

from dlrecipes import cli, data, models, runtime, training, tuning
from dlrecipes.config import RecipeConfig
from dlrecipes.contract import Recipe
from dlrecipes.errors import ConfigError, RecipeError

__version__ = "0.1.0"

__all__ = [
    "ConfigError",
    "Recipe",
    "RecipeConfig",
    "RecipeError",
    "cli",
    "data",
    "models",
    "runtime",
    "training",
    "tuning",
]
