"""Callbacks every training run gets: backup and resume, best checkpoint, early stopping, a NaN
guard, CSV history, TensorBoard, and the progress of each epoch."""

from __future__ import annotations

import contextlib
import csv
import json
import math
import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import keras
import tensorflow as tf

from dlrecipes import progress
from dlrecipes.config import RecipeConfig
from dlrecipes.errors import CheckpointError

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


# Written by `keras.callbacks.BackupAndRestore`: the number of epochs its backup holds.
KERAS_METADATA = "training_metadata.json"


def epochs_done(backup_dir: Path) -> int:
    """How many epochs the backup in `backup_dir` holds (0 when there is none)."""
    path = backup_dir / KERAS_METADATA
    if not path.exists():
        return 0
    try:
        return int(json.loads(path.read_text())["epoch"])
    except (ValueError, KeyError) as err:
        raise _unusable(backup_dir, err) from err


def _unusable(backup_dir: Path | str, err: Exception) -> CheckpointError:
    return CheckpointError(
        f"The backup in {backup_dir} cannot be restored ({type(err).__name__}: "
        f"{str(err)[:200]}). Move that folder away to restart this run from epoch 1; the rest "
        "of the run directory is kept."
    )


@contextlib.contextmanager
def ctrl_c_after() -> Iterator[None]:
    """Holds Ctrl-C (SIGINT) until the block is done, then raises `KeyboardInterrupt`.

    For writing backups and checkpoints: Keras' saving code has bare `except:` clauses (around
    opening its weights file) that swallow a `KeyboardInterrupt` raised inside them, so a Ctrl-C
    landing there was lost and training went on; held, it stops the run right after the write,
    which is also never left half done. Outside the main thread (where signals cannot be
    handled) the block runs as is.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    pressed: list[int] = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: pressed.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
    if pressed:
        raise KeyboardInterrupt


class RunCheckpoints(keras.callbacks.BackupAndRestore):
    """The backup a killed run resumes from, and the best model so far in `model.keras`.

    At the end of every epoch, in this order: the model is saved to `backup/best-<n>.keras` when
    `monitor` improved (with `ema`, the averaged weights swapped in for the save); a marker
    `backup/finished-<n>` is left when training stops after this epoch; the backup is written
    (raw weights and optimizer state, averages included, and `n`, the epochs done); then
    `best-<n>.keras` replaces `model.keras`. A run killed before the backup repeats the epoch and
    the files named for it are ignored; a run killed after it finds them and moves the model into
    place (`recover`). So `model.keras` always holds the best epoch of the backup, and of
    `history.csv` when `HistoryCSV` runs before this callback.

    Unlike Keras' default the backup outlives `fit`: the run is not finished until its report is
    written, and a run killed while writing it resumes without training again. Whoever writes the
    report deletes the backup afterwards. An epoch whose loss is not finite is not backed up: a
    resumed run goes on from the last finite state.

    With `steps`, the backup is also written every `steps` training steps, and a run resumed from
    such a backup goes on at the step after it, training exactly as many steps as a run never
    stopped (Keras 3 alone restores the epoch but runs it from its first step again). Training
    then reads the data `resumable` returns: one stream of passes over the training set,
    `steps_per_epoch` steps to an epoch, that a resumed run starts where the backup was taken (a
    resumed pass draws a fresh shuffle: what is skipped is as many batches as were trained, not
    the very same examples). Its epochs then end that many steps into the next pass, and the last
    one stops early, at the run's total step count.

    Args:
        run_dir: the run directory; the backup goes to `run_dir/backup`.
        monitor: the metric whose best value picks the model; higher is better.
        ema: save the averaged weights (the optimizer must have `use_ema=True`).
        steps: also back up every `steps` training steps (0: after every epoch only).

    `finishes` says whether the end of this `fit` ends the training (True unless set): training
    in phases (`dlrecipes.phases`) sets it False before every phase but the last.
    """

    def __init__(
        self, run_dir: Path, monitor: str = MONITOR, ema: bool = False, steps: int = 0
    ) -> None:
        super().__init__(
            str(run_dir / "backup"),
            save_freq=steps or "epoch",
            double_checkpoint=True,
            delete_checkpoint=False,
        )
        self.run_dir = Path(run_dir)
        self.monitor = monitor
        self.best = -math.inf
        # Public hooks of SwapEMAWeights: on_test_begin swaps the average in, on_test_end out.
        self._swap = keras.callbacks.SwapEMAWeights() if ema else None
        self.steps = steps
        self._skip = tf.Variable(0, dtype=tf.int64, trainable=False)
        self._steps_per_epoch = 0
        self._offset = 0  # steps of the stream already trained when this run's epochs began
        self._steps_done = 0  # steps of the current epoch's stream position, for the backup
        self.finishes = True

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

    def set_model(self, model: keras.Model) -> None:
        super().set_model(model)
        if self._swap is not None:
            self._swap.set_model(model)

    def on_train_begin(self, logs: dict | None = None) -> None:
        try:
            super().on_train_begin(logs)
        except (OSError, ValueError, KeyError) as err:
            raise _unusable(self.backup_dir, err) from err
        done = recover(self.run_dir)
        scores = [
            float(r[self.monitor])
            for r in read_history(self.run_dir / "history.csv")
            if r.get(self.monitor) and int(r["epoch"]) < done
        ]
        if scores and (self.run_dir / "model.keras").exists():
            self.best = max(scores)
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
        logs = logs or {}
        if not math.isfinite(float(logs.get("loss", 0.0))):
            return  # diverged: keep the last finite state (NanGuard says what happened)
        n = epoch + 1
        backup = Path(self.backup_dir)
        backup.mkdir(parents=True, exist_ok=True)
        score = logs.get(self.monitor)
        improved = score is not None and float(score) > self.best
        if improved:
            self.best = float(score)
            self._save_best(backup / f"best-{n}.keras")
        if self.finishes and (self.model.stop_training or n >= self.params["epochs"]):
            (backup / f"finished-{n}").touch()
        self._steps_done = self._offset
        self._batches_seen_since_last_saving = 0
        super().on_epoch_end(epoch, logs)  # the backup, with save_freq "epoch"
        if self.steps:
            self._save_model()
        if improved:
            os.replace(backup / f"best-{n}.keras", self.run_dir / "model.keras")

    def _save_model(self) -> None:
        with ctrl_c_after():
            super()._save_model()
            # Keras writes the epoch to resume; add how many steps into it these weights are.
            meta = Path(self._training_metadata_path)
            values = {**json.loads(meta.read_text()), "steps_done": self._steps_done}
            meta.write_text(json.dumps(values))

    def _save_best(self, path: Path) -> None:
        with ctrl_c_after():
            if self._swap is None:
                self.model.save(str(path))
                return
            self._swap.on_test_begin()
            try:
                self.model.save(str(path))
            finally:
                self._swap.on_test_end()


def recover(run_dir: Path) -> int:
    """Settles what a run killed during an epoch's end left behind; returns the epochs done.

    The best model saved for the last backed-up epoch is moved into `model.keras`; files named
    for later epochs (which will run again) are deleted.
    """
    backup = run_dir / "backup"
    done = epochs_done(backup)
    if (backup / f"best-{done}.keras").exists():
        os.replace(backup / f"best-{done}.keras", run_dir / "model.keras")
    for path in [*backup.glob("best-*.keras"), *backup.glob("finished-*")]:
        if int(path.name.split("-")[1].split(".")[0]) > done:
            path.unlink()
    return done


def training_finished(run_dir: Path, epochs: int) -> bool:
    """Whether the backup in `run_dir` holds a finished training (all `epochs`, or stopped
    early), once `recover` has settled it."""
    done = recover(run_dir)
    return done >= epochs or (run_dir / "backup" / f"finished-{done}").exists()


def scoring(
    config: RecipeConfig, *, average_at_epoch_end: bool = False
) -> tuple[list[keras.callbacks.Callback], NanGuard]:
    """The callbacks that decide what a run is scored on, without its files, and the NaN guard.

    The NaN guard, the weight average swapped in for validation (`config.ema`) and early
    stopping. `standard` starts with these, and a tuning trial fits with them, so a trial is
    judged on the weights `train` would validate and export.

    Args:
        config: the run's config.
        average_at_epoch_end: also swap the average in for the callbacks after these at the end
            of every epoch (a tuning trial's checkpoint); off in `standard`, whose backup keeps
            the raw weights a resumed run goes on from.
    """
    guard = NanGuard()
    callbacks: list[keras.callbacks.Callback] = [guard]
    if config.ema:
        callbacks.append(keras.callbacks.SwapEMAWeights(swap_on_epoch=average_at_epoch_end))
    if config.early_stopping:
        callbacks.append(
            keras.callbacks.EarlyStopping(
                monitor=MONITOR, mode="max", patience=config.early_stopping
            )
        )
    return callbacks, guard


def standard(
    run_dir: Path, config: RecipeConfig
) -> tuple[list[keras.callbacks.Callback], NanGuard]:
    """The callbacks of a training run writing into `run_dir`, and its NaN guard.

    `scoring`'s callbacks first, then the files. Order matters at the end of an epoch.
    `HistoryCSV` writes the epoch's row before `RunCheckpoints` writes the backup (Keras'
    `on_epoch_end` records `epoch + 1` epochs done), so a run killed between the two repeats that
    epoch and `HistoryCSV` drops the stale row; killed after the backup, the row is there and the
    epoch is not run again. `EarlyStopping` comes before the backup too, so a backup records that
    training stopped. With `config.ema`, validation and the saved best model use the averaged
    weights, and the backup keeps the raw ones a resumed run goes on from (the average is in the
    optimizer's state). `EpochSeconds` comes before `HistoryCSV`, which records its column.
    """
    callbacks, guard = scoring(config)
    callbacks += [
        EpochSeconds(),
        HistoryCSV(run_dir / "history.csv"),
        RunCheckpoints(run_dir, MONITOR, ema=bool(config.ema), steps=config.backup_steps),
        keras.callbacks.TensorBoard(str(run_dir / "tensorboard")),
    ]
    return callbacks, guard


# history.csv's column of each epoch's seconds (`EpochSeconds`).
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
            f"{k} {v}" if isinstance(v, int) else f"{k} {float(v):.4f}"  # e.g. the phase number
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
