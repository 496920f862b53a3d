"""Image recipe vs the keras-io `mnist_convnet` reference, trained on the same 4,000 digits.

Three seeds a side, interleaved (reference seed 0, recipe seed 0, reference seed 1, ...), so both
sides see the same load on a shared machine. Both are scored after every epoch on the official
MNIST test split (10,000 digits neither saw); scoring time is not counted. The recipe is scored on
the weights it validates and exports (the weight average, when `ema` is on).

Reported, per seed and as medians: training seconds, final test accuracy, the training seconds the
recipe needs to reach the reference's (median) final accuracy, and whether the recipe's test
accuracy collapsed mid-run (an epoch after the first third more than 1 point below the one before).
"""

from __future__ import annotations

import statistics
import tempfile
from pathlib import Path

import keras
import numpy as np
from common import EpochClock, accuracy_probe, load_recipe, mnist_test, timed_fits, write_result

import dlrecipes
from dlrecipes import data, runtime

EPOCHS_REF = 15
SEEDS = (0, 1, 2)
COLLAPSE = 0.01  # the largest drop allowed from one epoch to the next, after the first third
GOAL_ACCURACY = 0.99  # mean over seeds, on the official test split
GOAL_SECONDS = 120.0  # of training, per seed


def reference(train_x: np.ndarray, train_y: np.ndarray, probe) -> EpochClock:
    """keras-io examples/vision/mnist_convnet.py as published: float inputs / 255, Adam, 15 epochs,
    batch 128, validation_split 0.1."""
    model = keras.Sequential(
        [
            keras.Input(shape=(28, 28, 1)),
            keras.layers.Conv2D(32, kernel_size=(3, 3), activation="relu"),
            keras.layers.MaxPooling2D(pool_size=(2, 2)),
            keras.layers.Conv2D(64, kernel_size=(3, 3), activation="relu"),
            keras.layers.MaxPooling2D(pool_size=(2, 2)),
            keras.layers.Flatten(),
            keras.layers.Dropout(0.5),
            keras.layers.Dense(10, activation="softmax"),
        ]
    )
    model.compile(loss="categorical_crossentropy", optimizer="adam", metrics=["accuracy"])
    clock = EpochClock(probe)
    model.fit(
        train_x.astype("float32") / 255,
        keras.utils.to_categorical(train_y, 10),
        batch_size=128,
        epochs=EPOCHS_REF,
        validation_split=0.1,
        callbacks=[clock],
        verbose=0,
    )
    return clock


def averaged(probe):
    """`probe` scored on the model's weight average when its optimizer keeps one (the weights the
    recipe validates, checkpoints and exports), else on its raw weights."""

    def scored(model) -> float:
        if not getattr(model.optimizer, "use_ema", False):
            return probe(model)
        swap = keras.callbacks.SwapEMAWeights()  # on_test_begin swaps the average in, _end out
        swap.set_model(model)
        swap.on_test_begin()
        try:
            return probe(model)
        finally:
            swap.on_test_end()

    return scored


def collapses(points: list[tuple[int, float, float]]) -> list[int]:
    """Epochs after the first third whose score is more than `COLLAPSE` below the epoch before."""
    scores = [score for _, _, score in points]
    start = max(1, len(scores) // 3)
    return [i + 1 for i in range(start, len(scores)) if scores[i] < scores[i - 1] - COLLAPSE]


def curve(points: list[tuple[int, float, float]]) -> str:
    return ", ".join(f"{e}:{s:.0f}s:{a:.4f}" for e, s, a in points)


def main() -> None:
    module = load_recipe("image_classification")
    train = data.load(module.Config().dataset).train.batch(4096)
    train_x, train_y = (np.concatenate(a) for a in zip(*train.as_numpy_iterator(), strict=True))
    test_x, test_y = mnist_test()

    refs, runs = [], []
    for seed in SEEDS:
        runtime.seed_everything(seed)
        refs.append(reference(train_x, train_y, accuracy_probe(test_x, test_y, rescale=True)))
        config = module.Config(seed=seed)
        clock = EpochClock(averaged(accuracy_probe(test_x, test_y)))
        with tempfile.TemporaryDirectory() as tmp, timed_fits(clock):
            module.train(config, Path(tmp) / "run")
            best = dlrecipes.load_model(Path(tmp) / "run" / "model.keras")
            final = float(
                (best.predict(test_x, batch_size=1000, verbose=0).argmax(-1) == test_y).mean()
            )
        runs.append((config, clock, final))

    target = statistics.median(r.points[-1][2] for r in refs)
    ref_seconds = statistics.median(r.elapsed for r in refs)
    key = f"s_to_{target:.4f}"
    rows = []
    for seed, ref in zip(SEEDS, refs, strict=True):
        reached = ref.seconds_to(target)
        rows.append(
            {
                "model": "keras-io mnist_convnet (reference)",
                "seed": seed,
                "epochs": EPOCHS_REF,
                "train_s": round(ref.elapsed, 1),
                "mnist_test_acc": round(ref.points[-1][2], 4),
                key: None if reached is None else round(reached, 1),
                "collapsed_epochs": ", ".join(map(str, collapses(ref.points))) or "none",
            }
        )
    reached_all = []
    for seed, (config, clock, final) in zip(SEEDS, runs, strict=True):
        reached = clock.seconds_to(target)
        reached_all.append(np.inf if reached is None else reached)
        rows.append(
            {
                "model": "recipe default (best checkpoint)",
                "seed": seed,
                "epochs": config.epochs,
                "train_s": round(clock.elapsed, 1),
                "mnist_test_acc": round(final, 4),
                key: None if reached is None else round(reached, 1),
                "collapsed_epochs": ", ".join(map(str, collapses(clock.points))) or "none",
            }
        )

    reached = statistics.median(reached_all)
    mean_acc = float(np.mean([final for _, _, final in runs]))
    slowest = max(clock.elapsed for _, clock, _ in runs)
    collapsed = [seed for seed, (_, c, _) in zip(SEEDS, runs, strict=True) if collapses(c.points)]
    ratio = "never" if not np.isfinite(reached) else f"{reached / ref_seconds:.2f}x"
    notes = (
        f"Both trained on the 4,000-digit `mnist_sample` train split, seeds {SEEDS} interleaved; "
        f"test = official MNIST test split (10,000). Time to accuracy: the recipe reached the "
        f"reference's median final accuracy ({target:.4f}) after a median {reached:.1f} s of "
        f"training, {ratio} the reference's median {ref_seconds:.1f} s "
        f"({'met' if reached <= ref_seconds else 'NOT met'}). Accuracy: the recipe's mean over "
        f"seeds is {mean_acc:.4f} (goal {GOAL_ACCURACY}: "
        f"{'met' if mean_acc >= GOAL_ACCURACY else 'NOT met'}) in at most {slowest:.1f} s of "
        f"training (goal {GOAL_SECONDS:.0f} s: "
        f"{'met' if slowest <= GOAL_SECONDS else 'NOT met'}). Mid-run collapse (an epoch after "
        f"the first third more than {COLLAPSE * 100:.0f} point below the one before): "
        f"{'seeds ' + str(collapsed) if collapsed else 'none'}. Per-epoch test accuracy, "
        + "; ".join(
            f"reference seed {s}: {curve(r.points)}" for s, r in zip(SEEDS, refs, strict=True)
        )
        + "; "
        + "; ".join(
            f"recipe seed {s}: {curve(c.points)}" for s, (_, c, _) in zip(SEEDS, runs, strict=True)
        )
    )
    path = write_result(
        "image", "Image recipe vs keras-io mnist_convnet", rows, notes, data=("mnist_sample",)
    )
    print(path.read_text())


if __name__ == "__main__":
    main()
