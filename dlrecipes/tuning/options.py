"""How to search, as the `tune` flags set it: `SearchOptions`, `add_search_flags`,
`options_from_args`."""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

from dlrecipes.callbacks import MONITOR
from dlrecipes.errors import ConfigError

TUNERS = ("hyperband", "bayesian", "random")


@dataclasses.dataclass(frozen=True)
class SearchOptions:
    """How to search, as the `tune` flags set it.

    Args:
        tuner: `hyperband`, `bayesian` or `random`.
        max_trials: trials of a random or Bayesian search (Hyperband sizes itself from
            `max_epochs`).
        max_epochs: epochs of the longest trial; None = the config's `epochs`.
        executions_per_trial: models trained per trial; the objective is their mean.
        objective: the metric to optimize; `loss` / `error` metrics are minimized, others
            maximized.
        directory: where the search and its results live; None = `runs/<recipe>/tuning`.
        overwrite: start afresh instead of resuming a search found in `directory` (a resumed
            search must have the same tuner, objective, executions and config).
    """

    tuner: str = "hyperband"
    max_trials: int = 10
    max_epochs: int | None = None
    executions_per_trial: int = 1
    objective: str = MONITOR
    directory: Path | None = None
    overwrite: bool = False

    def __post_init__(self) -> None:
        if self.tuner not in TUNERS:
            raise ConfigError(f"--tuner {self.tuner!r} is unknown; use one of {', '.join(TUNERS)}.")
        for name in ("max_trials", "executions_per_trial"):
            if getattr(self, name) < 1:
                raise ConfigError(f"--{name.replace('_', '-')} must be at least 1.")
        if self.max_epochs is not None and self.max_epochs < 1:
            raise ConfigError("--max-epochs must be at least 1.")


def add_search_flags(parser: argparse.ArgumentParser, tuner: str = SearchOptions.tuner) -> None:
    """The `tune` flags that set `SearchOptions` (`tuner`: the default `--tuner`)."""
    group = parser.add_argument_group("search")
    group.add_argument("--tuner", choices=TUNERS, default=tuner)
    group.add_argument(
        "--max-trials",
        type=int,
        default=SearchOptions.max_trials,
        help="trials of a random or bayesian search (Hyperband sizes itself from --max-epochs)",
    )
    group.add_argument(
        "--max-epochs", type=int, help="epochs of the longest trial (default: the config's epochs)"
    )
    group.add_argument(
        "--executions-per-trial",
        type=int,
        default=SearchOptions.executions_per_trial,
        help="models trained per trial; the objective is their mean",
    )
    group.add_argument(
        "--objective",
        default=SearchOptions.objective,
        help="metric to optimize (loss / error metrics are minimized)",
    )
    group.add_argument(
        "--directory", type=Path, help="where the search lives (default runs/<recipe>/tuning)"
    )
    group.add_argument(
        "--overwrite",
        action="store_true",
        help="start afresh; without it a search found in --directory is resumed (it must have "
        "been started with the same --tuner and config flags)",
    )


def options_from_args(args: argparse.Namespace) -> SearchOptions:
    """`SearchOptions` from the flags `add_search_flags` added."""
    return SearchOptions(
        **{f.name: getattr(args, f.name) for f in dataclasses.fields(SearchOptions)}
    )
