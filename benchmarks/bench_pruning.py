"""Pruning recipe: its default run, every model scored on the official MNIST test split as well
as on the recipe's own test split, against the targets of the pruning issue.

One default `train` of recipes/pruning (it prunes the image recipe's default model, trained once
and cached) makes dense, unstructured 50/80/90%, structured 25/50% and the small dense baseline,
and times them, one call of each model in turn (here for 10 s per model and batch size).
Then each model, and each TFLite export of the best pruned one (through the LiteRT
interpreter), is scored on the 10,000 official MNIST test digits.
"""

from __future__ import annotations

import dataclasses
import json
import os
import tempfile
from pathlib import Path

from common import load_recipe, mnist_test, write_result

import dlrecipes
from dlrecipes import litert
from dlrecipes.pruning import source

# model -> (least accuracy change in points, other bounds); from the issue.
TARGETS = {
    "unstructured-80": (-0.3, {"size_vs_dense": ("<=", 1 / 3)}),
    "unstructured-90": (-0.5, {}),
    "structured-50": (
        -0.5,
        {"speedup_b256": (">=", 1.6), "speedup_b1": (">=", 1.3), "tflite_speedup_b1": (">=", 1.3)},
    ),
}
INT8 = (-0.5, 8.0)  # best pruned + int8 TFLite: points, times smaller than the dense .keras


def points(accuracy: float, reference: float) -> float:
    return round(100 * (accuracy - reference), 2)


def verdict(ok: bool) -> str:
    return "ok" if ok else "MISSED"


def main() -> None:
    module = load_recipe("pruning")
    config = dataclasses.replace(module.Config(), timing_seconds=10.0)
    if os.environ.get("BENCH_TINY"):  # a quick check of this script itself
        config = dataclasses.replace(config.tiny(), timing_seconds=0.1)
    x_mnist, y_mnist = mnist_test()
    with tempfile.TemporaryDirectory() as tmp:
        run_dir = Path(tmp) / "run"
        module.train(config, run_dir, export=("saved_model", "litert"))
        metrics = json.loads((run_dir / "metrics.json").read_text())
        for row in metrics["models"]:
            model = dlrecipes.load_model(run_dir / row["model"] / "model.keras")
            row["mnist"] = module.compare.accuracy(model, x_mnist, y_mnist)
        for row in metrics["exports"]:
            if row["file"].endswith(".tflite"):
                predicted = litert.predict(run_dir / row["file"], x_mnist).argmax(-1)
                row["mnist"] = float((predicted == y_mnist).mean())
        # The run's config.json names the source model it pruned; that model's run, its training.
        pruned = json.loads((run_dir / "config.json").read_text())["model"]
        trained_as = source.training_config(Path(pruned))
    load = os.getloadavg()

    dense = metrics["models"][0]
    table = []
    for row in metrics["models"] + metrics["exports"]:
        if "mnist" not in row:
            continue
        name = row.get("model") or f"{metrics['best']} as {row['file']}"
        table.append(
            {
                "model": name,
                "mnist_test_acc": round(row["mnist"], 4),
                "mnist_pts": points(row["mnist"], dense["mnist"]),
                "recipe_test_acc": round(row.get("test_accuracy", row.get("accuracy")), 4),
                "recipe_pts": points(
                    row.get("test_accuracy", row.get("accuracy")), dense["test_accuracy"]
                ),
                "params": row.get("params"),
                "nonzeros": row.get("nonzeros"),
                "mflops": row.get("mflops") and round(row["mflops"], 2),
                "sparse_mflops": row.get("sparse_mflops") and round(row["sparse_mflops"], 2),
                "gzip_kb": round(row["gzip_kb"], 1),
                "size_vs_dense": round(row["gzip_kb"] / dense["gzip_kb"], 3),
                "speedup_b1": row.get("speedup_b1") and round(row["speedup_b1"], 2),
                "speedup_b256": row.get("speedup_b256") and round(row["speedup_b256"], 2),
                "tflite_speedup_b1": row.get("tflite_speedup_b1")
                and round(row["tflite_speedup_b1"], 2),
            }
        )
    by_name = {r["model"]: r for r in table}
    verdicts = []
    for name, (least, bounds) in TARGETS.items():
        if name not in by_name:  # a BENCH_TINY run makes fewer models
            continue
        r = by_name[name]
        checks = [
            f"{r['mnist_pts']:+.2f} pts on MNIST test, {r['recipe_pts']:+.2f} on the recipe's "
            f"(>= {least}) {verdict(min(r['mnist_pts'], r['recipe_pts']) >= least)}"
        ]
        for key, (op, bound) in bounds.items():
            ok = r[key] <= bound if op == "<=" else r[key] >= bound
            checks.append(f"{key} {r[key]:.3g} ({op} {bound:.3g}) {verdict(ok)}")
        verdicts.append(f"{name}: " + "; ".join(checks))
    int8 = by_name.get(f"{metrics['best']} as export/model-int8.tflite")
    if int8:
        smaller = 1 / int8["size_vs_dense"]
        worst = min(int8["mnist_pts"], int8["recipe_pts"])
        verdicts.append(
            f"{metrics['best']} + int8 TFLite: {smaller:.1f}x smaller than the dense .keras, both "
            f"gzipped (>= {INT8[1]:g}) {verdict(smaller >= INT8[1])}; {int8['mnist_pts']:+.2f} pts "
            f"on MNIST test, {int8['recipe_pts']:+.2f} on the recipe's (>= {INT8[0]}) "
            f"{verdict(worst >= INT8[0])}"
        )
    notes = (
        "Targets: "
        + " | ".join(verdicts)
        + f". Source: the image recipe's default model ({trained_as.get('epochs')} epochs on "
        f"the 4,000 training digits of mnist_sample). Every pruned model is fine-tuned "
        f"{config.epochs} epochs ({config.optimizer} {config.learning_rate:g}, {config.schedule}); "
        f"the small dense one is trained {trained_as.get('epochs')} epochs from scratch as the "
        f"source was, then fine-tuned the same. `mnist`: the official 10,000 test digits; "
        f"`recipe`: the 500-digit test split of mnist_sample (one digit = 0.2 points). Sizes: "
        ".keras files without optimizer state, and the TFLite files, gzip -9. Speed-ups: median "
        "times of one compiled tf.function per model on CPU, batch 1 (latency) and 256 "
        f"(throughput), one call of each model in turn for {config.timing_seconds:g} s per model "
        "and batch size; `tflite_speedup_b1` the same at batch 1 for each model's float TFLite "
        "file run by the LiteRT interpreter (XNNPACK), the way a CPU would serve one input. "
        f"Load average at the end: {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f} on "
        f"{os.cpu_count()} cores shared with other jobs."
    )
    path = write_result(
        "pruning",
        "Pruning recipe: default run against its targets",
        table,
        notes,
        data=("mnist_sample",),
    )
    print(path.read_text())


if __name__ == "__main__":
    main()
