"""Callbacks every training run gets: backup and resume, best checkpoint, early stopping, a NaN
guard, CSV history and TensorBoard."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import keras

from dlrecipes.config import RecipeConfig

MONITOR = "val_accuracy"


class NanGuard(keras.callbacks.Callback):
    """Stops training at the first non-finite loss and remembers where it happened.

    Unlike `keras.callbacks.TerminateOnNaN` it names the epoch and batch, so the message can say
    where training blew up; `message` is None while the loss stays finite.
    """

    def __init__(self) -> None:
        super().__init__()
        self.epoch = 0
        self.message: str | None = None

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self.epoch = epoch

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(float(loss)):
            self.message = (
                f"Training diverged: loss became {float(loss)} at epoch {self.epoch + 1}, "
                f"batch {batch + 1}. Lower --learning-rate, add --warmup-epochs, or try "
                f"--optimizer adamw."
            )
            self.model.stop_training = True


class HistoryCSV(keras.callbacks.CSVLogger):
    """`CSVLogger` that appends across resumed runs without repeating an epoch.

    A run killed after an epoch was logged but before its backup was written repeats that epoch
    when resumed; the stale rows are dropped when the first epoch begins.
    """

    def __init__(self, filename: str | Path) -> None:
        super().__init__(str(filename), append=True)
        self._trimmed = False

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        if not self._trimmed:
            self._trimmed = True
            trim_history(Path(self.filename), keep_before=epoch)
            # CSVLogger opened the file in on_train_begin; reopen it after trimming.
            self.csv_file.close()
            self.csv_file = open(self.filename, "a")  # noqa: SIM115 - CSVLogger closes it
            self.append_header = not Path(self.filename).stat().st_size
            self.writer = None
        super().on_epoch_begin(epoch, logs)


def read_history(path: Path) -> list[dict[str, str]]:
    """The rows of a history CSV, or [] when there is none."""
    if not path.exists() or not path.stat().st_size:
        return []
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def trim_history(path: Path, keep_before: int) -> None:
    """Keeps only the rows of epochs before `keep_before` in a history CSV."""
    rows = read_history(path)
    kept = [r for r in rows if int(r["epoch"]) < keep_before]
    if len(kept) == len(rows):
        return
    with path.open("w", newline="") as f:
        if kept:
            writer = csv.DictWriter(f, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(kept)


def best_checkpoint(path: Path, history: Path) -> keras.callbacks.ModelCheckpoint:
    """Saves the model whenever validation accuracy improves; a resumed run remembers the best."""
    checkpoint = keras.callbacks.ModelCheckpoint(
        str(path), monitor=MONITOR, mode="max", save_best_only=True
    )
    scores = [float(r[MONITOR]) for r in read_history(history) if r.get(MONITOR)]
    if scores and path.exists():
        checkpoint.best = max(scores)
    return checkpoint


def standard(
    run_dir: Path, config: RecipeConfig
) -> tuple[list[keras.callbacks.Callback], NanGuard]:
    """The callbacks of a training run writing into `run_dir`, and its NaN guard.

    Order matters: the backup is written before the epoch's history row, so a run killed between
    the two repeats the epoch and `HistoryCSV` drops the stale row. With `config.ema` the backup
    also comes before the averaged weights are swapped in, so it holds the raw training weights
    (the average is in the optimizer's state) and the best checkpoint holds the average.
    """
    guard = NanGuard()
    callbacks: list[keras.callbacks.Callback] = [
        guard,
        keras.callbacks.BackupAndRestore(str(run_dir / "backup"), double_checkpoint=True),
        *([keras.callbacks.SwapEMAWeights(swap_on_epoch=True)] if config.ema else []),
        best_checkpoint(run_dir / "model.keras", run_dir / "history.csv"),
        HistoryCSV(run_dir / "history.csv"),
        keras.callbacks.TensorBoard(str(run_dir / "tensorboard")),
    ]
    if config.early_stopping:
        callbacks.append(
            keras.callbacks.EarlyStopping(
                monitor=MONITOR, mode="max", patience=config.early_stopping
            )
        )
    return callbacks, guard


def scoring(config: RecipeConfig) -> tuple[list[keras.callbacks.Callback], NanGuard]:
    """The callbacks of `standard` that decide what a run is scored on, without its files.

    The NaN guard, the weight average swapped in for validation (`config.ema`; the callbacks
    after it see the averaged weights) and early stopping. A tuning trial fits with these, so
    it is judged on the weights `train` would validate and export.
    """
    guard = NanGuard()
    callbacks: list[keras.callbacks.Callback] = [guard]
    if config.ema:
        callbacks.append(keras.callbacks.SwapEMAWeights(swap_on_epoch=True))
    if config.early_stopping:
        callbacks.append(
            keras.callbacks.EarlyStopping(
                monitor=MONITOR, mode="max", patience=config.early_stopping
            )
        )
    return callbacks, guard
