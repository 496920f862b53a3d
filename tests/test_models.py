"""Vision model builders: shapes, raw uint8 input, the knobs they expose."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from dlrecipes.models import vision


def _layers(model: keras.Model, kind: type) -> list[keras.layers.Layer]:
    return [layer for layer in model.layers if isinstance(layer, kind)]


@pytest.mark.parametrize("arch", ["convnet", "resnet"])
def test_models_take_raw_uint8_images_and_output_probabilities(arch):
    model = vision.ARCHITECTURES[arch]((28, 28, 1), 10, widths=(8, 16))
    assert model.input.dtype == "uint8"
    assert isinstance(model.layers[1], keras.layers.Rescaling)
    images = np.random.default_rng(0).integers(0, 256, (3, 28, 28, 1), dtype=np.uint8)
    probs = model.predict(images, verbose=0)
    assert probs.shape == (3, 10) and probs.dtype == np.float32
    np.testing.assert_allclose(probs.sum(-1), 1.0, rtol=1e-5)


def test_convnet_depth_width_and_batch_norm():
    model = vision.convnet((32, 32, 3), 5, widths=(8, 16, 32), convs_per_stage=2)
    convs = _layers(model, keras.layers.Conv2D)
    assert [c.filters for c in convs] == [8, 8, 16, 16, 32, 32]
    assert len(_layers(model, keras.layers.BatchNormalization)) == 6
    plain = vision.convnet((32, 32, 3), 5, widths=(8, 16), batch_norm=False, dropout=0.0)
    assert not _layers(plain, keras.layers.BatchNormalization)
    assert not _layers(plain, keras.layers.Dropout)
    assert all(c.use_bias for c in _layers(plain, keras.layers.Conv2D))
    assert _layers(plain, keras.layers.GlobalAveragePooling2D)
    flat = vision.convnet((32, 32, 3), 5, widths=(8, 16), head="flatten")
    assert flat.get_layer("predictions").input.shape[-1] == 16 * 16 * 16
    with pytest.raises(ValueError, match="head"):
        vision.convnet((32, 32, 3), 5, head="max")


def test_resnet_has_residual_blocks_that_downsample():
    model = vision.resnet((32, 32, 3), 10, widths=(8, 16), blocks_per_stage=2)
    assert len(_layers(model, keras.layers.Add)) == 4
    assert model.get_layer("predictions").input.shape[-1] == 16
    # the strided block halves 32 -> 16 before global pooling
    pool = _layers(model, keras.layers.GlobalAveragePooling2D)[0]
    assert tuple(pool.input.shape[1:3]) == (16, 16)


def test_weight_penalties_and_activation():
    model = vision.convnet(
        (28, 28, 1), 10, widths=(4,), convs_per_stage=1, l1=1e-4, l2=1e-3, activation="gelu"
    )
    model(np.zeros((1, 28, 28, 1), np.uint8))
    assert len(model.losses) == 2  # one conv kernel + the classifier kernel
    acts = _layers(model, keras.layers.Activation)
    assert acts and all(a.activation.__name__ == "gelu" for a in acts)
    assert vision.regularizer(0.0, 0.0) is None


def test_output_stays_float32_under_mixed_precision():
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        model = vision.convnet((28, 28, 1), 10, widths=(4,))
        assert model.layers[2].compute_dtype == "float16"
        assert model.output.dtype == "float32"
    finally:
        keras.mixed_precision.set_global_policy("float32")
