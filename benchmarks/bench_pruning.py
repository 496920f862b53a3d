"""Pruning recipe: its default run, every model scored on the official MNIST test split and on the
recipe's own test split, against the issue's targets.

One default `train` of recipes/pruning (it prunes the image recipe's default model, trained once
and cached) makes dense, unstructured 50/80/90%, structured 25/50% and the small dense baseline.
Then, in this process: each model's accuracy on the 10,000 official MNIST test digits; batch-1
latency and batch-256 throughput of every model timed in interleaved rounds (dense, then each
other model, repeated), so a busy machine slows all of them alike; the exported TFLite files
scored on the official split through the LiteRT interpreter.
"""

from __future__ import annotations

import json
import os
import statistics
import tempfile
from pathlib import Path

from common import load_recipe, mnist_test, write_result

from dlrecipes import training
from dlrecipes.pruning import litert, measure

ROUNDS = 5
TARGETS = {
    "unstructured-80": {"points": -0.3, "size": 1 / 3},
    "unstructured-90": {"points": -0.5},
    "structured-50": {"points": -0.5, "speedup_b256": 1.6, "speedup_b1": 1.3},
}


def interleaved_speed(models: dict, x) -> dict[str, dict]:
    """Median latency (batch 1) and throughput (batch 256) per model over ROUNDS rounds."""
    times = {name: {"latency": [], "throughput": []} for name in models}
    for _ in range(ROUNDS):
        for name, model in models.items():
            times[name]["latency"].append(measure.latency(model, x, min_seconds=2.0))
            times[name]["throughput"].append(measure.throughput(model, x, min_seconds=2.0))
    return {name: {k: statistics.median(v) for k, v in t.items()} for name, t in times.items()}


def main() -> None:
    module = load_recipe("pruning")
    config = module.Config()
    x_test, y_test = mnist_test()
    with tempfile.TemporaryDirectory() as tmp:
        run_dir = Path(tmp) / "run"
        module.train(module.recipe(), config, run_dir)
        metrics = json.loads((run_dir / "metrics.json").read_text())
        rows = metrics["models"]
        models = {
            r["model"]: training.load_model(run_dir / r["model"] / "model.keras") for r in rows
        }
        speed = interleaved_speed(models, x_test[:256])
        exports = {}
        for row in metrics["exports"]:
            if row["format"].endswith(".tflite") and "error" not in row:
                predicted = litert.predict(run_dir / row["file"], x_test).argmax(-1)
                exports[row["format"]] = dict(
                    row, mnist_accuracy=float((predicted == y_test).mean())
                )
        source_config = module.source_config(config)

    dense = rows[0]
    table = []
    for row in rows:
        model = models[row["model"]]
        acc = float((model.predict(x_test, batch_size=1000, verbose=0).argmax(-1) == y_test).mean())
        row["mnist_test_acc"] = acc
    for row in rows:
        s, d = speed[row["model"]], speed["dense"]
        table.append(
            {
                "model": row["model"],
                "mnist_test_acc": round(row["mnist_test_acc"], 4),
                "mnist_pts_vs_dense": round(
                    100 * (row["mnist_test_acc"] - dense["mnist_test_acc"]), 2
                ),
                "recipe_test_acc": round(row["test_accuracy"], 4),
                "recipe_pts_vs_dense": round(
                    100 * (row["test_accuracy"] - dense["test_accuracy"]), 2
                ),
                "params": row["params"],
                "nonzeros": row["nonzeros"],
                "mflops": round(row["mflops"], 3),
                "sparse_mflops": round(row["sparse_mflops"], 3),
                "gzip_kb": round(row["gzip_kb"], 1),
                "size_vs_dense": round(row["gzip_kb"] / dense["gzip_kb"], 3),
                "speedup_b1": round(d["latency"] / s["latency"], 2),
                "speedup_b256": round(s["throughput"] / d["throughput"], 2),
            }
        )
    by_name = {r["model"]: r for r in table}
    verdicts = []
    for name, target in TARGETS.items():
        r = by_name[name]
        checks = [
            f"MNIST test {r['mnist_pts_vs_dense']:+.2f} pts (>= {target['points']})"
            f" {'ok' if r['mnist_pts_vs_dense'] >= target['points'] else 'MISSED'}",
            f"recipe test {r['recipe_pts_vs_dense']:+.2f} pts (>= {target['points']})"
            f" {'ok' if r['recipe_pts_vs_dense'] >= target['points'] else 'MISSED'}",
        ]
        if "size" in target:
            ok = r["size_vs_dense"] <= target["size"]
            checks.append(
                f"gzip size {r['size_vs_dense']:.3f}x dense (<= 0.333) {'ok' if ok else 'MISSED'}"
            )
        for key in ("speedup_b256", "speedup_b1"):
            if key in target:
                ok = r[key] >= target[key]
                checks.append(f"{key} {r[key]:.2f}x (>= {target[key]}) {'ok' if ok else 'MISSED'}")
        verdicts.append(f"{name}: " + "; ".join(checks))
    int8 = exports.get("model-int8.tflite")
    if int8:
        smaller = dense["gzip_kb"] / int8["gzip_kb"]
        pts_mnist = 100 * (int8["mnist_accuracy"] - dense["mnist_test_acc"])
        pts_recipe = 100 * (int8["accuracy"] - dense["test_accuracy"])
        verdicts.append(
            f"{metrics['best']} + int8 TFLite: {smaller:.1f}x smaller than the dense .keras, gzip "
            f"both (>= 8) {'ok' if smaller >= 8 else 'MISSED'}; MNIST test {pts_mnist:+.2f} pts, "
            f"recipe test {pts_recipe:+.2f} pts (>= -0.5) "
            f"{'ok' if min(pts_mnist, pts_recipe) >= -0.5 else 'MISSED'}"
        )
        for fmt, row in exports.items():
            table.append(
                {
                    "model": f"{metrics['best']} as {fmt}",
                    "mnist_test_acc": round(row["mnist_accuracy"], 4),
                    "mnist_pts_vs_dense": round(
                        100 * (row["mnist_accuracy"] - dense["mnist_test_acc"]), 2
                    ),
                    "recipe_test_acc": round(row["accuracy"], 4),
                    "recipe_pts_vs_dense": round(
                        100 * (row["accuracy"] - dense["test_accuracy"]), 2
                    ),
                    "gzip_kb": round(row["gzip_kb"], 1),
                    "size_vs_dense": round(row["gzip_kb"] / dense["gzip_kb"], 3),
                }
            )
    load = os.getloadavg()
    notes = (
        f"Targets: {' | '.join(verdicts)}. Source: the image recipe's default model "
        f"({source_config.get('epochs')} epochs on mnist_sample). Each pruned model fine-tuned "
        f"{config.epochs} epochs ({config.optimizer} {config.learning_rate:g}, {config.schedule}); "
        f"the small dense model trained {source_config.get('epochs')} epochs from scratch as the "
        f"source was, then fine-tuned the same. MNIST test: the official 10,000 digits; recipe "
        f"test: the 500-digit test split of mnist_sample (one digit is 0.2 points). gzip sizes: .keras "
        f"files without optimizer state, gzip -9. Speed-ups: medians of {ROUNDS} interleaved "
        f"rounds of a compiled tf.function on CPU, batch 1 (latency) and 256 (throughput). Load average "
        f"while measuring: {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f} on {os.cpu_count()} "
        "cores, shared with other jobs."
    )
    path = write_result("pruning", "Pruning recipe: default run against its targets", table, notes)
    print(path.read_text())


if __name__ == "__main__":
    main()
