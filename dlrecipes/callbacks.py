"""Callbacks of a training run: a NaN guard, the history CSV that survives resumes, and one line
an epoch. The backup and the best checkpoint are `dlrecipes.backups.RunBackup`."""

from __future__ import annotations

import csv
import math
import os
import time
from pathlib import Path

import keras

from dlrecipes.errors import TrainingDiverged

MONITOR = "val_accuracy"


class NanGuard(keras.callbacks.Callback):
    """Stops training at the first non-finite loss and raises `TrainingDiverged` from `fit`.

    Unlike `keras.callbacks.TerminateOnNaN` it names the epoch and batch, so the message can say
    where training blew up. It raises when training ends, after the callbacks before it in the
    list have ended theirs (put it last); `message` is None while the loss stays finite.
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

    def on_train_end(self, logs: dict | None = None) -> None:
        if self.message:
            raise TrainingDiverged(self.message)


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
    """Keeps only the rows of epochs before `keep_before` in a history CSV.

    The file is replaced in one step (a temporary file, then `os.replace`), so a run killed while
    trimming keeps its history.
    """
    rows = read_history(path)
    kept = [r for r in rows if int(r["epoch"]) < keep_before]
    if len(kept) == len(rows):
        return
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w", newline="") as f:
        if kept:
            writer = csv.DictWriter(f, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(kept)
    os.replace(tmp, path)


class EpochLine(keras.callbacks.Callback):
    """One line per epoch: `Epoch 3/20 - 4.1s - loss 0.2012 - accuracy 0.9391 - val_loss ...`.

    Keras' `verbose=2` takes two lines an epoch and `verbose=1` draws a progress bar, which a log
    records as escape codes; `fit(verbose=0)` with this callback prints one plain line.
    """

    def __init__(self, epochs: int | None = None) -> None:
        super().__init__()
        self.epochs = epochs  # the run's total, when fits share one count (phases)
        self.started = time.monotonic()

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self.started = time.monotonic()

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        seconds = time.monotonic() - self.started
        values = " - ".join(
            f"{k} {v}" if isinstance(v, int | str) else f"{k} {float(v):.4f}"  # e.g. the phase
            for k, v in (logs or {}).items()
        )
        total = self.epochs or self.params.get("epochs", "?")
        print(f"Epoch {epoch + 1}/{total} - {seconds:.1f}s - {values}", flush=True)
