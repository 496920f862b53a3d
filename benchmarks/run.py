"""`make bench`: run every benchmark (or those named) in its own process, then write the table.

    python benchmarks/run.py            # all of benchmarks/bench_*.py
    python benchmarks/run.py image      # just bench_image.py

Each `bench_<name>.py` measures its pairs side by side in one process and writes
`results/<name>.json`; this script then renders every result file into `results/README.md`.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"


def render() -> str:
    lines = ["# Benchmark results", "", "Written by `make bench`; each table is one process.", ""]
    for path in sorted(RESULTS.glob("*.json")):
        result = json.loads(path.read_text())
        m = result["machine"]
        lines += [
            f"## {result['title']}",
            "",
            f"Measured {m['date']} on {m['cpus']} CPU cores, {m['gpus']} GPUs, "
            f"TensorFlow {m['tensorflow']}, Keras {m['keras']}.",
            "",
        ]
        rows = result["rows"]
        if rows:
            keys = list(rows[0])
            lines.append("| " + " | ".join(keys) + " |")
            lines.append("|" + "---|" * len(keys))
            for row in rows:
                lines.append("| " + " | ".join(_fmt(row.get(k)) for k in keys) + " |")
        if result.get("notes"):
            lines += ["", result["notes"]]
        lines.append("")
    return "\n".join(lines)


def _fmt(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return "" if value is None else str(value)


def main(names: list[str]) -> int:
    scripts = [HERE / f"bench_{n}.py" for n in names] or sorted(HERE.glob("bench_*.py"))
    failed = []
    for script in scripts:
        if not script.exists():
            print(f"error: no benchmark {script.name}", file=sys.stderr)
            return 2
        print(f"== {script.name}", flush=True)
        if subprocess.run([sys.executable, str(script)]).returncode != 0:
            failed.append(script.name)
    (RESULTS / "README.md").write_text(render())
    print(f"table: {RESULTS / 'README.md'}")
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
