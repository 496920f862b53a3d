"""Expected refusals: each names what was wrong and what to do instead.

Everything the command line should answer with one line and exit status 2 derives from
`RecipeError`; `cli.run` catches only that. Any other exception is a bug and keeps its traceback.
"""


class RecipeError(Exception):
    """Base class of every expected refusal (bad data, config, run directory, checkpoint, ...)."""


class ConfigError(RecipeError, ValueError):
    """A config value or flag is out of range, not an allowed choice, or contradicts another."""


class DatasetError(RecipeError, ValueError):
    """A dataset spec or a dataset's files cannot be used as asked."""


class RunDirError(RecipeError):
    """A run or search directory cannot be used as asked (exists already, holds no run to
    resume, or holds a search started with another tuner or other settings)."""


class CheckpointError(RecipeError):
    """A saved model or backup is missing, unreadable, or not what the command expects."""


class WeightsUnavailable(RecipeError):
    """Pretrained weights are neither cached here nor downloadable from this machine."""


class TrainingDiverged(RecipeError):
    """The loss became NaN or infinite."""


class TuningFailed(RecipeError):
    """No trial of a search completed, so there are no best hyperparameters."""


class ClusterError(RecipeError):
    """A multi-host run cannot form its cluster, or lost one of its processes."""


class DataWarning(UserWarning):
    """Data was used with rows or files left out or changed; the message names them and is
    worded for the user (`dlrecipes.console` prints it once, as `warning: <message>`)."""


class ExportFailed(RecipeError):
    """An export could not be written, or does not predict what the Keras model predicts."""
