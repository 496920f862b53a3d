"""Pruning: a trained model made smaller and faster, every variant measured side by side.

    python recipes/pruning/recipe.py train            # prunes the image recipe's default model
    python recipes/pruning/recipe.py train --tiny     # seconds: a smoke run
    python recipes/pruning/recipe.py train --model runs/text_bilstm/<id>/model.keras
    python recipes/pruning/recipe.py evaluate --model runs/pruning/<id>/model.keras \
        --dataset idx:DIR                             # the official MNIST test files
    python recipes/pruning/recipe.py train --sparsities 0.5,0.8,0.9,0.95

It starts from a trained model of this project (`--model`); without one it trains the image
recipe's default once (`recipes/image_classification/recipe.py train`, about a minute) into
`~/.cache/dlrecipes/pruning/image_classification-default/` (`$DLRECIPES_CACHE` moves it) and
reuses it. From it, one run makes and compares, each in its own folder of the run:
- magnitude (unstructured) pruning at each of `--sparsities`, fine-tuned with masks;
- structured pruning of each of `--channel-fractions` of the channels, then fine-tuned;
- a small dense model with as many non-zero weights as the `--baseline-sparsity` one, trained
  from scratch the way the source model was, then fine-tuned like the others;
and for each: accuracy, parameters, non-zeros, FLOPs, gzip size, CPU latency and throughput. The
best pruned model becomes the run's `model.keras`; `--export saved_model,litert,onnx` writes it as
a SavedModel, TFLite, int8 TFLite and ONNX, each checked against it on the test split, through
the export code every recipe uses (`dlrecipes.exporting`). A stopped run resumes inside the fit
it was in.

`tune` is not offered: this recipe compares its settings side by side in `train`; tune the
source model with its own recipe.
"""

from __future__ import annotations

import dataclasses
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import ClassVar

import dlrecipes  # before keras: keeps TensorFlow's start-up log lines off the screen
from dlrecipes import data, evaluation, optimizers, progress, pruning
from dlrecipes.errors import ConfigError
from dlrecipes.multihost import cluster
from dlrecipes.pruning import compare, source, variants

import keras

NAME = "pruning"  # runs go to runs/pruning/<run-id>/, a folder per variant inside
# The settings of the source run's config.json that the small dense model is trained with.
TRAINING_FIELDS = (
    "epochs",
    "optimizer",
    "learning_rate",
    "schedule",
    "warmup_epochs",
    "momentum",
    "weight_decay",
    "ema",
)

# ---------------------------------------------------------------------------------------------
# Config: every knob is a field and a flag; the defaults are the best measured so far.
# ---------------------------------------------------------------------------------------------


@dataclasses.dataclass
class Config(dlrecipes.RecipeConfig):
    """Pruning: magnitude and structured pruning of a trained model, compared side by side.

    What each model of the default run scores, how small and fast it is, and on which data:
    README.md.
    """

    # --- the model to prune, and its data
    model: str = ""  # a model.keras of this project; "" = the image recipe's default (cached)
    default_model: str = "default"  # without --model: the image recipe's `default` or `tiny` run
    dataset: str = ""  # "" = the dataset the model was trained on (its run's config.json)
    inputs: str = ""  # image | text; "" = what the model takes
    # The source run's image size and split seed (None: read from its config.json), so its
    # test split stays one it never trained on.
    image_size: tuple[int, int] | None = None
    data_seed: int | None = None
    # Fine-tuning sees the image recipe's augmentation (ignored for text).
    rotation: float = 0.02
    translation: float = 0.08
    zoom: float = 0.1
    # --- magnitude pruning: sparsity rises as Zhu & Gupta's cubic from 0 to its final value over
    # the first `pruning_end` of the fine-tuning steps, masks recomputed every `frequency` steps.
    sparsities: tuple[float, ...] = (0.5, 0.8, 0.9)
    pruning_end: float = 0.5
    frequency: int = 25
    # Layers with fewer weights stay dense: they cost little and carry much. In the image model
    # that is the first conv (144 weights): pruned to 90% with the rest, it cost more accuracy
    # than all the other layers together.
    dense_below: int = 500
    # Per-layer sparsity in place of the variant's, e.g. `--layer-sparsity predictions=0.5`
    # (0 leaves a layer dense). Layers are named as in model.summary().
    layer_sparsity: tuple[str, ...] = ()
    # --- structured pruning: the fraction of channels removed from every narrowable layer
    channel_fractions: tuple[float, ...] = (0.25, 0.5)
    # --- the small dense baseline has as many non-zero weights as this sparsity's model
    baseline_sparsity: float = 0.8
    # --- fine-tuning of every variant. At 90% sparsity 16 epochs at 2e-3 came closest to dense
    # of the settings tried (README.md); averaging the weights added nothing measurable, so there
    # is no average and the masks stay exact.
    epochs: int = 16
    batch_size: int = 64
    optimizer: str = "adamw"
    learning_rate: float = 2e-3
    schedule: str = "cosine"
    warmup_epochs: float = 0.0
    weight_decay: float = 1e-4
    # --- comparison and export
    tolerance: float = 0.005  # the model exported: the smallest this close to dense (validation)
    calibration: int = 500  # examples that calibrate int8 quantization
    # Speed: one call of each model in turn, over and over, `timing_seconds` per model and batch
    # size; medians kept. A busy machine slows all models alike, so ratios hold.
    timing_seconds: float = 3.0

    CHOICES: ClassVar = {"default_model": ("default", "tiny"), "inputs": ("", "image", "text")}
    # A run of seconds: the image recipe's tiny model, one epoch per variant, short timings.
    TINY: ClassVar = {
        "default_model": "tiny",
        "epochs": 1,
        "sparsities": (0.8,),
        "channel_fractions": (0.5,),
        "frequency": 5,
        "calibration": 32,
        "timing_seconds": 0.02,
    }

    def validate(self) -> None:
        super().validate()
        for name in ("sparsities", "channel_fractions"):
            for value in getattr(self, name):
                if not 0 <= value < 1:
                    raise ConfigError(
                        f"--{dlrecipes.config.flag(name)}: {value} is not in [0, 1); pass "
                        "fractions of weights or channels to remove, e.g. 0.5,0.8."
                    )
        if self.baseline_sparsity not in self.sparsities:
            raise ConfigError(
                f"--baseline-sparsity {self.baseline_sparsity} is not one of --sparsities "
                f"{','.join(map(str, self.sparsities))}; the small dense model matches one of them."
            )
        if not 0 < self.pruning_end <= 1:
            raise ConfigError(f"pruning_end must be in (0, 1]; got {self.pruning_end}.")
        if self.frequency < 1:
            raise ConfigError(f"frequency must be at least 1 step; got {self.frequency}.")
        for name, value in self.per_layer().items():
            if not 0 <= value < 1:
                raise ConfigError(f"--layer-sparsity {name}={value}: not in [0, 1).")

    def per_layer(self) -> dict[str, float]:
        """`layer_sparsity` as {layer name: sparsity}."""
        return variants.layer_sparsity(self.layer_sparsity)


# ---------------------------------------------------------------------------------------------
# Data: the source model's dataset, batched as its recipe batches it.
# ---------------------------------------------------------------------------------------------


def load_data(config: Config) -> data.Splits:
    text = config.inputs == "text" or (not config.inputs and config.dataset in data.known_text())
    seed = config.seed if config.data_seed is None else config.data_seed
    if text:
        splits = data.load_text(config.dataset, data_dir=config.data_dir, seed=seed)
        augment = None
    else:
        splits = data.load(
            config.dataset or "mnist_sample",
            data_dir=config.data_dir,
            image_size=config.image_size,
            seed=seed,
        )
        augment = data.Augment(
            rotation=config.rotation, translation=config.translation, zoom=config.zoom
        )
    return splits.map(
        lambda ds, split: data.prepare(
            ds,
            config.batch_size,
            training=split == "train",
            augment=augment,
            seed=config.seed,
        )
    )


# ---------------------------------------------------------------------------------------------
# Fine-tuning: the same optimizer, schedule and epochs for every variant, each fit backed up on
# its own, so a stopped run resumes inside the variant and the fit it was in. No best epoch is
# kept: a pruned model is scored once its sparsity is reached, at its last epoch.
# ---------------------------------------------------------------------------------------------


def fit(
    model: keras.Model,
    config: dlrecipes.RecipeConfig,
    splits: data.Splits,
    run: dlrecipes.Run,
    name: str = "fine-tune",
    extra: list[keras.callbacks.Callback] = (),
) -> keras.Model:
    steps = data.count_batches(splits.train)
    model.compile(
        optimizer=optimizers.optimizer(config, steps),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
        jit_compile=run.jit,
    )
    model.fit(
        run.resumable(splits.train),  # with --backup-steps, resumes mid-epoch
        steps_per_epoch=steps,
        validation_data=splits.validation,
        epochs=config.epochs,
        callbacks=[*run.callbacks(name, keep_best=False), *extra],  # masks after the backup
        verbose=0,
    )
    return model


def make(variant: variants.Variant, config: Config, splits: data.Splits, run: dlrecipes.Run):
    """The model of one variant, trained in its own folder `run` (its part of the run)."""
    with run.strategy.scope():
        model = dlrecipes.load_model(config.model)
        if variant.kind == "source":
            return pruning.without_optimizer(model)
        if variant.kind == "magnitude":
            steps = data.count_batches(splits.train) * config.epochs
            masks = variants.magnitude_pruning(
                model,
                variant.amount,
                steps,
                end=config.pruning_end,
                frequency=config.frequency,
                dense_below=config.dense_below,
                per_layer=config.per_layer(),
            )
            return pruning.strip(fit(model, config, splits, run, extra=[masks]))
        if variant.kind == "channels":
            narrow = pruning.narrow(model, variant.amount)
            return pruning.without_optimizer(fit(narrow, config, splits, run))
        # The small dense control: as many weights as the matching sparse model has non-zeros,
        # trained from scratch as the source model was, then fine-tuned like the others.
        sparse = run.dir.parent / f"unstructured-{round(100 * variant.amount)}" / "model.keras"
        small = variants.small_dense(model, pruning.count(dlrecipes.load_model(sparse))["nonzeros"])
        trained_as = source.training_config(Path(config.model))
        scratch = dataclasses.replace(
            config, **{k: v for k, v in trained_as.items() if k in TRAINING_FIELDS}
        )
        fit(small, scratch, splits, run, name="from-scratch")
        return pruning.without_optimizer(fit(small, config, splits, run))


# ---------------------------------------------------------------------------------------------
# The run: every variant (a resumed run loads those it finished), then the comparison, the best
# pruned model as the run's model, the report and, with --export, its exports.
# ---------------------------------------------------------------------------------------------


def train(
    config: Config, run_dir: Path | None = None, *, resume: bool = False, export: Sequence[str] = ()
) -> dlrecipes.RunResult:
    if cluster.task(config.strategy) is not None or config.fold is not None:
        raise ConfigError(
            "The pruning recipe trains its variants one after another on one host: drop "
            "--strategy multi_host (and TF_CONFIG) and --folds."
        )
    config = source.resolve(config)  # the source model (trained once if none is given), its data
    run = dlrecipes.Run(NAME, config, run_dir, resume=resume)
    splits = load_data(config)
    data.check_training(splits)  # a test-only set (idx:) is refused before the run is claimed
    source_model = dlrecipes.load_model(config.model)
    plan = variants.plan(
        source_model,
        config.sparsities,
        config.channel_fractions,
        config.baseline_sparsity,
        config.per_layer(),  # --layer-sparsity: names refused now, before the run is claimed
    )
    with run.claim():  # Ctrl-C from here on prints the command that resumes the run
        models = {}
        for variant in progress.bar(plan, desc="pruning variants", unit="model"):
            part = run.part(variant.name)  # runs/pruning/<id>/<variant>/, a run of its own
            model = part.saved_model()  # finished before the run was stopped
            if model is None:
                model = part.save(make(variant, config, splits, part))
                part.finish({"kind": variant.kind, "amount": variant.amount})
            models[variant.name] = model
        kinds = {v.name: (v.kind, v.amount) for v in plan}
        rows = compare.side_by_side(
            models, kinds, splits, run.dir, config.timing_seconds, tflite=config.inputs == "image"
        )
        best = variants.pick_best(rows, config.tolerance)
        model = run.save(models[best["model"]])  # the best pruned model is the run's model
        shutil.copy(run.dir / best["model"] / "history.csv", run.dir / "history.csv")
        metrics = run.evaluate(model, splits)
        metrics |= {"best": best["model"], "models": rows}
        compare.print_rows(rows)
        run.report(metrics, splits.info.class_names, compare.report(rows, best, model))
        result = run.finish(metrics)  # metrics.json: the run is finished
        if export:  # the best pruned model, through the export every recipe uses
            metrics["exports"] = run.export(model, splits, export, calibration=config.calibration)
        return result


def evaluate(config: Config, model_path: Path) -> dict:
    return evaluation.test_metrics(dlrecipes.load_model(model_path), load_data(config))


def tune(config: Config, options) -> None:
    raise ConfigError(
        "The pruning recipe compares its settings side by side in `train` and has no search: "
        "tune the source model with its own recipe (e.g. recipes/image_classification/recipe.py "
        "tune), then prune it with --model."
    )


def main(argv: list[str] | None = None) -> int:
    return dlrecipes.cli.main(
        NAME, Config, train=train, tune=tune, evaluate=evaluate, load_data=load_data, argv=argv
    )


if __name__ == "__main__":
    raise SystemExit(main())
