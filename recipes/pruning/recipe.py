"""Pruning: a trained model made smaller and faster, every variant measured side by side.

    python recipes/pruning/recipe.py train            # prunes the image recipe's default model
    python recipes/pruning/recipe.py train --tiny     # seconds: a smoke run
    python recipes/pruning/recipe.py train --model runs/text_bilstm/<id>/model.keras
    python recipes/pruning/recipe.py evaluate --model runs/pruning/<id>/model.keras \
        --dataset idx:../shared/data/mnist-test
    make pruning ARGS="--sparsities 0.5,0.8,0.9,0.95"

It starts from a trained model of this project (`--model`); without one it trains the image
recipe's default once (`recipes/image_classification/recipe.py train`, about a minute) and keeps
it in `~/.cache/dlrecipes/pruning/image_classification-default/` (`$DLRECIPES_CACHE` moves it) for
later runs. From it, one run makes and compares:
- magnitude (unstructured) pruning at each of `--sparsities`, fine-tuned with masks;
- structured pruning of each of `--channel-fractions` of the channels, then fine-tuned;
- a small dense model with as many non-zero weights as the `--baseline-sparsity` one, trained
  from scratch the way the source model was, then fine-tuned like the others;
and for each: accuracy, parameters, non-zeros, FLOPs, gzip size, CPU latency and throughput; then
exports the best pruned model as .keras, SavedModel, TFLite and int8 TFLite.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import ClassVar

import dlrecipes  # before keras: keeps TensorFlow's start-up log lines off the screen
from dlrecipes import callbacks, copying, data, pruning, reports, runtime, training
from dlrecipes.data import wheels
from dlrecipes.errors import CheckpointError, ConfigError, TrainingDiverged
from dlrecipes.pruning import compare, litert, measure

import keras
import numpy as np
import tensorflow as tf

# ---------------------------------------------------------------------------------------------
# Config: every knob is a field and a flag; the defaults are the best measured so far.
# ---------------------------------------------------------------------------------------------

DEFAULT_SOURCE = "image_classification"
# How the source model was trained: the settings of its run's config.json that the small dense
# baseline is trained from scratch with.
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


@dataclasses.dataclass
class Config(dlrecipes.RecipeConfig):
    """Pruning: magnitude and structured pruning of a trained model, compared side by side.

    Measured by `make bench` on 2 shared CPU cores (2026-11-27), on the image recipe's default
    model (98.73% on the official MNIST test split, 271 KiB gzipped): 80% sparse 98.86% at 0.33x
    the size, 90% 98.66% at 0.22x, and as int8 TFLite 98.62% at 14.1x smaller; half the channels
    removed 98.81% at 2.30x the throughput (batch 256; batch 1: 1.11x in Keras, 2.17x as TFLite).
    See README.md.
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
    # that is the first conv (144 weights): pruned to 90% with the rest, it cost 17 points.
    dense_below: int = 500
    # Per-layer sparsity in place of the variant's, e.g. `--layer-sparsity predictions=0.5`
    # (0 leaves a layer dense). Layers are named as in model.summary().
    layer_sparsity: tuple[str, ...] = ()
    # --- structured pruning: the fraction of channels removed from every narrowable layer
    channel_fractions: tuple[float, ...] = (0.25, 0.5)
    # --- the small dense baseline has as many non-zero weights as this sparsity's model
    baseline_sparsity: float = 0.8
    # --- fine-tuning of every variant. At 90% sparsity, on the MNIST test split against the
    # dense 98.73%: 8 epochs at 5e-4 with every layer pruned 82.0%; with the first conv and the
    # classifier dense 97.25%; 8 epochs at 2e-3 97.95%; 16 epochs at 2e-3 98.57% (98.59% with
    # the weights averaged, so no average: masks stay exact); the classifier pruned too 98.41%.
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
        pairs = {}
        for item in self.layer_sparsity:
            name, _, value = item.partition("=")
            try:
                pairs[name.strip()] = float(value)
            except ValueError:
                raise ConfigError(
                    f"--layer-sparsity {item!r} is not NAME=FRACTION, e.g. predictions=0.5."
                ) from None
        return pairs


# ---------------------------------------------------------------------------------------------
# The source model: --model, or the image recipe's default, trained once and cached.
# ---------------------------------------------------------------------------------------------


def source_path(config: Config) -> Path:
    """The model to prune; trains and caches the image recipe's default when none is given."""
    if config.model:
        return Path(config.model)
    cached = wheels.cache_dir() / "pruning" / f"{DEFAULT_SOURCE}-{config.default_model}"
    if (cached / "model.keras").exists() and (cached / "metrics.json").exists():
        return cached / "model.keras"
    script = copying.recipes_dir() / DEFAULT_SOURCE / "recipe.py"
    if not script.exists():
        raise CheckpointError(
            f"No --model given and the image recipe is not at {script} to train one; pass "
            "--model PATH of a trained model.keras."
        )
    print(f"No --model given: training the image recipe's {config.default_model} model once.")
    cached.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cached.parent) as tmp:
        args = ["train", "--run-dir", str(Path(tmp) / "run"), "--seed", str(config.seed)]
        args += ["--tiny"] if config.default_model == "tiny" else []
        status = _train_source([sys.executable, str(script), *args], Path(tmp) / "run")
        if status != 0:
            raise CheckpointError(
                f"Training the image recipe's default model failed (exit status {status}, its "
                "output is above); pass --model PATH to prune a model you have."
            )
        shutil.rmtree(cached, ignore_errors=True)
        (Path(tmp) / "run").rename(cached)
    print(f"Cached the model to prune in {cached} (reused by later runs).")
    return cached / "model.keras"


def _train_source(command: list[str], run: Path) -> int:
    """Runs the image recipe's `train` and shows its output but its last line, the temporary
    run directory (the cache is where the model ends up); returns its exit status."""
    with subprocess.Popen(command, stdout=subprocess.PIPE, text=True) as child:
        for line in child.stdout:
            if line.strip() != str(run):
                print(line, end="", flush=True)
    return child.returncode


def source_config(config: Config) -> dict:
    """The config.json of the run that made the source model ({} if it has none)."""
    path = source_path(config).parent / "config.json"
    return json.loads(path.read_text()) if path.exists() else {}


def resolve(config: Config, model: keras.Model) -> Config:
    """The config with the model path, its data (dataset, image size, split seed) and its kind
    of input filled in from the source run."""
    trained = source_config(config)
    dataset = config.dataset or trained.get("dataset")
    if not dataset:
        raise ConfigError(
            f"{source_path(config)} has no config.json beside it to tell its dataset; pass "
            "--dataset (the one it was trained on)."
        )
    image_size = config.image_size or trained.get("image_size")
    return dataclasses.replace(
        config,
        model=str(source_path(config)),
        dataset=dataset,
        inputs=config.inputs or ("text" if model.inputs[0].dtype == "string" else "image"),
        image_size=tuple(image_size) if image_size else None,
        data_seed=trained.get("seed", config.seed)
        if config.data_seed is None
        else config.data_seed,
    )


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


def arrays(ds) -> tuple[np.ndarray, np.ndarray]:
    """A batched `(input, label)` dataset as two arrays."""
    xs, ys = zip(*ds.as_numpy_iterator(), strict=True)
    return np.concatenate(xs), np.concatenate(ys)


# ---------------------------------------------------------------------------------------------
# Model: the trained source model itself (this recipe builds nothing from scratch but the
# small dense baseline, which `pruning.resize` derives from it).
# ---------------------------------------------------------------------------------------------


def build_model(config: Config, info: data.DataInfo) -> keras.Model:
    return training.load_model(source_path(config))


# ---------------------------------------------------------------------------------------------
# Fine-tuning: the same optimizer, schedule and epochs for every variant; a backup per variant,
# so a killed run resumes inside the variant it was training.
# ---------------------------------------------------------------------------------------------


def fit(
    model: keras.Model,
    config: dlrecipes.RecipeConfig,
    splits: data.Splits,
    out: Path,
    extra: list[keras.callbacks.Callback] = (),
    logs: Path | None = None,
) -> None:
    """Trains `model` for `config.epochs` with `config`'s optimizer, logging into `out` and
    TensorBoard logs into `logs` (default `<run>/tensorboard/<variant>`)."""
    out.mkdir(parents=True, exist_ok=True)
    steps = training.count_batches(splits.train)
    training.compile_model(model, config, steps)
    guard = callbacks.NanGuard()
    model.fit(
        splits.train,
        validation_data=splits.validation,
        epochs=config.epochs,
        callbacks=[
            guard,
            keras.callbacks.BackupAndRestore(str(out / "backup"), double_checkpoint=True),
            *([keras.callbacks.SwapEMAWeights(swap_on_epoch=True)] if config.ema else []),
            callbacks.HistoryCSV(out / "history.csv"),
            keras.callbacks.TensorBoard(str(logs or out.parent / "tensorboard" / out.name)),
            callbacks.EpochProgress(),
            *extra,
        ],
        verbose=0,  # EpochProgress: one line an epoch, a bar on a terminal
        shuffle=False,  # the tf.data pipeline shuffles; Keras warns about shuffle=True
    )
    if guard.message:
        raise TrainingDiverged(guard.message)


def magnitude_pruned(
    config: Config, splits: data.Splits, strategy, sparsity: float, out: Path
) -> keras.Model:
    """The source model fine-tuned while its kernels are pruned to `sparsity`."""
    steps = training.count_batches(splits.train) * config.epochs
    schedule = pruning.PolynomialDecay(
        initial_sparsity=0.0,
        final_sparsity=sparsity,
        begin_step=0,
        end_step=max(1, round(config.pruning_end * steps) - 1),
        frequency=config.frequency,
    )
    with strategy.scope():
        model = training.load_model(config.model)
        per_layer = config.per_layer()
        pruning.select(model, schedule, per_layer)  # refuses names that cannot be pruned
        sizes: dict[str, int] = {}
        for target in pruning.select(model, schedule):
            sizes[target.layer] = sizes.get(target.layer, 0) + int(np.prod(target.variable.shape))
        chosen = {name: None for name, n in sizes.items() if n >= config.dense_below} | per_layer
        chosen = {name: s for name, s in chosen.items() if s != 0}
        callback = pruning.prune_low_magnitude(model, schedule, chosen)
        fit(model, config, splits, out, [callback])
    return pruning.strip(model)


def structurally_pruned(
    config: Config, splits: data.Splits, strategy, fraction: float, out: Path
) -> keras.Model:
    """The source model with `fraction` of its channels removed, then fine-tuned."""
    with strategy.scope():
        model = pruning.narrow(training.load_model(config.model), fraction)
        fit(model, config, splits, out)
    return pruning.without_optimizer(model)


def small_dense(
    config: Config, splits: data.Splits, strategy, nonzeros: int, out: Path
) -> keras.Model:
    """A narrower copy of the source architecture with about `nonzeros` weights, trained from
    scratch as the source model was (its run's settings), then fine-tuned like the others."""
    with strategy.scope():
        source = training.load_model(config.model)
        low, high = 0.0, 1.0
        for _ in range(12):  # bisect the width factor on the parameter count
            mid = (low + high) / 2
            size = pruning.resize(source, pruning.scaled_widths(source, mid), copy_fixed=False)
            low, high = (mid, high) if size.count_params() < nonzeros else (low, mid)
        model = pruning.resize(source, pruning.scaled_widths(source, high))
        trained_as = {k: v for k, v in source_config(config).items() if k in TRAINING_FIELDS}
        scratch = dataclasses.replace(config, **trained_as)
        logs = out.parent / "tensorboard" / f"{out.name}-from-scratch"
        fit(model, scratch, splits, out / "from-scratch", logs=logs)
        fit(model, config, splits, out)
    return pruning.without_optimizer(model)


# ---------------------------------------------------------------------------------------------
# The run: every variant (skipping those a resumed run finished), then the comparison.
# ---------------------------------------------------------------------------------------------


def variants(config: Config, source: keras.Model) -> list[tuple[str, str, float]]:
    """(name, kind, amount) of every model the run makes, dense first."""
    rows = [("dense", "source", 0.0)]
    rows += [(f"unstructured-{round(100 * s)}", "magnitude", s) for s in config.sparsities]
    if pruning.channel_scores(source):
        rows += [(f"structured-{round(100 * f)}", "channels", f) for f in config.channel_fractions]
    rows.append(("small-dense", "baseline", config.baseline_sparsity))
    return rows


def make(
    config: Config, splits: data.Splits, strategy, name: str, kind: str, amount: float, run: Path
) -> keras.Model:
    """Makes (or, when a resumed run has it, loads) the model of one variant."""
    out = run / name
    saved = out / "model.keras"
    if saved.exists():
        return training.load_model(saved)
    out.mkdir(exist_ok=True)
    config.save(out / "config.json")  # so `evaluate --model` finds the data of this model
    print(f"== {name}")
    if kind == "source":
        model = pruning.without_optimizer(training.load_model(config.model))
    elif kind == "magnitude":
        model = magnitude_pruned(config, splits, strategy, amount, out)
    elif kind == "channels":
        model = structurally_pruned(config, splits, strategy, amount, out)
    else:
        sparse = training.load_model(run / f"unstructured-{round(100 * amount)}" / "model.keras")
        model = small_dense(config, splits, strategy, pruning.count(sparse)["nonzeros"], out)
    model.save(saved)
    return model


def train(
    recipe: dlrecipes.Recipe,
    config: Config,
    run_dir: Path | None,
    *,
    resume: bool = False,
    export: bool = True,
) -> training.RunResult:
    """Makes every variant into `run_dir`, compares them, and exports the best pruned model
    (always: `export` is accepted for the shared command line)."""
    run_dir = None if run_dir is None else Path(run_dir)
    source = training.load_model(source_path(config))
    config = resolve(config, source)
    pruning.select(source, pruning.ConstantSparsity(0.5), config.per_layer())  # names usable?
    training.check_run_dir(run_dir, resume)
    runtime.seed_everything(config.seed, config.deterministic)
    runtime.set_precision(config.precision)
    strategy = runtime.strategy(config.strategy)
    splits = load_data(config)
    if not resume:
        run_dir = training.claim_run_dir(run_dir, recipe.name, config)
    x_val, y_val = arrays(splits.validation)
    x_test, y_test = arrays(splits.test)

    rows, models = [], {}
    for name, kind, amount in variants(config, source):
        models[name] = make(config, splits, strategy, name, kind, amount, run_dir)
        row = {"model": name, "kind": kind, "amount": amount}
        row["val_accuracy"] = compare.accuracy(models[name], x_val, y_val)
        row |= compare.profile(models[name], run_dir / name / "model.keras", x_test, y_test)
        rows.append(row)
        print(f"{name}: test accuracy {row['test_accuracy']:.4f}, {row['nonzeros']:,} non-zeros")
    timed = compare.speeds(models, x_test, config.timing_seconds)
    for row in rows:
        row |= timed[row["model"]]
    if config.inputs == "image":  # TFLite runs no string preprocessing
        tflite = {
            name: litert.export(m, run_dir / name / "model.tflite") for name, m in models.items()
        }
        print("Timing the TFLite files at batch 1 through the LiteRT interpreter.")
        invoke = litert.interleaved_latency(tflite, x_test[0], config.timing_seconds)
        for row in rows:
            row["tflite_latency_ms"] = 1e3 * invoke[row["model"]]
            row["tflite_speedup_b1"] = invoke["dense"] / invoke[row["model"]]
    compare.add_ratios(rows, rows[0])
    best = pick_best(rows, config.tolerance)
    return finish(config, run_dir, splits, rows, best, (x_test, y_test))


def pick_best(rows: list[dict], tolerance: float) -> dict:
    """The sparsest magnitude-pruned model within `tolerance` of dense on validation, else the
    most accurate pruned one."""
    pruned = [r for r in rows if r["kind"] in ("magnitude", "channels")]
    close = [r for r in pruned if r["val_accuracy"] >= rows[0]["val_accuracy"] - tolerance]
    if close:
        return min(close, key=lambda r: (r["gzip_kb"], -r["val_accuracy"]))
    return max(pruned, key=lambda r: r["val_accuracy"])


# ---------------------------------------------------------------------------------------------
# Export and report: the best pruned model as .keras, SavedModel, TFLite and int8 TFLite, each
# scored on the test split (the TFLite files through the LiteRT interpreter).
# ---------------------------------------------------------------------------------------------


def exports(model: keras.Model, run_dir: Path, test, calibration: np.ndarray) -> list[dict]:
    out = run_dir / "export"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir()
    x, y = test
    rows = []
    shutil.copy(run_dir / "model.keras", out / "model.keras")
    rows.append({"format": "keras", "accuracy": compare.accuracy(model, x, y)})
    model.export(str(out / "saved_model"), verbose=False)
    served = tf.saved_model.load(str(out / "saved_model"))
    batches = range(0, len(x), 256)
    probs = np.concatenate([served.serve(tf.constant(x[i : i + 256])) for i in batches])
    rows.append({"format": "saved_model", "accuracy": float((probs.argmax(-1) == y).mean())})
    for name, calibrate in (("model.tflite", None), ("model-int8.tflite", calibration)):
        try:
            litert.export(model, out / name, calibrate)
            predicted = litert.predict(out / name, x).argmax(-1)
        except Exception as err:  # noqa: BLE001 - converter and interpreter raise many kinds
            # e.g. string inputs: TFLite needs TensorFlow ops the LiteRT interpreter lacks.
            message = str(err).strip().splitlines()[-1][:200]
            rows.append({"format": name, "error": f"{type(err).__name__}: {message}"})
            continue
        rows.append({"format": name, "accuracy": float((predicted == y).mean())})
    paths = ["model.keras", "saved_model", "model.tflite", "model-int8.tflite"]
    for row, path in zip(rows, paths, strict=True):
        if (out / path).exists():
            row["file"] = f"export/{path}"
            row["bytes"] = measure.file_size(out / path)
            row["gzip_kb"] = measure.gzip_size(out / path) / 1024
    return rows


COLUMNS = [
    "model",
    "test_accuracy",
    "points_vs_dense",
    "params",
    "nonzeros",
    "mflops",
    "sparse_mflops",
    "gzip_kb",
    "size_vs_dense",
    "latency_ms",
    "speedup_b1",
    "throughput",
    "speedup_b256",
    "tflite_latency_ms",
    "tflite_speedup_b1",
]


def finish(
    config: Config, run_dir: Path, splits: data.Splits, rows, best: dict, test
) -> training.RunResult:
    """Writes the run directory's files for the best pruned model and the comparison."""
    best_dir = run_dir / best["model"]
    model = training.load_model(best_dir / "model.keras")
    shutil.copy(best_dir / "model.keras", run_dir / "model.keras")
    shutil.copy(best_dir / "history.csv", run_dir / "history.csv")
    metrics, _, _ = training.evaluate_model(model, splits)
    calibration = test[0][: config.calibration]
    exported = exports(model, run_dir, test, calibration)
    dense_kb = rows[0]["gzip_kb"]
    for row in exported:
        if "gzip_kb" in row:
            row["smaller_than_dense"] = dense_kb / row["gzip_kb"]
    metrics |= {"best": best["model"], "models": rows, "exports": exported}
    for row in rows:
        print(" ".join(f"{k}={_short(row[k])}" for k in COLUMNS if k in row))
    compare.plot_accuracy_vs_size(rows, run_dir / "accuracy_vs_size.png")
    reports.plot_curves(run_dir / "history.csv", run_dir / "curves.png")
    reports.plot_confusion(
        metrics["confusion_matrix"], splits.info.class_names, run_dir / "confusion.png"
    )
    extra = "\n".join(
        [
            f"## Every model (best pruned: {best['model']}, exported)",
            "",
            compare.table(rows, COLUMNS),
            "",
            "![accuracy against size](accuracy_vs_size.png)",
            "",
            "## Exports of the best pruned model (accuracy on the test split; TFLite files run "
            "by the LiteRT interpreter)",
            "",
            compare.table(
                exported, ["format", "file", "accuracy", "bytes", "gzip_kb", "smaller_than_dense"]
            ),
            "",
            "## Per-layer sparsity of the exported model",
            "",
            compare.table(
                pruning.sparsity_report(model), ["weight", "shape", "params", "sparsity"]
            ),
        ]
    )
    title = f"pruning {Path(config.model).parent.name}: {config.dataset}"
    reports.write_report(run_dir, title, config.to_dict(), metrics, extra)
    reports.write_json(run_dir / "metrics.json", metrics)
    return training.RunResult(run_dir, metrics)


def _short(value) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def recipe() -> dlrecipes.Recipe:
    return dlrecipes.Recipe(
        name="pruning",
        config_class=Config,
        load_data=load_data,
        build_model=build_model,
        build_hypermodel=None,  # `train` compares the settings; `tune` is refused
        train=train,
    )


def main() -> None:
    raise SystemExit(dlrecipes.cli.run(recipe()))


if __name__ == "__main__":
    main()
