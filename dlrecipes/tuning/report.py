"""What a hyperparameter search leaves behind: best_hparams.json, trials.csv, tuning_report.md and
objective.png, built from the oracle's trials."""

from __future__ import annotations

import csv
import dataclasses
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import keras_tuner
from matplotlib.figure import Figure

from dlrecipes.config import RecipeConfig

# A failed trial's traceback, written into its trial directory by the tuner that ran it.
ERROR_FILE = "error.txt"
# A trial's whole config, as `train --hparams` takes it, written there when the trial begins.
TRIAL_CONFIG = "config.json"
BEST_HPARAMS = "best_hparams.json"
RESULT_FILES = (BEST_HPARAMS, "trials.csv", "tuning_report.md", "objective.png")
COMPLETED = "COMPLETED"
# The line of a traceback that names the exception: `tensorflow...InvalidArgumentError: ...`.
_EXCEPTION = re.compile(r"^([\w.]+(?:Error|Exception|Exit|Interrupt))(?::|$)")


@dataclasses.dataclass(frozen=True)
class TrialRow:
    """One trial as the reports show it.

    Args:
        trial_id: keras-tuner's trial id.
        status: COMPLETED, FAILED, or RUNNING / INVALID for a trial that never finished (its
            process was stopped; a resumed search runs it again).
        score: the objective, for a completed trial.
        epochs: epochs the trial's model had trained by its end (Hyperband counts those of the
            trial it continued from).
        continues: Hyperband: the trial whose weights this one continued from.
        values: the searched config fields -> this trial's values.
        config: the trial's whole config, as `train --hparams` takes it.
        error: the traceback of a failed trial.
    """

    trial_id: str
    status: str
    score: float | None
    epochs: int
    continues: str | None
    values: dict[str, Any]
    config: dict[str, Any]
    error: str | None

    @property
    def error_line(self) -> str:
        """The exception and the last line of its message, e.g. `InvalidArgumentError: Received
        a label value of 9 ...` (TensorFlow puts the useful part below its exception line)."""
        lines = [line.strip() for line in (self.error or "").splitlines() if line.strip()]
        lines = [line for line in lines if not line.startswith(("[[", "File "))] or lines
        if not lines:
            return ""
        kinds = [m[1] for m in map(_EXCEPTION.match, lines) if m]
        last = lines[-1]
        if _EXCEPTION.match(last):
            last = last.split(":", 1)[0].rsplit(".", 1)[-1] + last[len(last.split(":", 1)[0]) :]
        elif kinds:
            last = f"{kinds[-1].rsplit('.', 1)[-1]}: {last}"
        return last[:160]


@dataclasses.dataclass(frozen=True)
class Summary:
    """Every trial of a search, completed ones best first, then the rest by trial id."""

    tuner: str
    objective: str
    direction: str
    fields: list[str]
    rows: list[TrialRow]
    stopped: str | None = None  # why keras-tuner ended the search early, if it did

    @property
    def best(self) -> TrialRow | None:
        return self.rows[0] if self.rows and self.rows[0].status == COMPLETED else None

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for row in self.rows:
            out[row.status] = out.get(row.status, 0) + 1
        return out

    def counts_text(self) -> str:
        counts = self.counts()
        unfinished = len(self.rows) - counts.get(COMPLETED, 0) - counts.get("FAILED", 0)
        text = (
            f"{_count(len(self.rows), 'trial')}: {counts.get(COMPLETED, 0)} completed, "
            f"{counts.get('FAILED', 0)} failed"
        )
        return text + (f", {unfinished} unfinished" if unfinished else "")

    def table(self) -> str:
        """The trials as a markdown table, best first."""
        head = ["trial", "status", self.objective, "epochs", *self.fields]
        if any(r.continues for r in self.rows):
            head.insert(4, "continues")
        if any(r.error for r in self.rows):
            head.append("error")
        lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for r in self.rows:
            cells = [r.trial_id, r.status, _fmt(r.score), str(r.epochs)]
            if "continues" in head:
                cells.append(r.continues or "")
            cells += [_fmt(r.values.get(f)) for f in self.fields]
            if "error" in head:
                cells.append(r.error_line.replace("|", "/"))
            lines.append("| " + " | ".join(cells) + " |")
        return "\n".join(lines)


def summarize(
    oracle: keras_tuner.Oracle,
    *,
    project_dir: Path,
    fields: list[str],
    config_of: Callable[[keras_tuner.engine.trial.Trial], RecipeConfig],
    tuner: str,
    stopped: str | None = None,
) -> Summary:
    """The oracle's trials as a `Summary` (the oracle must be the chief's: it holds the trials).

    Args:
        oracle: the chief's oracle.
        project_dir: keras-tuner's project directory, where each trial left its files.
        fields: the searched config fields, the table's columns.
        config_of: a trial's whole config, for a trial that recorded none (`TRIAL_CONFIG`).
        tuner: the tuner's name, for the report.
        stopped: why keras-tuner ended the search early, if it did.
    """
    rows = []
    for trial in oracle.trials.values():
        trial_dir = project_dir / f"trial_{trial.trial_id}"
        recorded = trial_dir / TRIAL_CONFIG
        config = (
            json.loads(recorded.read_text()) if recorded.exists() else config_of(trial).to_dict()
        )
        error = None
        if trial.status != COMPLETED:
            error_file = trial_dir / ERROR_FILE
            error = trial.message or (error_file.read_text() if error_file.exists() else None)
        rows.append(
            TrialRow(
                trial_id=str(trial.trial_id),
                status=str(trial.status),
                score=float(trial.score) if trial.status == COMPLETED else None,
                epochs=int(config["epochs"]),
                continues=trial.hyperparameters.values.get("tuner/trial_id"),
                values={f: config[f] for f in fields},
                config=config,
                error=error,
            )
        )
    sign = -1 if oracle.objective.direction == "max" else 1
    rows.sort(key=lambda r: (r.status != COMPLETED, sign * (r.score or 0), r.trial_id))
    return Summary(tuner, oracle.objective.name, oracle.objective.direction, fields, rows, stopped)


def remove(directory: Path) -> None:
    """Deletes the result files of an earlier search in `directory` (before `--overwrite`)."""
    for name in RESULT_FILES:
        (directory / name).unlink(missing_ok=True)


def write(directory: Path, summary: Summary, recipe_name: str) -> Path | None:
    """Writes the result files; returns the path of best_hparams.json, or None (and no such
    file) when no trial completed."""
    directory.mkdir(parents=True, exist_ok=True)
    best_path = directory / BEST_HPARAMS
    best = summary.best
    if best is None:
        best_path.unlink(missing_ok=True)
    else:
        best_path.write_text(json.dumps(best.config, indent=2) + "\n")
    _write_csv(directory / "trials.csv", summary)
    plot_objective(summary, directory / "objective.png")
    (directory / "tuning_report.md").write_text(_markdown(summary, recipe_name, best_path))
    return best_path if best else None


def plot_objective(summary: Summary, out: Path) -> None:
    """The objective of every completed trial in the order trials started, with the best so far;
    failed trials are marked along the bottom."""
    rows = sorted(summary.rows, key=lambda r: int(r.trial_id) if r.trial_id.isdigit() else 0)
    fig = Figure(figsize=(7, 4))  # not pyplot's: the user's matplotlib backend stays as it is
    ax = fig.subplots()
    done = [(i, r.score) for i, r in enumerate(rows) if r.status == COMPLETED]
    if done:
        xs, ys = zip(*done, strict=True)
        pick = max if summary.direction == "max" else min
        best_so_far = [pick(ys[: k + 1]) for k in range(len(ys))]
        ax.plot(xs, ys, "o", label="trial")
        ax.step(xs, best_so_far, where="post", label="best so far")
    failed = [i for i, r in enumerate(rows) if r.status != COMPLETED]
    if failed:
        ax.plot(failed, [0] * len(failed), "x", color="red", label="failed / unfinished")
    ax.set_xticks(range(len(rows)), [r.trial_id for r in rows], rotation=90, fontsize=7)
    ax.set_xlabel("trial")
    ax.set_ylabel(summary.objective)
    ax.set_title(f"{summary.tuner} search: {summary.objective} per trial")
    ax.legend(loc="best")
    fig.tight_layout()
    fig.savefig(out, dpi=100)


def _markdown(summary: Summary, recipe_name: str, best_path: Path) -> str:
    best = summary.best
    lines = [
        f"# Tuning {recipe_name}",
        "",
        f"{summary.tuner} search, objective `{summary.objective}` ({summary.direction}); "
        f"{summary.counts_text()}.",
    ]
    if summary.stopped:
        lines += ["", f"keras-tuner stopped the search early: {summary.stopped}"]
    lines.append("")
    if best:
        lines += [
            f"Best: trial {best.trial_id}, {summary.objective} {best.score:.4f} after "
            f"{_count(best.epochs, 'epoch')}. `{best_path.name}` holds its whole config "
            f"(seed {best.config.get('seed')}); this trains it again:",
            "",
            f"    python recipes/{recipe_name}/recipe.py train --hparams {best_path}",
        ]
        if best.continues:
            lines += [
                "",
                f"Trial {best.trial_id} continued the weights of trial {best.continues} "
                "(Hyperband) with a fresh optimizer; `train` runs all its epochs from scratch "
                "in one go, so it does not repeat the trial's score exactly.",
            ]
    else:
        lines.append("No trial completed, so there are no best hyperparameters.")
    lines += ["", "## Trials, best first", "", summary.table(), "", "![](objective.png)", ""]
    failed = [r for r in summary.rows if r.error]
    if failed:
        lines += ["## Errors", ""]
        for r in failed:
            tail = "\n".join(r.error.strip().splitlines()[-12:])
            lines += [f"### Trial {r.trial_id} ({r.status})", "", "```text", tail, "```", ""]
    unfinished = [r.trial_id for r in summary.rows if r.status not in (COMPLETED, "FAILED")]
    if unfinished:
        lines += [
            f"Unfinished trials {', '.join(unfinished)}: their process stopped before they "
            "ended. Running the search again on this directory runs them again.",
            "",
        ]
    return "\n".join(lines)


def _write_csv(path: Path, summary: Summary) -> None:
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(
            ["trial", "status", summary.objective, "epochs", "continues", *summary.fields, "error"]
        )
        for r in summary.rows:
            writer.writerow(
                [r.trial_id, r.status, r.score, r.epochs, r.continues or ""]
                + [_fmt(r.values.get(f)) for f in summary.fields]
                + [r.error_line]
            )


def _fmt(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, (tuple, list)):
        return ",".join(map(str, value))
    return str(value)


def _count(n: int, unit: str) -> str:
    return f"{n} {unit}{'' if n == 1 else 's'}"
