"""`RunBackup`: the backup a killed fit resumes from, and the best model so far.

Every fit of a run backs up into a folder of its own, `run_dir/backup/<fit>/`, so a recipe made
of several fits (fine-tuning's phases, pruning's variants) resumes inside the fit it was in and
repeats none that finished. Each backup is one folder written under a temporary name and renamed
into place, so a backup is whole or absent; the newest whole one is the one restored:

    backup/<fit>/epoch-0003-step-0000/  state.weights.h5  state.json  [best.keras]

`state.weights.h5` holds the weights and the optimizer's state (its weight average included),
`state.json` the epochs done, the steps done into the next epoch and whether the fit finished.
When the monitored metric improved, the epoch's best model is written into the backup folder
too and moved to `run_dir/backup/best.keras` (shared by the run's fits) once the backup is in
place; a fit killed between the two moves it when it resumes. So `best.keras` always holds the
best epoch the backups know of, and
`history.csv` (written before the backup by `callbacks.HistoryCSV`) never lists an epoch that
a resumed fit runs again.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import signal
import threading
from collections.abc import Iterator
from pathlib import Path

import keras
import tensorflow as tf

from dlrecipes.callbacks import MONITOR, read_history
from dlrecipes.errors import CheckpointError

STATE = "state.json"
WEIGHTS = "state.weights.h5"
BEST = "best.keras"
# The signals that stop a run: Ctrl-C, and what launchers and schedulers send.
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


@contextlib.contextmanager
def signals_held() -> Iterator[None]:
    """Holds Ctrl-C (SIGINT) and SIGTERM until the block is done, then raises
    `KeyboardInterrupt` if one came.

    For writing backups and checkpoints: a write stopped half way is never left behind, and
    Keras' saving code has bare `except:` clauses that would swallow a `KeyboardInterrupt` raised
    inside them (training then went on). Outside the main thread, where signals cannot be
    handled, the block runs as is.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    pressed: list[int] = []
    previous = {
        s: signal.signal(s, lambda signum, frame: pressed.append(signum)) for s in STOP_SIGNALS
    }
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
    if pressed:
        raise KeyboardInterrupt


def best_path(run_dir: Path) -> Path:
    """Where the best model of a run's fits so far is kept: `run_dir/backup/best.keras`."""
    return Path(run_dir) / "backup" / BEST


def _name(epoch: int, steps: int) -> str:
    return f"epoch-{epoch:04d}-step-{steps:06d}"


def latest(fit_dir: Path) -> Path | None:
    """The newest whole backup folder in `fit_dir`, or None."""
    found = sorted(p for p in fit_dir.glob("epoch-*-step-*") if (p / STATE).exists())
    return found[-1] if found else None


def read_state(backup: Path) -> dict:
    """The `state.json` of a backup folder."""
    try:
        return json.loads((backup / STATE).read_text())
    except (OSError, ValueError) as err:
        raise unusable(backup, err) from err


def unusable(backup: Path, err: Exception) -> CheckpointError:
    return CheckpointError(
        f"The backup in {backup} cannot be restored ({type(err).__name__}: {str(err)[:200]}). "
        f"Move {backup.parent} away to restart that part of the run from its start; the rest of "
        "the run directory is kept."
    )


def settle(run_dir: Path, fit_dir: Path) -> dict | None:
    """Tidies what a fit killed while backing up left in `fit_dir` and returns the state of its
    newest whole backup (None if there is none).

    A best model still inside that backup is moved to `best_path(run_dir)`; older backups and
    half-written ones are deleted.
    """
    newest = latest(fit_dir) if fit_dir.exists() else None
    if fit_dir.exists():
        for path in fit_dir.iterdir():
            if path != newest:
                shutil.rmtree(path, ignore_errors=True)
    if newest is None:
        return None
    if (newest / BEST).exists():
        os.replace(newest / BEST, best_path(run_dir))
    return read_state(newest)


def finished(run_dir: Path, fit: str) -> bool:
    """Whether the fit named `fit` of the run in `run_dir` has finished training."""
    state = settle(run_dir, run_dir / "backup" / fit)
    return bool(state and state.get("finished"))


def skipping_stream(ds: tf.data.Dataset, skip: tf.Variable) -> tf.data.Dataset:
    """An endless stream of passes over `ds` that starts `skip` batches in, `skip` read when
    iteration starts (after `RunBackup.on_train_begin` set it from the backup)."""
    stream = tf.data.Dataset.range(1).flat_map(lambda _: ds.repeat().skip(skip))
    return stream.with_options(ds.options())


class RunBackup(keras.callbacks.Callback):
    """Backs one fit up after every epoch (and every `steps` steps), restores it when the fit
    starts again, and keeps the best model by `monitor` in `best_path(run_dir)`.

    A restored fit starts at the epoch after its backup; one whose backup says it finished
    (all its epochs, or stopped early) trains no further. With `steps`, a backup is also written
    every `steps` training steps and the restored fit goes on at the step after it: the fit
    then reads `resumable(ds)`, one stream of passes over the training data that skips the steps
    already trained (a fresh shuffle: as many batches as were trained are skipped, not the very
    same examples), with `steps_per_epoch` given to `fit`; its epochs then end that many steps
    into the next pass, and the last one stops at the fit's total step count.

    With `ema`, validation and the best model use the averaged weights, and the backup keeps the
    raw ones the fit goes on from (the average is in the optimizer's state). An epoch whose loss
    is not finite is not backed up: a resumed fit goes on from the last finite state.

    Args:
        run_dir: the run directory.
        fit: the fit's name; its backups go to `run_dir/backup/<fit>/`.
        monitor: the metric whose best value picks the best model; higher is better. None keeps
            no best model: the caller saves the model it wants once the fit is done.
        ema: the optimizer keeps a weight average (`use_ema=True`) to validate and save.
        steps: also back up every `steps` training steps (0: after every epoch only).
        skip: the variable `skipping_stream` reads, set to the steps a restored fit skips.
    """

    def __init__(
        self,
        run_dir: Path,
        fit: str = "train",
        *,
        monitor: str | None = MONITOR,
        ema: bool = False,
        steps: int = 0,
        skip: tf.Variable | None = None,
    ) -> None:
        super().__init__()
        self.run_dir = Path(run_dir)
        self.fit_dir = self.run_dir / "backup" / fit
        self.monitor = monitor
        self.steps = steps
        # Public hooks of SwapEMAWeights: on_test_begin swaps the average in, on_test_end out.
        self._swap = keras.callbacks.SwapEMAWeights() if ema else None
        self._skip = skip if skip is not None else tf.Variable(0, dtype=tf.int64)
        self._offset = 0  # steps of the epoch already trained when this fit was restored
        self._epoch = 0
        self._best: float | None = None
        self._finished = False

    def set_model(self, model: keras.Model) -> None:
        super().set_model(model)
        if self._swap is not None:
            self._swap.set_model(model)

    def on_train_begin(self, logs: dict | None = None) -> None:
        state = settle(self.run_dir, self.fit_dir)
        # Where fit starts: what keras.callbacks.BackupAndRestore sets too; Keras never clears
        # it, so a fit with no backup clears it for `fit(initial_epoch=...)` to count
        # (tests/test_keras_internals.py fails if Keras stops reading it).
        self.model._initial_epoch = None
        self._offset = 0
        self._skip.assign(0)
        if state is None:
            return
        newest = latest(self.fit_dir)
        try:
            if self.model.optimizer is not None and not self.model.optimizer.built:
                self.model.optimizer.build(self.model.trainable_variables)
            self.model.load_weights(newest / WEIGHTS)
        except (OSError, ValueError, KeyError) as err:
            raise unusable(newest, err) from err
        self._finished = bool(state.get("finished"))
        self.model._initial_epoch = self.params["epochs"] if self._finished else int(state["epoch"])
        self._offset = int(state.get("steps_done", 0))
        self._skip.assign(self._offset)

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self._epoch = epoch
        if self._best is None and self.monitor:  # the best of the epochs before this fit's first
            scores = [
                float(r[self.monitor])
                for r in read_history(self.run_dir / "history.csv")
                if r.get(self.monitor) and int(r["epoch"]) < epoch
            ]
            have_model = best_path(self.run_dir).exists()
            self._best = max(scores) if scores and have_model else -math.inf

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        if not self.steps:
            return
        per_epoch = self.params["steps"]
        done = self._offset + batch + 1  # where in the stream of passes this step is
        if self._epoch * per_epoch + done >= self.params["epochs"] * per_epoch:
            self.model.stop_training = True  # a restored fit's last epoch ends on time
        elif (batch + 1) % self.steps == 0 and batch + 1 < per_epoch:  # its end backs up too
            self._write(self._epoch, done, finished=False, best=False)

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        logs = logs or {}
        if not math.isfinite(float(logs.get("loss", 0.0))):
            return  # diverged: keep the last finite state (the NaN guard says what happened)
        score = logs.get(self.monitor) if self.monitor else None
        improved = score is not None and float(score) > self._best
        if improved:
            self._best = float(score)
        n = epoch + 1
        done = self.model.stop_training or n >= self.params["epochs"]
        # A restored stream stays `_offset` steps ahead of the epochs: the backup says so.
        self._write(n, self._offset, finished=done, best=improved)

    def _write(self, epoch: int, steps: int, *, finished: bool, best: bool) -> None:
        """Writes one whole backup folder, then moves its best model into place."""
        with signals_held():
            self.fit_dir.mkdir(parents=True, exist_ok=True)
            tmp = self.fit_dir / f".partial-{os.getpid()}"
            shutil.rmtree(tmp, ignore_errors=True)
            tmp.mkdir()
            if best:
                self._save_best(tmp / BEST)
            self.model.save_weights(tmp / WEIGHTS)
            state = {"epoch": epoch, "steps_done": steps, "finished": finished}
            (tmp / STATE).write_text(json.dumps(state))
            target = self.fit_dir / _name(epoch, steps)
            shutil.rmtree(target, ignore_errors=True)
            os.replace(tmp, target)
            if best:
                os.replace(target / BEST, best_path(self.run_dir))
            for old in self.fit_dir.glob("epoch-*-step-*"):
                if old != target:
                    shutil.rmtree(old, ignore_errors=True)

    def _save_best(self, path: Path) -> None:
        if self._swap is None:
            self.model.save(path)
            return
        self._swap.on_test_begin()
        try:
            self.model.save(path)
        finally:
            self._swap.on_test_end()
