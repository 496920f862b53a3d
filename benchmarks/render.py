"""`make results`: the measured figures of the documentation, written from `results/*.json`.

Every measured figure in README.md, recipes/*/README.md and recipes/TUNING.md lies between two
markers, and the function of `regions.REGIONS` the first one names writes what is between them:

    <!-- results:image -->
    ... written by `regions.image()` from results/image.json ...
    <!-- /results -->

`results/README.md` shows every result file as a table. Each figure names its date and the
version of the embedded data it was measured on; a figure measured on an older version than the
one today's builders make is marked stale until `make bench` measures it again. Change the
wording in regions.py, never between the markers: `tests/test_results_render.py` fails while a
document differs from what this script writes.

    python benchmarks/render.py          # rewrite the marked regions and results/README.md
    python benchmarks/render.py --check  # list the documents that differ; exit 1 if any
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

from regions import REGIONS, table
from result_files import RESULTS, RenderError, Results, load

REPO = Path(__file__).resolve().parent.parent
TABLE = RESULTS / "README.md"
REGION = re.compile(
    r"(?P<open><!-- results:(?P<name>\w+) -->\n)(?P<body>.*?)(?P<close><!-- /results -->)",
    re.DOTALL,
)


def results_table(r: Results) -> str:
    """`results/README.md`: every result file as a table."""
    lines = [
        "# Benchmark results",
        "",
        "Written by `make results` (and `make bench`) from the `*.json` beside this file; each "
        "table is one process.",
        "",
    ]
    for result in r.by_name.values():
        m = result.machine
        lines += [
            f"## {result.title}",
            "",
            f"Measured {m['date']} on {m['cpus']} CPU cores, {m['gpus']} GPUs, "
            f"TensorFlow {m['tensorflow']}, Keras {m['keras']}. Data: "
            f"{r.data(result) or 'none embedded'}.",
            "",
        ]
        if result.rows:
            keys = list(result.rows[0])
            lines.append(table(keys, [[_cell(row.get(k)) for k in keys] for row in result.rows]))
        if result.notes:
            lines += ["", result.notes]
        lines.append("")
    return "\n".join(lines)


def _cell(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, list):
        return " / ".join(_cell(v) for v in value)
    return "" if value is None else str(value)


def documents() -> list[Path]:
    """The Markdown files that may hold marked regions."""
    return [REPO / "README.md", *sorted((REPO / "recipes").rglob("*.md"))]


def fill(text: str, r: Results, where: str = "") -> str:
    """`text` with every marked region written anew from `r`."""

    def one(match: re.Match) -> str:
        name = match["name"]
        if name not in REGIONS:
            raise RenderError(
                f"{where}: unknown region results:{name}; known: {', '.join(sorted(REGIONS))}."
            )
        return match["open"] + REGIONS[name](r).rstrip("\n") + "\n" + match["close"]

    return REGION.sub(one, text)


def rendered(r: Results) -> dict[Path, str]:
    """What every rendered document should hold: results/README.md and each marked document."""
    out = {TABLE: results_table(r)}
    for path in documents():
        text = path.read_text()
        if REGION.search(text):
            out[path] = fill(text, r, str(path.relative_to(REPO)))
    return out


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--check", action="store_true", help="list the documents that differ")
    args = parser.parse_args(argv)
    differ = [
        (path, text)
        for path, text in rendered(load()).items()
        if not path.exists() or path.read_text() != text
    ]
    for path, text in differ:
        if args.check:
            print(f"out of date: {path.relative_to(REPO)} (run `make results`)", file=sys.stderr)
        else:
            path.write_text(text)
            print(f"wrote {path.relative_to(REPO)}")
    return 1 if args.check and differ else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
