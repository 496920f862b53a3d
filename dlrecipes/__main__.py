"""`python -m dlrecipes list`, `copy <recipe> DEST` and `runs [DIR]`."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from dlrecipes import copying, runs_table
from dlrecipes.errors import RecipeError


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m dlrecipes", allow_abbrev=False)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("list", help="list the recipes", allow_abbrev=False)
    copy = commands.add_parser(
        "copy", help="copy a recipe folder into another project", allow_abbrev=False
    )
    copy.add_argument("recipe")
    copy.add_argument("dest")
    runs = commands.add_parser(
        "runs",
        help="list runs side by side (or a tuning directory's trials); writes runs.csv and "
        "runs.png into DIR",
        allow_abbrev=False,
    )
    runs.add_argument("dir", nargs="?", type=Path, default=Path("runs"), help="default: runs")
    runs.add_argument("--recipe", help="only the runs of this recipe (not for a tuning directory)")
    args = parser.parse_args(argv)
    if args.command == "list":
        print("\n".join(copying.available()))
        return 0
    try:
        if args.command == "runs":
            return _runs(args.dir, args.recipe)
        target = copying.copy_recipe(args.recipe, args.dest)
    except RecipeError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"Copied to {target}")
    print(copying.install_hint())
    print(f"Run it: python {target / 'recipe.py'} train --tiny")
    return 0


def _runs(directory: Path, recipe: str | None) -> int:
    search = runs_table.is_tuning_dir(directory)
    rows = runs_table.find_trials(directory) if search else runs_table.find_runs(directory, recipe)
    settings = runs_table.differing_settings(rows)
    print(runs_table.text_table(rows, settings, directory))
    stem = f"runs-{recipe}" if recipe and not search else "runs"
    runs_table.write_csv(rows, settings, directory, directory / f"{stem}.csv")
    runs_table.plot(rows, directory / f"{stem}.png")
    print(f"\nWritten: {directory / f'{stem}.csv'}, {directory / f'{stem}.png'}")
    if not search:
        print(f"Every run's curves, live: tensorboard --logdir {directory}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
