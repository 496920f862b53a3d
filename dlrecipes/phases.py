"""Training in phases: one `fit` per phase, each with its own trainable layers, optimizer and
learning rate, writing one history, one best checkpoint and one backup.

Fine-tuning trains a new head on a frozen base first, then unfreezes part of the base and goes on
at a lower learning rate. Changing which layers train needs a new compile, so each phase is its
own `fit`; epochs are numbered across phases (phase 2 starts where phase 1 ends), so the history,
the best checkpoint (best by validation over every phase) and TensorBoard read as one run.

A run killed at any point continues: the backup's epoch says which phase it was in, and that
phase's layers are set up and its optimizer compiled before the backup is restored, so the saved
optimizer state fits. Every phase after the first starts from the best model so far (the run's
`model.keras`), and its first backup is written before its first epoch, so a kill between two
phases resumes at the second phase's start.

Example:

>>> plan = [Phase("head", head_config, freeze_base), Phase("fine-tune", config, unfreeze_top)]
>>> phases.fit(model, plan, train, validation, steps=steps,
...            compile=training.compile_model, callbacks=callbacks)
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import keras
import tensorflow as tf

from dlrecipes.callbacks import NanGuard, RunCheckpoints, ctrl_c_after, epochs_done
from dlrecipes.config import RecipeConfig

COLUMN = "phase"  # history.csv column: the phase number (1, 2, ...) of each epoch


@dataclasses.dataclass(frozen=True)
class Phase:
    """A span of epochs trained with its own config and its own trainable layers.

    Args:
        name: what the phase does, for logs ("head", "fine-tune").
        config: the config the phase compiles with: its `epochs` are the phase's length, its
            optimizer, learning rate and schedule span the phase alone.
        setup: sets which layers of the model train; called before the phase compiles.
    """

    name: str
    config: RecipeConfig
    setup: Callable[[keras.Model], None]


def spans(phases: Sequence[Phase]) -> list[tuple[int, int]]:
    """Each phase's `[first, end)` epochs, counted across phases."""
    out, start = [], 0
    for phase in phases:
        out.append((start, start + phase.config.epochs))
        start += phase.config.epochs
    return out


class PhaseColumn(keras.callbacks.Callback):
    """Adds the phase number to every epoch's logs, for the callbacks after it (history.csv)."""

    def __init__(self) -> None:
        super().__init__()
        self.phase = 1

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        if logs is not None:
            logs[COLUMN] = self.phase


def fit(
    model: keras.Model,
    phases: Sequence[Phase],
    train: tf.data.Dataset,
    validation: tf.data.Dataset | None,
    *,
    steps: int,
    compile: Callable[[keras.Model, RecipeConfig, int], keras.Model],
    callbacks: Sequence[keras.callbacks.Callback] = (),
    verbose: int = 2,
    **fit_args: Any,
) -> keras.callbacks.History:
    """Fits `model` phase after phase, continuing from the backup among `callbacks` if any.

    Args:
        model: the model to train (built; compiled or not).
        phases: the phases, in order.
        train, validation: batched datasets.
        steps: training batches per epoch, for the learning-rate schedules.
        compile: `compile(model, config, steps)`, e.g. `training.compile_model`.
        callbacks: shared by every phase: a `RunCheckpoints` among them makes the run
            resumable and gives each later phase its starting weights (the best so far), and a
            `NanGuard` that fires ends the training.
        verbose: `fit`'s verbosity.
        fit_args: more arguments for every `fit` (`shuffle`, `steps_per_epoch`).

    Returns:
        One `History` of every epoch trained, over all phases.
    """
    backup = _find(callbacks, RunCheckpoints)
    guard = _find(callbacks, NanGuard)
    column = PhaseColumn()
    done = 0 if backup is None else epochs_done(Path(backup.backup_dir))
    merged = keras.callbacks.History()
    merged.epoch = []
    for number, (phase, (start, end)) in enumerate(zip(phases, spans(phases), strict=True), 1):
        if done >= end:
            continue  # finished before the run was killed
        with model.distribute_strategy.scope():
            phase.setup(model)
            compile(model, phase.config, steps)
            if backup is not None and number > 1 and done == start:
                _start_from_best(model, backup.run_dir / "model.keras")
                # This phase's first backup, written with this phase's optimizer.
                model.optimizer.build(model.trainable_variables)
                backup.set_model(model)
                backup.finishes = False
                backup.on_epoch_end(start - 1)
        if backup is not None:
            backup.finishes = number == len(phases)  # only the last phase ends the training
        trainable = sum(math.prod(w.shape) for w in model.trainable_weights)
        print(
            f"Phase {number}/{len(phases)} ({phase.name}): epochs {start + 1}-{end}, learning "
            f"rate {phase.config.learning_rate:g}, {trainable:,} of {model.count_params():,} "
            "weights train.",
            flush=True,
        )
        column.phase = number
        history = model.fit(
            train,
            validation_data=validation,
            initial_epoch=start,
            epochs=end,
            callbacks=[column, *map(_fresh_ema_swap, callbacks)],
            verbose=verbose,
            **fit_args,
        )
        merged.epoch += history.epoch
        for key, values in history.history.items():
            merged.history.setdefault(key, []).extend(values)
        done = end
        if guard is not None and guard.message:
            break
    if backup is not None and (backup.run_dir / "model.keras").exists():
        _drop_optimizer(backup.run_dir / "model.keras")
    return merged


def _find(callbacks: Sequence[keras.callbacks.Callback], kind: type) -> keras.callbacks.Callback:
    return next((c for c in callbacks if isinstance(c, kind)), None)


def _fresh_ema_swap(callback: keras.callbacks.Callback) -> keras.callbacks.Callback:
    """A new `SwapEMAWeights` for each phase. One that ended a phase believes the average is in
    the model and would swap in the new optimizer's average, still zeros, at the next epoch."""
    if isinstance(callback, keras.callbacks.SwapEMAWeights):
        return keras.callbacks.SwapEMAWeights(swap_on_epoch=callback.swap_on_epoch)
    return callback


def _start_from_best(model: keras.Model, path: Path) -> None:
    """Gives `model` the weights of the best model so far, if one was saved."""
    if not path.exists():
        return
    best = keras.saving.load_model(path, safe_mode=True, compile=False)
    model.set_weights(best.get_weights())


def _drop_optimizer(path: Path) -> None:
    """Rewrites a saved model without its optimizer state.

    A checkpoint keeps the optimizer of the phase it was written in, which does not fit the
    model's other phases (a reload would warn that it skips it); the backup is what resumes
    training, so the exported model needs none (for MiniLM it would triple the file).
    """
    model = keras.saving.load_model(path, safe_mode=True, compile=False)
    partial = path.with_name(f"{path.stem}.partial.keras")
    with ctrl_c_after():
        model.save(partial)
        os.replace(partial, path)  # whole or not at all
