"""Runs side by side: what `python -m dlrecipes runs [DIR]` lists, writes to CSV and plots.

A run is a directory `DIR/<recipe>/<id>/` holding a `config.json` that names its recipe. For each
run, newest first: when it started (config.json is written as training starts), its recipe and
dataset, the settings in which it differs from other runs of its recipe, its best validation
accuracy, its test accuracy, its training time, and its state:

- `finished`: `metrics.json` is there (written last), or for a run made of runs (`--folds`, a
  few-label study) its summary (`folds.json`, `study.json`);
- `diverged`: its history ends in a loss that is not finite;
- `resumable`: `backup/` is there (or, for a run made of runs, its runs): `train --run-dir DIR
  --resume` goes on;
- `failed`: neither: refused or stopped before its first backup (or still in its first epoch).

Training time is the sum of the epochs' seconds that `history.csv` records (`seconds`, written by
`dlrecipes.callbacks.EpochSeconds`), however often the run was resumed; for a history without
that column (runs made before it existed), the time from config.json's writing to history.csv's
last. A run made of runs adds up the times of its runs.

A tuning directory (`DIR/<recipe>/tuning/`, keras-tuner's) lists its trials the same way: one row
per trial, the settings that differ between trials (each trial's whole config is its
`config.json`), the objective, the epochs and the state keras-tuner recorded, and the time from
the trial's start to its last record.

Example:

>>> rows = find_runs(Path("runs"), recipe="image_classification")
>>> print(text_table(rows, differing_settings(rows)))
"""

from __future__ import annotations

import csv
import dataclasses
import datetime
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from matplotlib.figure import Figure

from dlrecipes.callbacks import MONITOR, SECONDS, read_history
from dlrecipes.config import RECIPE_KEY
from dlrecipes.errors import RunDirError

# Written last by a finished run, or by a finished run made of runs.
SUMMARIES = ("metrics.json", "folds.json", "study.json")
# keras-tuner's files: the oracle of a search project, and one per trial.
ORACLE = "oracle.json"
TRIAL = "trial.json"


@dataclasses.dataclass(frozen=True)
class RunRow:
    """One run (or one tuning trial) as the table shows it.

    Args:
        path: its directory.
        recipe: the recipe that made it.
        config: its whole config (config.json), without the recipe.
        started: when config.json was written.
        val_accuracy: its best validation accuracy so far (a trial: its objective).
        test_accuracy: its test accuracy, once finished.
        train_seconds: its training time (see the module docstring), None when unknown.
        state: finished, diverged, resumable or failed (a trial: keras-tuner's status).
    """

    path: Path
    recipe: str
    config: dict[str, Any]
    started: datetime.datetime
    val_accuracy: float | None
    test_accuracy: float | None
    train_seconds: float | None
    state: str


def is_tuning_dir(directory: Path) -> bool:
    """Whether `directory` holds a keras-tuner search (`<project>/oracle.json`)."""
    return any(directory.glob(f"*/{ORACLE}"))


def find_runs(root: Path, recipe: str | None = None) -> list[RunRow]:
    """The runs under `root` (`root/<recipe>/<id>/`, or `root` itself a recipe's folder or a
    run), of `recipe` only if given, newest first.

    Raises:
        RunDirError: `root` is not a directory, or holds no run (of `recipe`).
    """
    if not root.is_dir():
        raise RunDirError(f"{root} is not a directory; pass the runs folder, e.g. runs.")
    found_runs = [p for p in [root, *root.glob("*"), *root.glob("*/*")] if _is_run(p)]
    # The runs of a run made of runs (its folds) are part of it, not rows of their own.
    rows = [_run(p) for p in found_runs if not any(q in p.parents for q in found_runs)]
    recipes = sorted({r.recipe for r in rows})
    if recipe is not None:
        rows = [r for r in rows if r.recipe == recipe]
    if not rows:
        searches = sorted(str(p.parent) for p in root.glob(f"*/*/{ORACLE}"))
        raise RunDirError(
            f"No runs{f' of {recipe}' if recipe else ''} under {root}"
            + (f" (runs there are of {', '.join(recipes)})" if recipes else "")
            + (f"; searches there: {', '.join(searches)}" if searches else "")
            + ". A run is <dir>/<recipe>/<id>/ with a config.json, as `train` writes it."
        )
    return sorted(rows, key=lambda r: r.started, reverse=True)


def find_trials(tuning_dir: Path) -> list[RunRow]:
    """The trials of the keras-tuner search in `tuning_dir`, newest first.

    Raises:
        RunDirError: no trial was started there yet.
    """
    rows = []
    for oracle in sorted(tuning_dir.glob(f"*/{ORACLE}")):
        for trial_dir in oracle.parent.glob("trial_*"):
            if (trial_dir / TRIAL).exists() and (trial_dir / "config.json").exists():
                rows.append(_trial(trial_dir, recipe=oracle.parent.name))
    if not rows:
        raise RunDirError(f"The search in {tuning_dir} has no trials yet.")
    return sorted(rows, key=lambda r: r.started, reverse=True)


def differing_settings(rows: Sequence[RunRow]) -> list[str]:
    """The config fields whose values differ between runs of the same recipe, in config order
    (the dataset has a column of its own)."""
    fields: dict[str, None] = {}
    for recipe in dict.fromkeys(r.recipe for r in rows):
        configs = [r.config for r in rows if r.recipe == recipe]
        for name in dict.fromkeys(k for c in configs for k in c):
            if name != "dataset" and len({_cell(c.get(name)) for c in configs}) > 1:
                fields[name] = None
    return list(fields)


def columns(settings: Sequence[str]) -> list[str]:
    """The table's columns around the `settings` that differ."""
    return [
        "started",
        "recipe",
        "dataset",
        *settings,
        "val_accuracy",
        "test_accuracy",
        "train_s",
        "state",
        "run",
    ]


def values(row: RunRow, settings: Sequence[str], root: Path) -> list[str]:
    """The cells of `row` under `columns(settings)`; `run` relative to `root`."""
    try:
        where = row.path.relative_to(root)
    except ValueError:
        where = row.path
    return [
        row.started.strftime("%Y-%m-%d %H:%M"),
        row.recipe,
        _cell(row.config.get("dataset")),
        *(_cell(row.config.get(name)) for name in settings),
        _accuracy(row.val_accuracy),
        _accuracy(row.test_accuracy),
        "" if row.train_seconds is None else f"{row.train_seconds:.0f}",
        row.state,
        str(where) if str(where) != "." else str(row.path),
    ]


def text_table(rows: Sequence[RunRow], settings: Sequence[str], root: Path) -> str:
    """The rows as aligned text columns, for the terminal."""
    table = [columns(settings), *(values(r, settings, root) for r in rows)]
    widths = [max(len(line[i]) for line in table) for i in range(len(table[0]))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip()
        for line in table
    )


def write_csv(rows: Sequence[RunRow], settings: Sequence[str], root: Path, out: Path) -> None:
    """The same table as CSV."""
    with out.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(columns(settings))
        writer.writerows(values(r, settings, root) for r in rows)


def plot(rows: Sequence[RunRow], out: Path) -> Figure:
    """Accuracy against training time, one point per run with a known time: test accuracy
    filled, validation accuracy hollow, a colour per recipe. Returns the figure (not pyplot's:
    the user's matplotlib backend stays as it is)."""
    fig = Figure(figsize=(8, 5))
    ax = fig.subplots()
    colours = {name: f"C{i}" for i, name in enumerate(dict.fromkeys(r.recipe for r in rows))}
    for recipe, colour in colours.items():
        timed = [r for r in rows if r.recipe == recipe and r.train_seconds is not None]
        for kind, filled in (("test_accuracy", True), ("val_accuracy", False)):
            points = [(r, getattr(r, kind)) for r in timed if getattr(r, kind) is not None]
            if not points:
                continue
            ax.scatter(
                [r.train_seconds for r, _ in points],
                [100 * value for _, value in points],
                s=40,
                color=colour if filled else "none",
                edgecolors=colour,
                label=f"{recipe}: {kind.split('_')[0]}",
            )
            for r, value in points:
                if filled or r.test_accuracy is None:  # each run named once
                    ax.annotate(
                        r.path.name,
                        (r.train_seconds, 100 * value),
                        fontsize=7,
                        xytext=(4, 3),
                        textcoords="offset points",
                    )
    ax.set_xlabel("training time (s)")
    ax.set_ylabel("accuracy (%)")
    ax.set_title("Accuracy against training time")
    ax.grid(alpha=0.3)
    if ax.collections:
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    return fig


def _is_run(path: Path) -> bool:
    config = path / "config.json"
    if not config.is_file():
        return False
    try:
        return bool(json.loads(config.read_text()).get(RECIPE_KEY))
    except (json.JSONDecodeError, AttributeError):
        return False


def _run(run_dir: Path) -> RunRow:
    config = json.loads((run_dir / "config.json").read_text())
    recipe = config.pop(RECIPE_KEY)
    metrics = _summary(run_dir)
    history = read_history(run_dir / "history.csv")
    val = metrics.get("best_val_accuracy", metrics.get("val_accuracy_mean"))
    if val is None:
        scores = [float(r[MONITOR]) for r in history if _number(r.get(MONITOR))]
        val = max(scores) if scores else None
    test = metrics.get("accuracy", metrics.get("test_accuracy_mean"))
    return RunRow(
        path=run_dir,
        recipe=recipe,
        config=config,
        started=_mtime(run_dir / "config.json"),
        val_accuracy=val,
        test_accuracy=test,
        train_seconds=_train_seconds(run_dir),
        state=_state(run_dir, history),
    )


def _summary(run_dir: Path) -> dict[str, Any]:
    for name in SUMMARIES:
        if (run_dir / name).exists():
            return json.loads((run_dir / name).read_text())
    return {}


def _state(run_dir: Path, history: list[dict[str, str]]) -> str:
    if any((run_dir / name).exists() for name in SUMMARIES):
        return "finished"
    if history and _number(history[-1].get("loss")) is False:
        return "diverged"
    if (run_dir / "backup").is_dir() or _sub_runs(run_dir):
        return "resumable"
    return "failed"


def _sub_runs(run_dir: Path) -> list[Path]:
    """The runs inside a run made of runs (folds, a study's arms)."""
    return [p.parent for p in run_dir.rglob("config.json") if p.parent != run_dir]


def _train_seconds(run_dir: Path) -> float | None:
    history = run_dir / "history.csv"
    if history.exists():
        rows = read_history(history)
        if rows and all(_number(r.get(SECONDS)) for r in rows):
            return sum(float(r[SECONDS]) for r in rows)
        if rows:  # made before the column existed: from the start to the last epoch's end
            return history.stat().st_mtime - (run_dir / "config.json").stat().st_mtime
        return None
    parts = [_train_seconds(p) for p in _sub_runs(run_dir) if (p / "history.csv").exists()]
    return sum(parts) if parts and None not in parts else None


def _trial(trial_dir: Path, recipe: str) -> RunRow:
    record = json.loads((trial_dir / TRIAL).read_text())
    config = json.loads((trial_dir / "config.json").read_text())
    config.pop(RECIPE_KEY, None)
    status = str(record.get("status", ""))
    score = record.get("score")
    return RunRow(
        path=trial_dir,
        recipe=recipe,
        config=config,
        started=_mtime(trial_dir / "config.json"),
        val_accuracy=float(score) if score is not None else None,
        test_accuracy=None,
        train_seconds=(
            (trial_dir / TRIAL).stat().st_mtime - (trial_dir / "config.json").stat().st_mtime
            if status == "COMPLETED"
            else None
        ),
        state=status.lower(),
    )


def _mtime(path: Path) -> datetime.datetime:
    return datetime.datetime.fromtimestamp(path.stat().st_mtime)


def _number(text: str | None) -> bool | None:
    """Whether `text` is a finite number (None when it is empty or missing)."""
    if text in (None, "", "NA"):
        return None
    try:
        return math.isfinite(float(text))
    except ValueError:
        return False


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, list | tuple):
        return ",".join(map(str, value))
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def _accuracy(value: float | None) -> str:
    return "" if value is None else f"{value:.4f}"
