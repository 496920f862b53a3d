"""Text recipe vs two baselines on the same `rt_snippets` split: TF-IDF + logistic regression and
the keras-io two-layer BiLSTM (examples/nlp/bidirectional_lstm_imdb.py).

Every model trains on the 10,202 training snippets, picks what it picks (C, epoch, checkpoint) by
validation accuracy, and is scored once on the 1,275 test snippets. Training seconds exclude data
loading and scoring.
"""

from __future__ import annotations

import dataclasses
import tempfile
import time
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf
from common import EpochClock, load_recipe, timed_fits, write_result
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression

from dlrecipes import data, runtime


def arrays(ds: tf.data.Dataset) -> tuple[np.ndarray, np.ndarray]:
    texts, labels = zip(*ds.as_numpy_iterator(), strict=True)
    return np.array([t.decode("utf-8") for t in texts]), np.array(labels)


def tfidf_logreg(train, validation, test) -> dict:
    """Unigram + bigram TF-IDF and logistic regression, C chosen on validation."""
    best = None
    for c in (1.0, 3.0, 10.0, 30.0):
        start = time.perf_counter()
        vectorizer = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True)
        model = LogisticRegression(C=c, max_iter=5000).fit(
            vectorizer.fit_transform(train[0]), train[1]
        )
        seconds = time.perf_counter() - start
        val = model.score(vectorizer.transform(validation[0]), validation[1])
        if best is None or val > best[0]:
            test_acc = model.score(vectorizer.transform(test[0]), test[1])
            best = (val, test_acc, seconds, c)
    return {"val": best[0], "test": best[1], "seconds": best[2], "detail": f"C={best[3]:g}"}


def keras_io_bilstm(train, validation, test, epochs: int = 2) -> dict:
    """keras-io bidirectional_lstm_imdb.py: 20,000 words, Embedding 128, two BiLSTM(64), sigmoid,
    Adam, batch 32, 2 epochs, no masking. A TextVectorization of the same size replaces its IMDB
    ids; sequences are pre-padded like pad_sequences, to 64 tokens instead of 200 (snippets are
    short)."""
    vectorize = keras.layers.TextVectorization(20_000, output_sequence_length=64)
    vectorize.adapt(train[0])

    def ids(texts: np.ndarray) -> np.ndarray:
        x = vectorize(texts).numpy()
        lengths = (x != 0).sum(1)
        return np.stack([np.roll(row, len(row) - n) for row, n in zip(x, lengths, strict=True)])

    x_train, x_val, x_test = ids(train[0]), ids(validation[0]), ids(test[0])
    inputs = keras.Input(shape=(None,), dtype="int32")
    x = keras.layers.Embedding(20_000, 128)(inputs)
    x = keras.layers.Bidirectional(keras.layers.LSTM(64, return_sequences=True))(x)
    x = keras.layers.Bidirectional(keras.layers.LSTM(64))(x)
    outputs = keras.layers.Dense(1, activation="sigmoid")(x)
    model = keras.Model(inputs, outputs)
    model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])

    def accuracy(m: keras.Model, x: np.ndarray, y: np.ndarray) -> float:
        return float(((m.predict(x, batch_size=512, verbose=0)[:, 0] > 0.5) == y).mean())

    scores: list[tuple[float, float]] = []
    clock = EpochClock(
        lambda m: scores.append((accuracy(m, x_val, validation[1]), accuracy(m, x_test, test[1])))
    )
    model.fit(x_train, train[1], batch_size=32, epochs=epochs, callbacks=[clock], verbose=2)
    best = max(range(epochs), key=lambda e: scores[e][0])
    per_epoch = ", ".join(f"{e + 1}:{v:.4f}/{t:.4f}" for e, (v, t) in enumerate(scores))
    return {
        "val": scores[best][0],
        "test": scores[best][1],
        "seconds": clock.points[best][1],
        "detail": f"best epoch {best + 1} (val/test per epoch {per_epoch})",
    }


def recipe_run(module, arch: str) -> dict:
    """The recipe's default config with `arch`, trained by the recipe's `train`."""
    config = dataclasses.replace(module.Config(), arch=arch)
    clock = EpochClock()
    with tempfile.TemporaryDirectory() as tmp, timed_fits(clock):
        result = module.train(config, Path(tmp) / "run")
    return {
        "val": result.metrics["best_val_accuracy"],
        "test": result.metrics["accuracy"],
        "seconds": clock.elapsed,
        "detail": f"{result.metrics['epochs_run']} epochs, best checkpoint by val accuracy",
    }


def main() -> None:
    runtime.seed_everything(0)
    module = load_recipe("text_bilstm")
    splits = data.load_text("rt_snippets")
    train, validation, test = (arrays(s) for s in (splits.train, splits.validation, splits.test))

    results = {
        "TF-IDF 1-2 grams + logistic regression": tfidf_logreg(train, validation, test),
        "keras-io 2-layer BiLSTM (reference)": keras_io_bilstm(train, validation, test),
    }
    for arch in ("bilstm", "bigru", "transformer"):
        runtime.seed_everything(0)
        results[f"recipe --arch {arch}"] = recipe_run(module, arch)

    tfidf = results["TF-IDF 1-2 grams + logistic regression"]["test"]
    keras_io = results["keras-io 2-layer BiLSTM (reference)"]["test"]
    rows = [
        {
            "model": name,
            "test_acc": round(r["test"], 4),
            "val_acc": round(r["val"], 4),
            "train_s": round(r["seconds"], 1),
            "vs_tfidf_pts": round(100 * (r["test"] - tfidf), 2),
            "vs_keras_io_pts": round(100 * (r["test"] - keras_io), 2),
            "notes": r["detail"],
        }
        for name, r in results.items()
    ]
    notes = (
        "rt_snippets: 12,752 deduplicated Rotten Tomatoes snippets, stratified 80/10/10 "
        "(10,202 / 1,275 / 1,275). Test accuracy of 1,275 examples has a standard error of about "
        "1.2 points. `vs_*_pts`: test accuracy minus the baseline's, in percentage points."
    )
    path = write_result(
        "text",
        "Text recipe vs TF-IDF + LR and the keras-io BiLSTM",
        rows,
        notes,
        data=("rt_snippets",),
    )
    print(path.read_text())


if __name__ == "__main__":
    main()
