"""Few-label studies: test accuracy against labels per class, for each arm of a recipe, over seeds.

`run(train, ...)` calls a recipe's own `train` once per arm, label count and seed, each in its
own run directory, then writes the table (mean and spread over seeds) and the plot into the
study's `report.md`. The recipe's `Config` has the fields `study` (label counts, e.g.
"5,10,50,all"), `study_seeds` and `labels_per_class`; the arms are config overrides, e.g.
`{"fine-tuned": {}, "from scratch": {"from_scratch": True}}`.

    run_dir/  config.json  study.json  study.png  report.md
              <arm>/<count>-per-class/seed-<s>/   (a run directory each: metrics.json, ...)

On texts, each run fits a bag-of-words baseline on the same kept examples (`metrics.json`'s
`baseline`); the table puts its mean over seeds beside the arms', and the study's last lines say
at which label counts it did as well as the first arm or better.

Finished runs are kept when a study is resumed; an unfinished one continues from its backup.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from dlrecipes import progress, reports
from dlrecipes.config import RecipeConfig
from dlrecipes.errors import ConfigError
from dlrecipes.run import RunResult, finished_metrics, parent_run

ALL = "all"


def counts(spec: str) -> list[int | None]:
    """`"5,10,50,all"` -> `[5, 10, 50, None]` (None: every training example).

    Raises:
        ConfigError: an entry that is neither a positive whole number nor `all`.
    """
    out: list[int | None] = []
    for item in (s.strip() for s in spec.split(",")):
        if item == ALL:
            out.append(None)
        elif item.isdigit() and int(item) > 0:
            out.append(int(item))
        else:
            raise ConfigError(
                f"--study {spec!r}: {item!r} is not a label count. Give labels per class, "
                "comma-separated, with `all` for every example: --study 5,10,50,all."
            )
    return out


def _label(count: int | None) -> str:
    return ALL if count is None else str(count)


def _slug(arm: str) -> str:
    return arm.replace(" ", "-")


def run(
    train: Callable[..., RunResult],
    recipe: str,
    config: RecipeConfig,
    arms: dict[str, dict[str, Any]],
    run_dir: Path | None = None,
    *,
    resume: bool = False,
) -> RunResult:
    """Trains every arm at every label count of `config.study` with `config.study_seeds` seeds,
    each with `train(config, run_dir, resume=...)`, and prints the table.

    `arms` maps an arm's name to its config overrides. `run_dir` None means a new
    `runs/<recipe>/<timestamp>`. Ctrl-C raises `run.Interrupted` naming the study's directory,
    which `--resume` continues.

    Returns:
        The study's directory, and as metrics the summary also written to `study.json`: per-run
        rows, and per arm and count the mean, standard deviation, minimum and maximum of test
        accuracy.
    """
    seeds = range(config.seed, config.seed + config.study_seeds)
    jobs = [(arm, n, s) for n in counts(config.study) for s in seeds for arm in arms]
    rows = []
    baseline = ""  # its name, when the runs fit one
    with parent_run(run_dir, recipe, config, resume=resume) as run_dir:
        for arm, count, seed in progress.bar(jobs, desc="few-label study", unit="run"):
            sub = run_dir / _slug(arm) / f"{_label(count)}-per-class" / f"seed-{seed}"
            metrics = finished_metrics(sub)
            if metrics is None:
                what = f"{arm}, {_label(count)} labels per class, seed {seed}"
                print(f"\n== {what}: {sub}", flush=True)
                sub_config = dataclasses.replace(
                    config, study="", labels_per_class=count, seed=seed, **arms[arm]
                )
                resumable = (sub / "config.json").exists()
                metrics = train(sub_config, sub, resume=resumable).metrics
            row = {
                "arm": arm,
                "labels_per_class": _label(count),
                "seed": seed,
                "test_accuracy": metrics["accuracy"],
                "val_accuracy": metrics["best_val_accuracy"],
            }
            if "baseline" in metrics:  # texts: TF-IDF + logistic regression on the same examples
                row["baseline_accuracy"] = metrics["baseline"]["accuracy"]
                baseline = metrics["baseline"]["name"]
            rows.append(row)
    summary = {"arms": list(arms), "runs": rows, "table": _table(rows, list(arms))}
    if baseline and all("baseline_accuracy" in r for r in rows):
        summary["baseline_model"] = baseline
    reports.write_json(run_dir / "study.json", summary)
    _plot(summary, run_dir / "study.png")
    _report(recipe, config, summary, run_dir)
    print(table_markdown(summary))
    if verdict := baseline_verdict(summary):
        print(verdict)
    return RunResult(run_dir, summary)


def _spread(accuracies: list[float]) -> dict[str, Any]:
    acc = np.array(accuracies)
    return {
        "mean": float(acc.mean()),
        "std": float(acc.std(ddof=1)) if len(acc) > 1 else 0.0,
        "min": float(acc.min()),
        "max": float(acc.max()),
        "seeds": len(acc),
    }


def _table(rows: list[dict], arms: list[str]) -> list[dict]:
    """Per label count: each arm's mean, std (over seeds), min and max test accuracy; when the
    runs carry one, the baseline's too (`baseline`, from the first arm's runs: every arm keeps
    the same examples at a count and seed, so fits the same baseline)."""
    table = []
    for count in dict.fromkeys(r["labels_per_class"] for r in rows):
        entry: dict[str, Any] = {"labels_per_class": count}
        for arm in arms:
            runs = [r for r in rows if r["arm"] == arm and r["labels_per_class"] == count]
            entry[arm] = _spread([r["test_accuracy"] for r in runs])
        first = [r for r in rows if r["arm"] == arms[0] and r["labels_per_class"] == count]
        if all("baseline_accuracy" in r for r in first):
            entry["baseline"] = _spread([r["baseline_accuracy"] for r in first])
        table.append(entry)
    return table


def baseline_verdict(summary: dict) -> str:
    """The label counts at which the baseline's mean did as well as the first arm's or better,
    said plainly; "" when it never did or the study has no baseline."""
    arm = summary["arms"][0]
    won = [
        e["labels_per_class"]
        for e in summary["table"]
        if "baseline_model" in summary and e["baseline"]["mean"] >= e[arm]["mean"]
    ]
    if not won:
        return ""
    return (
        f"The baseline ({summary['baseline_model']}) did as well as {arm} or better at "
        f"{', '.join(won)} labels per class, at a fraction of the cost: at those counts, "
        "prefer it or give the model more epochs (--epochs) or a search (tune)."
    )


def _plot(summary: dict, out: Path) -> None:
    """Mean test accuracy (bars: standard deviation over seeds) against labels per class."""
    table = summary["table"]
    x = np.arange(len(table))
    # A Figure of its own, not pyplot's: files only, and the user's matplotlib backend untouched.
    fig = Figure(figsize=(6, 4))
    ax = fig.subplots()
    for arm in summary["arms"]:
        means = [100 * e[arm]["mean"] for e in table]
        stds = [100 * e[arm]["std"] for e in table]
        ax.errorbar(x, means, yerr=stds, marker="o", capsize=4, label=arm)
    if all("baseline" in e for e in table):
        means = [100 * e["baseline"]["mean"] for e in table]
        ax.plot(x, means, linestyle="--", marker="s", color="grey", label="bag-of-words baseline")
    ax.set_xticks(x, [e["labels_per_class"] for e in table])
    ax.set_xlabel("labelled training examples per class")
    ax.set_ylabel("test accuracy (%)")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(out, dpi=100)


def table_markdown(summary: dict) -> str:
    """The study's table as markdown: mean ± std per arm (and the baseline's, when the runs
    fitted one), and the first arm minus the second."""
    arms = summary["arms"]
    columns = [*arms, "baseline"] if "baseline_model" in summary else arms
    seeds = summary["table"][0][arms[0]]["seeds"] if summary["table"] else 0
    head = ["labels per class", *(f"{a} (mean ± std, {seeds} seeds)" for a in columns)]
    if len(arms) == 2:
        head.append(f"{arms[0]} - {arms[1]}")
    lines = ["| " + " | ".join(head) + " |", "|---" * len(head) + "|"]
    for entry in summary["table"]:
        cells = [entry["labels_per_class"]]
        cells += [f"{100 * entry[a]['mean']:.1f}% ± {100 * entry[a]['std']:.1f}" for a in columns]
        if len(arms) == 2:
            cells.append(f"{100 * (entry[arms[0]]['mean'] - entry[arms[1]]['mean']):+.1f}")
        lines.append("| " + " | ".join(cells) + " |")
    if "baseline_model" in summary:
        lines += [
            "",
            f"baseline: {summary['baseline_model']}, fitted by each run on its kept examples.",
        ]
    return "\n".join(lines)


def _report(recipe: str, config: RecipeConfig, summary: dict, run_dir: Path) -> None:
    seeds = config.study_seeds
    lines = [
        f"# {recipe}: few-label study on {config.dataset}",
        "",
        f"Test accuracy of every arm at each number of labelled training examples per class, "
        f"{seeds} seeds each (seeds {config.seed}-{config.seed + seeds - 1}: the examples "
        "kept and the initialisation change with the seed). Every run has its own run "
        "directory below this one.",
        "",
        table_markdown(summary),
        "",
        "![accuracy against labels per class](study.png)",
        "",
        "## Config",
        "",
        "```json",
        json.dumps(config.to_dict(), indent=2),
        "```",
        "",
    ]
    (run_dir / "report.md").write_text("\n".join(lines))
