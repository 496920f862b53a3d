"""`make bench`: run every benchmark (or those named) in its own process, then write the table.

    python benchmarks/run.py            # all of benchmarks/bench_*.py
    python benchmarks/run.py image      # just bench_image.py

Each `bench_<name>.py` measures its pairs side by side in one process and writes
`results/<name>.json`; this script then writes `results/README.md` and every measured figure of
the documentation from the result files (`render.py`, also `make results`).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import render

HERE = Path(__file__).resolve().parent


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
    render.main([])  # results/README.md and every measured figure in the documents
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
