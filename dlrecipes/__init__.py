"""dlrecipes: the shared parts of end-to-end Keras 3 recipes.

Data pipelines (`data`), model builders (`models`), the training runtime (`runtime`, `training`),
callbacks, Keras Tuner glue (`tuning`), reports and the shared command line (`cli`).
"""

# First, before anything imports TensorFlow: its start-up log lines, and the chatter of native
# code and of TensorFlow's logger afterwards, are filtered (see console).
from dlrecipes import console

console.install()

from dlrecipes import cli, data, models, runtime, training, tuning  # noqa: E402
from dlrecipes.config import RecipeConfig  # noqa: E402
from dlrecipes.contract import Recipe  # noqa: E402
from dlrecipes.errors import ConfigError, RecipeError  # noqa: E402

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
