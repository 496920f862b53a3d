"""Callbacks of a training run: a NaN guard, the history CSV that survives resumes, each epoch's
seconds, and the progress of each epoch. The backup and the best checkpoint are
`dlrecipes.backups.RunBackup`."""

from __future__ import annotations

import csv
import math
import os
import time
from pathlib import Path

import keras

from dlrecipes import progress
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
    when resumed; the stale rows are dropped when the first epoch begins. A resumed run writes
    the columns the file has, so rows stay under their header even when the logs gained a
    column since (a run started by an older version).
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
            if not self.append_header:  # a resumed run keeps the columns its file has
                with open(self.filename, newline="") as f:
                    self.keys = next(csv.reader(f))[1:]
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


# history.csv's column of each epoch's wall-clock seconds (`EpochSeconds`).
SECONDS = "seconds"


class EpochSeconds(keras.callbacks.Callback):
    """Adds the wall-clock seconds of each epoch, validation included, to the epoch's logs as
    `seconds`, for the callbacks after it: `HistoryCSV` writes the column, and a run's training
    time is its sum (`python -m dlrecipes runs`), however often the run was resumed."""

    def __init__(self) -> None:
        super().__init__()
        self.started = time.monotonic()

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self.started = time.monotonic()

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        if logs is not None:
            logs[SECONDS] = round(time.monotonic() - self.started, 3)


class EpochProgress(keras.callbacks.Callback):
    """Progress of `fit(verbose=0)`: steps on a terminal, one plain line an epoch everywhere.

    At the end of every epoch it prints `Epoch 3/20 - 4.1s - loss 0.2012 - accuracy 0.9391 -
    val_loss ...`. On a terminal (standard error or output) a tqdm bar also counts the steps of
    the epoch under way, with their rate, the time left and the loss so far, and says when the
    epoch validates; it is cleared when the epoch's line is printed. In a log that is not a
    terminal only the lines are written (Keras' `verbose=2` takes two lines an epoch and
    `verbose=1` records its bar as escape codes).

    Epochs are numbered as `fit` numbers them, so fits that go on where another stopped
    (`initial_epoch`: training in phases, a resumed run) continue one sequence.

    Args:
        epochs: the run's total epochs, shown after the slash, for a run trained in several
            fits; None: each fit's own `epochs`.

    Example:

    >>> model.fit(train, epochs=20, verbose=0, callbacks=[EpochProgress()])
    """

    def __init__(self, epochs: int | None = None) -> None:
        super().__init__()
        self.epochs = epochs
        self.started = time.monotonic()
        self._bar = None
        self._label = ""

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self.started = time.monotonic()
        self._label = f"Epoch {epoch + 1}/{self.epochs or self.params.get('epochs', '?')}"
        self._close_bar()
        self._bar = progress.new_bar(total=self.params.get("steps"), desc=self._label, unit="step")

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        if self._bar is None:
            return
        loss = (logs or {}).get("loss")
        if loss is not None:
            self._bar.set_postfix_str(f"loss {float(loss):.4f}", refresh=False)
        self._bar.update(1)

    def on_test_begin(self, logs: dict | None = None) -> None:
        if self._bar is not None:
            self._bar.set_description(f"{self._label} validating")

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        self._close_bar()
        seconds = time.monotonic() - self.started
        values = " - ".join(
            f"{k} {v}" if isinstance(v, int | str) else f"{k} {float(v):.4f}"  # e.g. the phase
            for k, v in (logs or {}).items()
            if k != SECONDS  # shown before, as the epoch's time
        )
        print(f"{self._label} - {seconds:.1f}s - {values}", flush=True)

    def on_train_end(self, logs: dict | None = None) -> None:
        self._close_bar()  # training stopped inside an epoch

    def _close_bar(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
