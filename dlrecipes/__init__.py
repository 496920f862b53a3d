"""dlrecipes: the shared parts of end-to-end Keras 3 recipes.

Data pipelines (`data`), model builders (`models`), the training runtime (`runtime`), a run
directory that survives kills (`Run`), Keras Tuner glue (`tuning`), reports and the shared
command line (`cli`). A recipe composes them; nothing here calls back into a recipe.
"""

# First, before anything imports TensorFlow: its start-up log lines, and the chatter of native
# code and of TensorFlow's logger afterwards, are filtered (see console).
from dlrecipes import console

console.install()

import warnings  # noqa: E402

# The recipes shuffle in tf.data; Keras 3.15 warns on every fit that its own shuffle is unused.
warnings.filterwarnings("ignore", message="`shuffle=True` was passed, but will be ignored")
# A model with string preprocessing runs without XLA even when compile asks for it (the default on
# one GPU): the training log's first line says "XLA off", Keras would warn at every compile.
warnings.filterwarnings("ignore", message="Model doesn't support `jit_compile=True`")

from dlrecipes import cli, data, evaluation, models, optimizers, runtime, tuning  # noqa: E402
from dlrecipes.config import RecipeConfig  # noqa: E402
from dlrecipes.errors import ConfigError, RecipeError  # noqa: E402
from dlrecipes.run import Run, RunResult  # noqa: E402
from dlrecipes.saving import load_model  # noqa: E402

__version__ = "0.1.0"

__all__ = [
    "ConfigError",
    "RecipeConfig",
    "RecipeError",
    "Run",
    "RunResult",
    "cli",
    "data",
    "evaluation",
    "load_model",
    "models",
    "optimizers",
    "runtime",
    "tuning",
]
