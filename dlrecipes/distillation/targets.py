"""Soft targets at a temperature, and the loss and accuracy a student trains with on them.

Every model of this project ends in a softmax, so a teacher gives probabilities, not logits.
That loses nothing: `log(softmax(z)) = z - logsumexp(z)`, the logits up to a constant per text,
and a constant added to every logit cancels in a softmax. So the soft targets at temperature `T`,
`softmax(z / T)`, are `softmax(log(p) / T)`, computed from the probabilities alone.

A student learns from packed targets, one row per text: the one-hot label, then the teacher's
probabilities (`pack`). The label part is the true label of a labelled text, and the teacher's most
likely class for an augmented copy, which has no label of its own.

Why not `keras.distillation` (Keras 3.15): its `Distiller` runs the teacher on every training step
and holds it as a sub-model, so each epoch would pay the teacher again (a fine-tuned MiniLM over
54k texts takes minutes on a CPU) and every checkpoint would carry it; here the teacher's outputs
are computed once and cached. Its `LogitsDistillation` takes logits and returns a batch mean, and
with its default `loss="kl_divergence"` (a string that resolves to a function, not a
`KLDivergence` instance) it skips the softmax at the temperature and the `T**2` factor: it returned
0.0 where the divergence is 0.34. The loss below is those three lines, per example.
"""

from __future__ import annotations

import keras
import numpy as np
from keras import ops

# Probabilities are clipped to this before the log, as Keras' own cross-entropy clips them.
EPSILON = 1e-7


def soft_targets(probabilities, temperature: float):
    """The distribution `softmax(logits / temperature)`, from `softmax(logits)`.

    Args:
        probabilities: class probabilities, rows summing to 1 (a tensor or array).
        temperature: above 1 softens the distribution, below 1 sharpens it; 1 returns it.

    Returns:
        A tensor of the same shape.

    Example:

    >>> soft_targets(np.array([[0.9, 0.1]]), 2.0)   # softmax(log([0.9, 0.1]) / 2)
    [[0.75, 0.25]]
    """
    logits = ops.log(ops.clip(probabilities, EPSILON, 1.0))
    return ops.softmax(logits / temperature, axis=-1)


def pack(labels: np.ndarray, probabilities: np.ndarray) -> np.ndarray:
    """Student targets: the one-hot `labels` next to the teacher's `probabilities`.

    Args:
        labels: `(n,)` integer classes.
        probabilities: `(n, classes)` teacher probabilities (or, for texts scored against their
            labels alone, the one-hot labels again).

    Returns:
        A float32 array `(n, 2 * classes)`.
    """
    probabilities = np.asarray(probabilities, np.float32)
    one_hot = np.eye(probabilities.shape[1], dtype=np.float32)[np.asarray(labels)]
    return np.concatenate([one_hot, probabilities], axis=1)


@keras.saving.register_keras_serializable(package="dlrecipes")
class SoftTargetLoss(keras.losses.Loss):
    """`w * CE(label, p) + (1 - w) * T**2 * KL(soft teacher || soft student)`, per example.

    The student at temperature `T` is `soft_targets(p, T)` like the teacher, so its logits are
    divided by `T` too; `T**2` keeps the gradients' scale as `T` changes (Hinton et al. 2015).
    At `T = 1` and `w = 0` it is the cross-entropy with the teacher's probabilities, less their
    entropy.

    Args:
        temperature: the softening temperature `T`, above 0.
        label_weight: `w` in [0, 1], the weight of the cross-entropy with the label part.
    """

    def __init__(
        self,
        temperature: float = 1.0,
        label_weight: float = 0.0,
        name: str = "soft_target_loss",
        **kwargs,
    ) -> None:
        super().__init__(name=name, **kwargs)
        self.temperature = float(temperature)
        self.label_weight = float(label_weight)

    def call(self, y_true, y_pred):
        classes = y_pred.shape[-1]
        labels, teacher = y_true[:, :classes], y_true[:, classes:]
        t = self.temperature
        distill = t**2 * keras.losses.kl_divergence(
            soft_targets(teacher, t), soft_targets(y_pred, t)
        )
        if not self.label_weight:
            return distill
        hard = keras.losses.categorical_crossentropy(labels, y_pred)
        return self.label_weight * hard + (1.0 - self.label_weight) * distill

    def get_config(self) -> dict:
        return {
            **super().get_config(),
            "temperature": self.temperature,
            "label_weight": self.label_weight,
        }


@keras.saving.register_keras_serializable(package="dlrecipes")
class LabelAccuracy(keras.metrics.CategoricalAccuracy):
    """Accuracy against the label part of packed targets (`pack`), named `accuracy`.

    On validation texts that is the true label; on the transfer set, the true label of a training
    text and the teacher's most likely class for an augmented copy.
    """

    def __init__(self, name: str = "accuracy", **kwargs) -> None:
        super().__init__(name=name, **kwargs)

    def update_state(self, y_true, y_pred, sample_weight=None):
        return super().update_state(y_true[:, : y_pred.shape[-1]], y_pred, sample_weight)
