"""`python -m dlrecipes copy <recipe> DEST` and `python -m dlrecipes list`."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from dlrecipes import copying
from dlrecipes.errors import RecipeError


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m dlrecipes")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("list", help="list the recipes")
    copy = commands.add_parser("copy", help="copy a recipe folder into another project")
    copy.add_argument("recipe")
    copy.add_argument("dest")
    args = parser.parse_args(argv)
    if args.command == "list":
        print("\n".join(copying.available()))
        return 0
    try:
        target = copying.copy_recipe(args.recipe, args.dest)
    except RecipeError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"Copied to {target}")
    print(copying.install_hint())
    print(f"Run it: python {target / 'recipe.py'} train --tiny")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
