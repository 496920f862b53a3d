"""Callbacks every training run gets: backup and resume, best checkpoint, early stopping, a NaN
guard, CSV history and TensorBoard."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import keras
import tensorflow as tf

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


class BackupAndRestore(keras.callbacks.BackupAndRestore):
    """Keras' `BackupAndRestore` (two backups kept), backing up after every epoch and, with
    `steps`, also every `steps` training steps; a run resumed from a mid-epoch backup goes on at
    the step after it and trains exactly as many steps as a run never stopped.

    Keras 3 restores a backup's epoch but runs that epoch from its first step again. With `steps`,
    training reads the data `resumable` returns instead: one stream of passes over the training
    set, `steps_per_epoch` steps to an epoch, that a resumed run starts where the backup was taken
    (a resumed pass draws a fresh shuffle: what is skipped is as many batches as were trained, not
    the very same examples). Its epochs then end that many steps into the next pass, and the last
    one stops early, at the run's total step count.
    """

    def __init__(self, backup_dir: str | Path, steps: int = 0) -> None:
        super().__init__(str(backup_dir), save_freq=steps or "epoch", double_checkpoint=True)
        self.steps = steps
        self._skip = tf.Variable(0, dtype=tf.int64, trainable=False)
        self._steps_per_epoch = 0
        self._offset = 0  # steps of the stream already trained when this run's epochs began
        self._steps_done = 0  # steps of the current epoch's stream position, for the backup

    def resumable(
        self, ds: tf.data.Dataset, steps_per_epoch: int
    ) -> tuple[tf.data.Dataset, int | None]:
        """The training data and `steps_per_epoch` to give `fit`: `(ds, None)` without `steps`."""
        if not self.steps:
            return ds, None
        self._steps_per_epoch = steps_per_epoch
        skip = self._skip
        # The count is read when fit starts iterating, after `on_train_begin` restored the backup.
        stream = tf.data.Dataset.range(1).flat_map(lambda _: ds.repeat().skip(skip))
        return stream.with_options(ds.options()), steps_per_epoch

    def on_train_begin(self, logs: dict | None = None) -> None:
        super().on_train_begin(logs)
        meta = Path(self._training_metadata_path)
        self._offset = json.loads(meta.read_text()).get("steps_done", 0) if meta.exists() else 0
        self._skip.assign(self._offset)

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        # Keras sets it only at epoch end, so a resumed run's mid-epoch backups would say epoch 0.
        self._current_epoch = epoch

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        if not self.steps:
            return
        self._steps_done = self._offset + batch + 1
        position = self._current_epoch * self._steps_per_epoch + self._steps_done
        if position >= self.params["epochs"] * self._steps_per_epoch:
            self.model.stop_training = True  # a resumed run's last epoch ends the run on time
        elif batch + 1 < self._steps_per_epoch:  # the epoch's last step is backed up at its end
            super().on_train_batch_end(batch, logs)

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        self._steps_done = self._offset
        self._batches_seen_since_last_saving = 0
        super().on_epoch_end(epoch, logs)
        if self.steps:
            self._save_model()

    def _save_model(self) -> None:
        super()._save_model()
        # Keras writes the epoch to resume; add how many steps into it these weights are.
        meta = Path(self._training_metadata_path)
        values = {**json.loads(meta.read_text()), "steps_done": self._steps_done}
        meta.write_text(json.dumps(values))


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
        BackupAndRestore(run_dir / "backup", steps=config.backup_steps),
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
