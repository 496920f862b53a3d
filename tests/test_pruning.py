"""dlrecipes.pruning: schedules against tfmot's formula, masks that hold through training (XLA on
and off, and under MirroredStrategy), strip, structured narrowing, and the refusals."""

from __future__ import annotations

import zipfile

import keras
import numpy as np
import pytest
import tensorflow as tf
from keras import layers

from dlrecipes import pruning
from dlrecipes.errors import ConfigError
from dlrecipes.models import vision
from dlrecipes.pruning import magnitude, structured
from tests.conftest import run_cli

STEPS = [-5, 0, 1, 2, 3, 7, 10, 11, 19, 20, 33, 50, 99, 100, 101, 137, 199, 200, 201, 250, 10_000]


def tfmot_polynomial(s_i, s_f, begin, end, power, frequency, step):
    """tfmot 0.8.1 PolynomialDecay.__call__ and _should_prune_in_step, op for op (the TF code of
    tensorflow_model_optimization/python/core/sparsity/keras/pruning_schedule.py)."""
    step = tf.constant(step)
    p = tf.math.minimum(
        1.0,
        tf.math.maximum(0.0, tf.math.divide(tf.dtypes.cast(step - begin, tf.float32), end - begin)),
    )
    sparsity = tf.math.add(tf.math.multiply(s_i - s_f, tf.math.pow(1 - p, power)), s_f)
    in_range = tf.math.logical_and(
        tf.math.greater_equal(step, begin),
        tf.math.logical_or(tf.math.less_equal(step, end), tf.math.less(end, 0)),
    )
    turn = tf.math.equal(tf.math.floormod(tf.math.subtract(step, begin), frequency), 0)
    return bool(tf.math.logical_and(in_range, turn)), float(sparsity)


@pytest.mark.parametrize(
    "args",
    [
        (0.0, 0.8, 0, 200, 3, 1),
        (0.1, 0.9, 10, 137, 3, 7),
        (0.5, 0.5, 0, 100, 3, 100),
        (0.2, 0.95, 20, 199, 2, 20),
        (0.0, 0.6, 50, 51, 1, 1),
    ],
)
def test_polynomial_decay_gives_tfmots_values_at_every_step(args):
    s_i, s_f, begin, end, power, frequency = args
    schedule = pruning.PolynomialDecay(s_i, s_f, begin, end, power, frequency)
    for step in STEPS + list(range(begin - 2, end + 3)):
        prune, sparsity = schedule(step)
        expected_prune, expected = tfmot_polynomial(s_i, s_f, begin, end, power, frequency, step)
        assert prune == expected_prune, step
        assert sparsity == pytest.approx(expected, abs=1e-7), step
        # and the paper's formula, in float64
        p = min(1.0, max(0.0, (step - begin) / (end - begin)))
        assert sparsity == pytest.approx(s_f + (s_i - s_f) * (1 - p) ** power, abs=1e-6)


def test_polynomial_decay_edges():
    schedule = pruning.PolynomialDecay(0.0, 0.8, begin_step=10, end_step=10, frequency=5)
    # tfmot divides 0 by 0 at begin == end; before it the initial, from it the final sparsity.
    assert schedule(9) == (False, 0.0)
    assert schedule(10)[0] and schedule(10)[1] == pytest.approx(0.8)
    assert schedule(15) == (False, pytest.approx(0.8))  # after end_step: no more updates


def test_constant_sparsity_prunes_every_frequency_steps_forever():
    schedule = pruning.ConstantSparsity(0.7, begin_step=3, frequency=4)
    pruned = [step for step in range(40) if schedule(step)[0]]
    assert pruned == list(range(3, 40, 4))
    assert all(schedule(s)[1] == pytest.approx(0.7) for s in STEPS)
    bounded = pruning.ConstantSparsity(0.7, begin_step=3, end_step=11, frequency=4)
    assert [s for s in range(40) if bounded(s)[0]] == [3, 7, 11]


@pytest.mark.parametrize(
    "make, words",
    [
        (lambda: pruning.PolynomialDecay(0.0, 1.0), "final_sparsity must be in [0, 1)"),
        (lambda: pruning.PolynomialDecay(-0.1, 0.5), "initial_sparsity must be in [0, 1)"),
        (lambda: pruning.ConstantSparsity(1.5), "target_sparsity must be in [0, 1)"),
        (lambda: pruning.PolynomialDecay(0, 0.5, 100, 50), "end_step (50) is before begin_step"),
        (lambda: pruning.PolynomialDecay(0, 0.5, 0, -1), "needs a constant sparsity"),
        (lambda: pruning.ConstantSparsity(0.5, frequency=0), "frequency must be a positive"),
        (lambda: pruning.ConstantSparsity(0.5, begin_step=-1), "begin_step must be >= 0"),
    ],
)
def test_bad_schedule_arguments_are_refused(make, words):
    with pytest.raises(ConfigError, match=None) as err:
        make()
    assert words in str(err.value) and "\n" not in str(err.value)


def test_magnitude_mask_keeps_exactly_the_largest():
    weights = np.random.default_rng(0).normal(size=(40, 25)).astype("float32")
    mask = magnitude.magnitude_mask(weights, 0.8)
    assert mask.sum() == 200  # round(1000 * 0.2)
    assert np.abs(weights[mask == 1]).min() >= np.abs(weights[mask == 0]).max()
    assert magnitude.magnitude_mask(weights, 0.9999).sum() == 1  # at least one kept, as tfmot


def image_model() -> keras.Model:
    inputs = keras.Input((12, 12, 3))
    x = layers.Conv2D(16, 3, padding="same", activation="relu", name="conv")(inputs)
    x = layers.DepthwiseConv2D(3, depth_multiplier=8, padding="same", name="depthwise")(x)
    x = layers.SeparableConv2D(16, 3, padding="same", name="separable")(x)
    x = layers.GlobalAveragePooling2D(name="pool")(x)
    x = layers.Dense(32, activation="relu", name="dense")(x)
    return keras.Model(inputs, layers.Dense(5, activation="softmax", name="out")(x))


def text_model() -> keras.Model:
    inputs = keras.Input((10,), dtype="int32")
    x = layers.Embedding(50, 8, name="embedding")(inputs)
    x = layers.Conv1D(16, 3, padding="same", name="conv")(x)
    x = layers.Bidirectional(layers.LSTM(8, return_sequences=True), name="bilstm")(x)
    x = layers.GRU(8, name="gru")(x)
    return keras.Model(inputs, layers.Dense(5, activation="softmax", name="out")(x))


def data_for(model: keras.Model, n: int = 64):
    rng = np.random.default_rng(1)
    shape = model.inputs[0].shape[1:]
    if model.inputs[0].dtype == "int32":
        x = rng.integers(0, 50, size=(n, *shape)).astype("int32")
    else:
        x = rng.normal(size=(n, *shape)).astype("float32")
    return x, rng.integers(0, 5, size=n)


def prune_and_train(model, jit: bool, sparsity: float = 0.8):
    x, y = data_for(model)
    model.compile(keras.optimizers.Adam(0.01), "sparse_categorical_crossentropy", jit_compile=jit)
    schedule = pruning.PolynomialDecay(0.0, sparsity, begin_step=0, end_step=6, frequency=2)
    callback = pruning.prune_low_magnitude(model, schedule)
    model.fit(x, y, batch_size=16, epochs=2, callbacks=[callback], verbose=0)  # 8 steps
    return callback, x, y


# XLA on the image model only: compiling the recurrent layers takes long on a shared CPU.
@pytest.mark.parametrize(
    "build, jit", [(image_model, False), (image_model, True), (text_model, False)]
)
def test_pruned_weights_reach_the_target_and_stay_zero(build, jit):
    model = build()
    callback, x, y = prune_and_train(model, jit)
    names = {t.name for t in callback.targets}
    assert any("recurrent_kernel" in n for n in names) or build is image_model
    assert not any("bias" in n or "gamma" in n for n in names)  # biases and norms left alone
    zeros = {}
    for row in pruning.sparsity_report(model):
        assert row["sparsity"] == pytest.approx(0.8, abs=0.5 / row["params"] + 1e-9), row
        if row["params"] >= 100:
            assert abs(row["sparsity"] - 0.8) <= 0.005, row
        zeros[row["weight"]] = row
    before = {t.name: keras.ops.convert_to_numpy(t.variable) == 0 for t in callback.targets}
    model.fit(x, y, batch_size=16, epochs=2, callbacks=[callback], verbose=0)  # past end_step
    for target in callback.targets:
        after = keras.ops.convert_to_numpy(target.variable)
        assert np.all(after[before[target.name]] == 0), target.name
        assert np.all(after[~before[target.name]] != 0), target.name  # the kept ones trained on


def test_per_layer_choice_and_frozen_layers():
    model = text_model()
    model.get_layer("embedding").trainable = False
    schedule = pruning.ConstantSparsity(0.5, frequency=1)
    chosen = {t.layer for t in pruning.select(model, schedule)}
    assert "embedding" not in chosen and "out" in chosen  # frozen layers only when named
    targets = pruning.select(model, schedule, {"embedding": None, "out": 0.9})
    assert {t.layer: t.schedule.final_sparsity for t in targets} == {"embedding": 0.5, "out": 0.9}


@pytest.mark.parametrize(
    "name, words",
    [
        ("nope", "No layer named 'nope'"),
        ("pool", "'pool' (GlobalAveragePooling2D) has no weights magnitude pruning can zero"),
    ],
)
def test_unprunable_layer_named_is_refused(name, words):
    model = image_model()
    with pytest.raises(ConfigError) as err:
        pruning.prune_low_magnitude(model, pruning.ConstantSparsity(0.5), {name: 0.5})
    assert words in str(err.value) and "prunable layers: conv, depthwise" in str(err.value)


def test_strip_gives_a_plain_small_model_with_the_same_predictions(tmp_path):
    model = image_model()
    prune_and_train(model, jit=False)
    x, _ = data_for(model)
    expected = model.predict(x, verbose=0)
    model.save(tmp_path / "with_optimizer.keras")
    plain = pruning.strip(model)
    assert not any(isinstance(v.constraint, pruning.MaskConstraint) for v in model.variables)
    assert getattr(plain, "optimizer", None) is None
    plain.save(tmp_path / "stripped.keras")
    reloaded = keras.saving.load_model(tmp_path / "stripped.keras", safe_mode=True)
    np.testing.assert_allclose(reloaded.predict(x, verbose=0), expected, atol=1e-6)
    with zipfile.ZipFile(tmp_path / "stripped.keras") as z:
        assert "optimizer" not in z.read("config.json").decode()
    stripped_size = (tmp_path / "stripped.keras").stat().st_size
    assert stripped_size < (tmp_path / "with_optimizer.keras").stat().st_size
    assert pruning.sparsity_report(reloaded)[0]["sparsity"] == pytest.approx(0.8, abs=0.01)


MIRRORED = """
from dlrecipes import runtime
runtime.split_cpu(2)
import keras, numpy as np
from dlrecipes import pruning
strategy = runtime.strategy("mirrored")
with strategy.scope():
    model = keras.Sequential([keras.Input((20,)), keras.layers.Dense(64, activation="relu"),
                              keras.layers.Dense(3, activation="softmax")])
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss="sparse_categorical_crossentropy")
    callback = pruning.prune_low_magnitude(
        model, pruning.PolynomialDecay(0.0, 0.75, begin_step=0, end_step=4, frequency=2))
x = np.random.default_rng(0).normal(size=(128, 20)).astype("float32")
y = (x[:, 0] > 0).astype("int64")
model.fit(x, y, batch_size=32, epochs=3, callbacks=[callback], verbose=0)
mask = next(iter(callback.masks.values()))
print("mask", type(mask.value).__name__)
for row in pruning.sparsity_report(model):
    print("sparsity", row["weight"], round(row["sparsity"], 4))
"""


@pytest.mark.slow
def test_pruning_under_mirrored_strategy_over_two_logical_cpus():
    out = run_cli("-c", MIRRORED).stdout
    assert "mask MirroredVariable" in out
    assert "dense/kernel 0.75" in out and "dense_1/kernel 0.75" in out


def slim_convnet(head: str) -> keras.Model:
    return vision.convnet((12, 12, 1), 4, widths=(8, 16), convs_per_stage=1, head=head, dropout=0)


@pytest.mark.parametrize("head", ["flatten", "avg"])
def test_structured_narrowing_shrinks_shapes_and_keeps_what_it_keeps(head):
    model = slim_convnet(head)
    x = np.random.default_rng(0).integers(0, 255, size=(8, 12, 12, 1)).astype("uint8")
    # With nothing cut: the dense model's predictions.
    untouched = pruning.narrow(model, 0.0)
    np.testing.assert_allclose(untouched.predict(x, verbose=0), model.predict(x, verbose=0), 1e-5)
    # Channels whose batch norm outputs zero (gamma = beta = 0) contribute nothing: cutting
    # exactly those keeps every prediction, so every cut weight was the right one.
    for bn in [layer for layer in model.layers if isinstance(layer, layers.BatchNormalization)]:
        gamma, beta, mean, var = bn.get_weights()
        dead = np.arange(len(gamma)) % 2 == 1
        gamma[dead] = beta[dead] = 0
        bn.set_weights([gamma, beta, mean, var])
    narrow = pruning.narrow(model, 0.5)
    np.testing.assert_allclose(narrow.predict(x, verbose=0), model.predict(x, verbose=0), 1e-5)
    shapes = [[tuple(w.shape) for w in layer.weights] for layer in narrow.layers if layer.weights]
    conv, bn, conv_1, bn_1, predictions = shapes
    assert conv == [(3, 3, 1, 4)] and bn == [(4,)] * 4
    assert conv_1 == [(3, 3, 4, 8)] and bn_1 == [(8,)] * 4
    assert predictions[0] == ((6 * 6 * 8, 4) if head == "flatten" else (8, 4))
    assert narrow.count_params() < model.count_params()
    assert pruning.flops(narrow)["flops"] < pruning.flops(model)["flops"] / 3


def test_structured_leaves_residual_widths_and_refuses_what_it_cannot_cut():
    model = vision.resnet((12, 12, 1), 4, widths=(8, 16), blocks_per_stage=1)
    scores = pruning.channel_scores(model)
    x = np.random.default_rng(0).integers(0, 255, size=(4, 12, 12, 1)).astype("uint8")
    narrow = pruning.narrow(model, 0.5)  # only the first conv of each block can lose channels
    assert narrow.predict(x, verbose=0).shape == (4, 4)
    assert len(scores) == 2
    for name in scores:
        assert narrow.get_layer(name).filters == model.get_layer(name).filters // 2
    with pytest.raises(ConfigError, match="'predictions' cannot lose channels"):
        structured.plan(model, {"predictions": 0.5})
    with pytest.raises(ConfigError, match=r"in \[0, 1\)"):
        structured.plan(model, 1.0)


def test_flops_of_a_known_model():
    inputs = keras.Input((8, 8, 3))
    x = layers.Conv2D(4, 3, padding="same")(inputs)  # 64 positions * 27 * 4 MACs
    x = layers.Flatten()(x)
    model = keras.Model(inputs, layers.Dense(2)(x))  # 256 * 2 MACs
    assert pruning.flops(model)["flops"] == 2 * (64 * 27 * 4 + 256 * 2)
    kernel = model.layers[1].kernel
    kernel.assign(np.where(np.arange(108).reshape(3, 3, 3, 4) % 2, 0, 1).astype("float32"))
    assert pruning.flops(model)["sparse_flops"] == 2 * (64 * 27 * 4 / 2 + 256 * 2)


def test_flops_of_recurrent_layers_count_every_step_and_direction():
    macs = (
        10 * 3 * 8 * 16  # conv: 10 steps, kernel 3 x 8 -> 16
        + 2 * 10 * (16 * 32 + 8 * 32)  # bilstm: both directions, input and recurrent kernels
        + 10 * (16 * 24 + 8 * 24)  # gru on the 16 bilstm outputs
        + 8 * 5  # classifier
    )
    assert pruning.flops(text_model())["flops"] == 2 * macs


def test_resize_narrows_every_width_but_the_output_and_keeps_fixed_layers():
    model = text_model()
    model.get_layer("embedding").trainable = False
    assert pruning.layer_widths(model) == {"conv": 16, "bilstm": 8, "gru": 8}
    small = pruning.resize(model, pruning.scaled_widths(model, 0.5))
    assert small.get_layer("bilstm").forward_layer.units == 4
    assert small.get_layer("gru").units == 4 and small.get_layer("out").units == 5
    np.testing.assert_array_equal(  # fixed vectors are copied; the rest starts afresh
        small.get_layer("embedding").get_weights()[0], model.get_layer("embedding").get_weights()[0]
    )
    model.get_layer("embedding").trainable = True
    assert pruning.layer_widths(model)["embedding"] == 8
    thinner = pruning.resize(model, {"embedding": 4, "bilstm": 4})  # inputs of the next shrink
    x, _ = data_for(model)
    assert thinner.predict(x, verbose=0).shape == (len(x), 5)


def test_comparison_table_rounds_each_column_alike():
    """Figures of a `pruning train --tiny` run: 1.046 beside 0.4 read 1.0460 and 0.4000."""
    from dlrecipes.pruning import compare

    rows = [
        {
            "model": "dense",
            "speedup_b1": 1.0,
            "gzip_kb": 248.8,
            "throughput": 1583.2,
            "params": 67674,
        },
        {"model": "structured-50", "speedup_b1": 1.046, "gzip_kb": 122.4, "throughput": 3209.7},
        {"model": "small-dense", "speedup_b1": 0.4, "gzip_kb": 54.34, "throughput": 2321.0},
    ]
    lines = compare.table(rows, ["model", "speedup_b1", "gzip_kb", "throughput", "params"])
    assert lines.splitlines()[2:] == [
        "| dense | 1.0000 | 248.80 | 1,583 | 67,674 |",
        "| structured-50 | 1.0460 | 122.40 | 3,210 |  |",
        "| small-dense | 0.4000 | 54.34 | 2,321 |  |",
    ]
    assert compare.decimals([0.0, 0.02375, 0.08155]) == 4  # at most 4 places
    assert compare.decimals([]) == 3
