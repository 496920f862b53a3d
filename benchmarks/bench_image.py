"""Image recipe vs the keras-io `mnist_convnet` reference, trained on the same 4,000 digits.

Both are scored after every epoch on the official MNIST test split (10,000 digits neither saw);
scoring time is not counted. Reported: training seconds, final test accuracy, and the training
seconds the recipe needs to reach the accuracy the reference ends at.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import keras
import numpy as np
from common import EpochClock, accuracy_probe, load_recipe, mnist_test, timed_fits, write_result

import dlrecipes
from dlrecipes import data, runtime

EPOCHS_REF = 15


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


def main() -> None:
    runtime.seed_everything(0)
    module = load_recipe("image_classification")
    config = module.Config()
    train = data.load(config.dataset).train.batch(4096)
    train_x, train_y = (np.concatenate(a) for a in zip(*train.as_numpy_iterator(), strict=True))
    test_x, test_y = mnist_test()

    ref = reference(train_x, train_y, accuracy_probe(test_x, test_y, rescale=True))
    target = ref.points[-1][2]

    clock = EpochClock(accuracy_probe(test_x, test_y))
    with tempfile.TemporaryDirectory() as tmp, timed_fits(clock):
        module.train(config, Path(tmp) / "run")
        best = dlrecipes.load_model(Path(tmp) / "run" / "model.keras")
        final = float(
            (best.predict(test_x, batch_size=1000, verbose=0).argmax(-1) == test_y).mean()
        )

    reached = clock.seconds_to(target)
    rows = [
        {
            "model": "keras-io mnist_convnet (reference)",
            "epochs": EPOCHS_REF,
            "train_s": round(ref.elapsed, 1),
            "mnist_test_acc": round(target, 4),
            f"s_to_{target:.4f}": round(ref.elapsed, 1),
        },
        {
            "model": "recipe default (best checkpoint)",
            "epochs": config.epochs,
            "train_s": round(clock.elapsed, 1),
            "mnist_test_acc": round(final, 4),
            f"s_to_{target:.4f}": None if reached is None else round(reached, 1),
        },
    ]
    ratio = "never" if reached is None else f"{reached / ref.elapsed:.2f}x"
    notes = (
        f"Both trained on the 4,000-digit `mnist_sample` train split; test = official MNIST test "
        f"split (10,000). The recipe reached the reference's final accuracy ({target:.4f}) after "
        f"{reached and round(reached, 1)} s of training, {ratio} the reference's "
        f"{ref.elapsed:.1f} s. Per-epoch test accuracy, recipe: "
        + ", ".join(f"{e}:{s:.0f}s:{a:.4f}" for e, s, a in clock.points)
    )
    path = write_result(
        "image", "Image recipe vs keras-io mnist_convnet", rows, notes, data=("mnist_sample",)
    )
    print(path.read_text())


if __name__ == "__main__":
    main()
