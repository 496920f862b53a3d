"""Reading `results/*.json`: the rows of each benchmark, its machine, and the data it ran on."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"


class RenderError(Exception):
    """A result file lacks what a document needs, or a document names an unknown region."""


@dataclasses.dataclass(frozen=True)
class Result:
    """One `results/<name>.json`: the rows of one benchmark, where and on what data they ran."""

    name: str
    title: str
    machine: dict[str, Any]
    data: dict[str, str]  # embedded dataset -> the version it was measured on
    rows: list[dict[str, Any]]
    notes: str = ""

    def row(self, key: str, value: Any) -> dict[str, Any]:
        """The first row whose `key` is `value`."""
        for row in self.rows:
            if row.get(key) == value:
                return row
        raise RenderError(f"results/{self.name}.json has no row whose {key!r} is {value!r}.")

    def row_ending(self, key: str, suffix: str) -> dict[str, Any]:
        """The first row whose `key` ends with `suffix`."""
        for row in self.rows:
            if str(row.get(key, "")).endswith(suffix):
                return row
        raise RenderError(f"results/{self.name}.json has no row whose {key!r} ends {suffix!r}.")


@dataclasses.dataclass(frozen=True)
class Results:
    """Every result file, and the version of each embedded dataset its builder makes today."""

    by_name: dict[str, Result]
    current: dict[str, str]

    def __getitem__(self, name: str) -> Result:
        if name not in self.by_name:
            raise RenderError(f"benchmarks/results/{name}.json is missing; `make bench` writes it.")
        return self.by_name[name]

    def stale(self, result: Result) -> dict[str, str]:
        """The datasets `result` measured on an older version than today's, with that version."""
        return {
            name: version
            for name, version in result.data.items()
            if self.current.get(name, version) != version
        }

    def data(self, result: Result, short: bool = False) -> str:
        """`mnist_sample 2.0.0`, with a stale mark where the data has moved on since."""
        parts = []
        for name, version in result.data.items():
            text = f"`{name}` {version}"
            if name in self.stale(result):
                text += (
                    " (**stale**)"
                    if short
                    else (f" (**stale**: today's builder makes {self.current[name]})")
                )
            parts.append(text)
        return ", ".join(parts)

    def on(self, result: Result, short: bool = False) -> str:
        """`2026-11-27, mnist_sample 2.0.0`: the date and the data of `result`."""
        return ", ".join(filter(None, [result.machine["date"], self.data(result, short)]))

    def machine(self, result: Result) -> str:
        """`2 CPU cores, no GPU (TensorFlow 2.21.0, Keras 3.15.1)`."""
        m = result.machine
        gpus = "no GPU" if not m["gpus"] else f"{m['gpus']} GPUs"
        return f"{m['cpus']} CPU cores, {gpus} (TensorFlow {m['tensorflow']}, Keras {m['keras']})"


def data_versions() -> dict[str, str]:
    """The version each embedded dataset's builder makes today."""
    from dlrecipes.data.builders import EMBEDDED

    return {name: str(builder.VERSION) for name, builder in EMBEDDED.items()}


def load(directory: Path = RESULTS, current: dict[str, str] | None = None) -> Results:
    """Every `*.json` in `directory`; `current`: today's dataset versions (default: builders')."""
    by_name = {}
    for path in sorted(directory.glob("*.json")):
        payload = json.loads(path.read_text())
        if "data" not in payload:
            raise RenderError(
                f"{path} does not say which data it was measured on (no 'data' entry): "
                "`make bench` writes it, or add the versions the run used by hand."
            )
        by_name[payload["name"]] = Result(
            name=payload["name"],
            title=payload["title"],
            machine=payload["machine"],
            data=payload["data"],
            rows=payload["rows"],
            notes=payload.get("notes", ""),
        )
    return Results(by_name, data_versions() if current is None else current)
