"""Optimizers and learning-rate schedules by name, as config fields choose them."""

from __future__ import annotations

import keras

from dlrecipes.config import RecipeConfig


def schedule(
    config: RecipeConfig, steps_per_epoch: int
) -> float | keras.optimizers.schedules.LearningRateSchedule:
    """The learning rate: constant, cosine decay after a linear warm-up, or step decay.

    `step` multiplies the rate by 0.1 at 50% and again at 75% of training.
    """
    total = max(1, config.epochs * steps_per_epoch)
    if config.schedule == "constant":
        return config.learning_rate
    if config.schedule == "cosine":
        warmup = min(int(config.warmup_epochs * steps_per_epoch), total - 1)
        return keras.optimizers.schedules.CosineDecay(
            initial_learning_rate=0.0 if warmup else config.learning_rate,
            decay_steps=total - warmup,
            warmup_target=config.learning_rate if warmup else None,
            warmup_steps=warmup,
        )
    if config.schedule == "step":
        lr = config.learning_rate
        return keras.optimizers.schedules.PiecewiseConstantDecay(
            boundaries=[total // 2, (3 * total) // 4], values=[lr, lr * 0.1, lr * 0.01]
        )
    raise ValueError(f"Unknown schedule {config.schedule!r}.")


def optimizer(config: RecipeConfig, steps_per_epoch: int) -> keras.optimizers.Optimizer:
    """The optimizer named by `config.optimizer`, driven by `schedule(config, ...)`.

    With `config.ema` > 0 it also keeps an exponential moving average of the weights, which
    `callbacks.standard` swaps in for validation and checkpoints.
    """
    lr = schedule(config, steps_per_epoch)
    name = config.optimizer
    ema = {"use_ema": True, "ema_momentum": config.ema} if config.ema else {}
    if name == "sgd":
        return keras.optimizers.SGD(lr, **ema)
    if name == "momentum":
        return keras.optimizers.SGD(lr, momentum=config.momentum, nesterov=True, **ema)
    if name == "adagrad":
        return keras.optimizers.Adagrad(lr, **ema)
    if name == "rmsprop":
        return keras.optimizers.RMSprop(lr, momentum=config.momentum, **ema)
    if name == "adam":
        return keras.optimizers.Adam(lr, **ema)
    if name == "adamw":
        return keras.optimizers.AdamW(lr, weight_decay=config.weight_decay, **ema)
    raise ValueError(f"Unknown optimizer {name!r}.")
