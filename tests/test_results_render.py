"""Measured figures have one source, `benchmarks/results/*.json`, written out by `render.py`."""

from __future__ import annotations

import ast
import importlib
import json
import os
import re
import shutil
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT

# A figure copied by hand: a decimal percentage or ratio (98.69%, 1.84x) outside a marked region.
HAND_COPIED = re.compile(r"\b\d+\.\d+(%|x\b)")
# Not the repository's own files: environments, caches, outputs.
SKIPPED = {".git", ".venv", ".ruff_cache", ".pytest_cache", "__pycache__", "runs", "dist", "build"}


@pytest.fixture(scope="module")
def render():
    """benchmarks/render.py, imported as `python benchmarks/render.py` runs it."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        yield importlib.import_module("render")
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))


@pytest.fixture
def results_copy(tmp_path):
    """A copy of the committed result files, to change."""
    shutil.copytree(ROOT / "benchmarks" / "results", tmp_path / "results")
    return tmp_path / "results"


def test_every_document_holds_what_the_results_give(render):
    expected = render.rendered(render.load())
    marked = {path.relative_to(ROOT).as_posix() for path in expected}
    assert {"README.md", "benchmarks/results/README.md", "recipes/TUNING.md"} <= marked
    assert {f"recipes/{n}/README.md" for n in ("image_classification", "text_bilstm")} <= marked
    differ = [p.relative_to(ROOT) for p, text in expected.items() if p.read_text() != text]
    assert not differ, f"{differ} differ from benchmarks/results/*.json: run `make results`"


def test_a_new_result_changes_every_document_quoting_it(render, results_copy):
    image = json.loads((results_copy / "image.json").read_text())
    for row in image["rows"]:
        if row["model"].startswith("recipe"):  # every seed: the mean is 91.23% too
            row["mnist_test_acc"] = 0.9123
    (results_copy / "image.json").write_text(json.dumps(image))
    expected = render.rendered(render.load(results_copy))
    for document in ("README.md", "recipes/image_classification/README.md"):
        assert "91.23%" in expected[ROOT / document], document
        assert "91.23%" not in (ROOT / document).read_text()


def test_a_figure_on_an_older_split_says_so(render):
    versions = importlib.import_module("result_files").data_versions()
    now = render.load(current=versions)
    image = render.REGIONS["image"](now)
    assert f"`mnist_sample` {versions['mnist_sample']}" in image and "stale" not in image
    later = render.load(current={**versions, "mnist_sample": "9.0.0"})
    assert "(**stale**: today's builder makes 9.0.0)" in render.REGIONS["image"](later)
    assert "Rows marked **stale** ran on `mnist_sample`" in render.REGIONS["summary"](later)


def test_a_result_without_its_data_versions_is_refused(render, results_copy):
    pipeline = json.loads((results_copy / "pipeline.json").read_text())
    del pipeline["data"]
    (results_copy / "pipeline.json").write_text(json.dumps(pipeline))
    with pytest.raises(render.RenderError, match="pipeline.json does not say which data"):
        render.load(results_copy)


def test_unknown_regions_and_missing_rows_are_named(render, results_copy):
    results = render.load()
    with pytest.raises(render.RenderError, match="unknown region results:nope"):
        render.fill("<!-- results:nope -->\n<!-- /results -->\n", results, "X.md")
    text = json.loads((results_copy / "text.json").read_text())
    text["rows"] = [r for r in text["rows"] if r["model"] != "recipe --arch bilstm"]
    (results_copy / "text.json").write_text(json.dumps(text))
    with pytest.raises(render.RenderError, match="text.json has no row .*recipe --arch bilstm"):
        render.REGIONS["text"](render.load(results_copy))


def test_no_measured_figure_is_copied_by_hand(render):
    """Outside the marked regions, documents and the recipes' Config classes quote no accuracy
    or speed-up: those drift from the results they were copied from."""
    found = []
    for path in render.documents():
        text = render.REGION.sub("", path.read_text())
        found += [f"{path.relative_to(ROOT)}: {m[0]}" for m in HAND_COPIED.finditer(text)]
    for path in sorted((ROOT / "recipes").glob("*/recipe.py")):
        source = path.read_text()
        config = next(
            node
            for node in ast.parse(source).body
            if isinstance(node, ast.ClassDef) and node.name == "Config"
        )
        body = "\n".join(source.splitlines()[config.lineno - 1 : config.end_lineno])
        found += [f"{path.relative_to(ROOT)} Config: {m[0]}" for m in HAND_COPIED.finditer(body)]
    assert not found, found


def test_nothing_cites_a_design_file_that_is_not_in_the_repository():
    missing = "DESIGN" + ".md"
    assert not (ROOT / missing).exists()
    citing = []
    for folder, dirs, files in os.walk(ROOT):
        dirs[:] = [d for d in dirs if d not in SKIPPED]
        for name in files:
            path = Path(folder, name)
            text = path.suffix in (".py", ".md", ".toml", ".json") or name in ("Makefile", "run")
            if text and missing in path.read_text(errors="replace"):
                citing.append(path.relative_to(ROOT))
    assert not citing, citing
