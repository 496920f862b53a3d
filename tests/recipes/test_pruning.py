"""The pruning recipe end to end on tiny settings (the image recipe's tiny model, trained once
into a temporary cache), and its refusals: one line each, exit status 2."""

from __future__ import annotations

import contextlib
import io
import json

import keras
import numpy as np
import pytest

from dlrecipes.models import vision
from dlrecipes.multihost import launch
from tests.conftest import MNIST_TEST_DIR, recipe_module


def MAIN(*argv) -> int:
    """The pruning recipe's command line, run in this process."""
    return recipe_module("pruning").main([str(a) for a in argv])


# One test holds the whole tiny run: pytest-xdist would run a shared fixture once per worker.
@pytest.mark.slow
def test_tiny_run_compares_every_variant_and_exports_the_best(tmp_path, monkeypatch):
    run_dir = tmp_path / "run"
    # A cache of its own for the image recipe's tiny model (its process inherits this).
    monkeypatch.setenv("DLRECIPES_CACHE", str(tmp_path / "cache"))
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert MAIN("train", "--tiny", "--export", "saved_model,litert", "--run-dir", run_dir) == 0
    stdout = out.getvalue()
    assert stdout.strip().splitlines()[-1] == str(run_dir)
    cache = tmp_path / "cache" / "pruning" / "image_classification-tiny"
    assert f"training the image recipe's tiny model once, in {cache}" in stdout
    assert (cache / "metrics.json").exists()  # trained once, reused by later runs
    for name in (
        "config.json",
        "history.csv",
        "metrics.json",
        "model.keras",
        "curves.png",
        "confusion.png",
        "report.md",
        "accuracy_vs_size.png",
    ):
        assert (run_dir / name).stat().st_size > 0, name
    assert not (run_dir / "unstructured-80" / "backup").exists()
    metrics = json.loads((run_dir / "metrics.json").read_text())
    rows = {row["model"]: row for row in metrics["models"]}
    assert list(rows) == ["dense", "unstructured-80", "structured-50", "small-dense"]
    dense, sparse, narrow, small = (rows[k] for k in rows)
    assert sparse["nonzeros"] < 0.3 * dense["nonzeros"] and sparse["params"] == dense["params"]
    assert sparse["gzip_kb"] < 0.5 * dense["gzip_kb"]
    assert narrow["params"] < 0.6 * dense["params"] and narrow["mflops"] < 0.4 * dense["mflops"]
    assert abs(small["params"] - sparse["nonzeros"]) < 0.15 * sparse["nonzeros"]
    for row in rows.values():
        assert 0.5 < row["test_accuracy"] <= 1 and row["latency_ms"] > 0, row
        assert row["throughput"] > 0 and row["tflite_latency_ms"] > 0, row
    # The best pruned model's exports: the code every recipe exports with.
    exports = {row["format"]: row for row in metrics["exports"]}
    assert list(exports) == ["keras", "saved_model", "litert", "litert-int8"]
    for row in exports.values():
        assert abs(row["accuracy"] - metrics["accuracy"]) < 0.03, row
        assert (run_dir / row["file"]).exists(), row
    assert exports["litert"]["max_abs_diff"] < 1e-4 and exports["litert"]["agreement"] == 1.0
    assert exports["litert-int8"]["bytes"] < 0.5 * exports["litert"]["bytes"]
    report = (run_dir / "report.md").read_text()
    assert "structured-50" in report and "Per-layer sparsity" in report
    assert "| litert-int8 | model-int8.tflite | uint8 images |" in report

    # The exported model: plain Keras, and `evaluate` scores it on the official split.
    model = keras.saving.load_model(run_dir / "model.keras", safe_mode=True)
    assert getattr(model, "optimizer", None) is None
    status = MAIN(
        "evaluate", "--model", run_dir / "model.keras", "--dataset", f"idx:{MNIST_TEST_DIR}"
    )
    assert status == 0
    out = json.loads(next(run_dir.glob("eval-idx-*.json")).read_text())
    assert out["num_examples"] == 1_000 and out["accuracy"] > 0.5


def one_line_refusal(capsys, *argv) -> str:
    assert MAIN(*map(str, argv)) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), lines
    return lines[0]


@pytest.mark.parametrize(
    "args, words",
    [
        (["--sparsities", "0.5,1.0"], "--sparsities: 1.0 is not in [0, 1)"),
        (["--channel-fractions", "-0.1"], "--channel-fractions: -0.1 is not in [0, 1)"),
        (["--baseline-sparsity", "0.7"], "--baseline-sparsity 0.7 is not one of --sparsities"),
        (["--pruning-end", "0"], "pruning_end must be in (0, 1]"),
        (["--layer-sparsity", "predictions"], "is not NAME=FRACTION"),
    ],
)
def test_bad_arguments_get_one_line_and_status_2(tmp_path, capsys, args, words):
    assert words in one_line_refusal(capsys, "train", *args, "--run-dir", tmp_path / "r")
    assert not (tmp_path / "r").exists()


def test_unprunable_layer_non_model_file_and_tune_are_refused(tmp_path, capsys):
    model = vision.convnet((28, 28, 1), 10, widths=(4,), convs_per_stage=1)
    model.save(tmp_path / "m.keras")
    # Keras numbers layer names per process: this one is `batch_normalization` only if first.
    (norm,) = (x.name for x in model.layers if isinstance(x, keras.layers.BatchNormalization))
    line = one_line_refusal(
        capsys,
        "train",
        "--model",
        tmp_path / "m.keras",
        "--dataset",
        "mnist_sample",
        "--layer-sparsity",
        f"{norm}=0.5",
        "--run-dir",
        tmp_path / "a",
    )
    assert "(BatchNormalization) has no weights magnitude pruning can zero" in line
    (tmp_path / "junk.keras").write_bytes(np.arange(100, dtype=np.uint8).tobytes())
    line = one_line_refusal(
        capsys, "train", "--model", tmp_path / "junk.keras", "--run-dir", tmp_path / "b"
    )
    assert "is not a readable Keras model" in line
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()
    line = one_line_refusal(capsys, "tune", "--directory", tmp_path / "tuning")
    assert "The pruning recipe compares its settings side by side in `train` and has no search" in (
        line
    )
    assert "tune the source model with its own recipe" in line
    assert not (tmp_path / "tuning").exists()


def test_folds_and_multi_host_are_refused_before_anything_is_written(tmp_path, capsys, monkeypatch):
    """Its variants train one after another on one host: --folds and --strategy multi_host get
    one line, and no run directory (not even the source model's cache) is written."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DLRECIPES_CACHE", str(tmp_path / "cache"))
    line = one_line_refusal(capsys, "train", "--tiny", "--folds", "2", "--run-dir", "folds")
    assert "drop --strategy multi_host (and TF_CONFIG) and --folds" in line
    monkeypatch.setenv("TF_CONFIG", launch.tf_config(["127.0.0.1:1", "127.0.0.1:2"], 0))
    argv = ["train", "--tiny", "--strategy", "multi_host", "--run-dir", "multi"]
    assert "trains its variants one after another on one host" in one_line_refusal(capsys, *argv)
    assert not list(tmp_path.iterdir())
