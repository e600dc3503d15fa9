"""The one-warp augmentation (RandomAffine): the same geometry as Keras' RandomFlip,
RandomRotation and RandomZoom, the same distribution of transforms, and reproducible draws."""

import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
from scipy import stats

from mura_lib.callbacks import _ReseedEachEpoch
from mura_lib.models import RandomAffine, affine_matrices, affine_warp, augmentation, build_cnn, keras_augmentation

SIZE = 48
ROWS, COLUMNS = np.mgrid[0:SIZE, 0:SIZE].astype("float32")
# Source points of this central disc stay inside the image for every rotation and zoom <= 1.1.
CENTRE = (ROWS - (SIZE - 1) / 2) ** 2 + (COLUMNS - (SIZE - 1) / 2) ** 2 < (0.4 * SIZE) ** 2
CASES = [(20.0, 0.9, False), (-27.0, 1.08, True), (15.0, 1.0, True), (-12.0, 0.95, False)]


def dot(row: float, column: float) -> np.ndarray:
    """A bright blurred dot on a dark image, (1, SIZE, SIZE, 1)."""
    image = 255 * np.exp(-((ROWS - row) ** 2 + (COLUMNS - column) ** 2) / (2 * 1.5**2))
    return image[None, :, :, None].astype("float32")


def smooth_image(seed: int = 0) -> np.ndarray:
    """A smooth random image with a bright off-centre square, (1, SIZE, SIZE, 1)."""
    rng = np.random.default_rng(seed)
    image = np.zeros((SIZE, SIZE), "float32")
    for _ in range(6):
        fy, fx, phase = rng.uniform(0.5, 3, 2).tolist() + [rng.uniform(0, 2 * np.pi)]
        image += np.cos(2 * np.pi * (fy * ROWS + fx * COLUMNS) / SIZE + phase)
    image = 60 * (image - image.min()) / (image.max() - image.min())
    image[10:22, 26:38] += 180
    return image[None, :, :, None]


def keras_layers(image, angle, zoom, flip):
    """The old augmentation's geometry with a fixed transform: RandomFlip (a mirror, done here
    directly), RandomRotation and RandomZoom with their ranges collapsed to one value."""
    steps = keras.Sequential(
        [
            keras.layers.RandomRotation((angle / 360, angle / 360), fill_mode="constant"),
            keras.layers.RandomZoom((zoom - 1, zoom - 1), fill_mode="constant"),
        ]
    )
    mirrored = image[:, :, ::-1] if flip else image
    return keras.ops.convert_to_numpy(steps(mirrored, training=True))[0, ..., 0]


def warp(image, angle, zoom, flip):
    matrices = affine_matrices(np.array([angle], "float32"), np.array([zoom], "float32"), np.array([flip]), SIZE, SIZE)
    return keras.ops.convert_to_numpy(affine_warp(image, matrices))[0, ..., 0]


def centroid(image):
    return np.array([(image * ROWS).sum(), (image * COLUMNS).sum()]) / image.sum()


@pytest.mark.parametrize("angle,zoom,flip", CASES)
def test_a_dot_lands_where_keras_layers_put_it(angle, zoom, flip):
    image = dot(14.0, 30.0)
    expected, ours = keras_layers(image, angle, zoom, flip), warp(image, angle, zoom, flip)
    assert np.abs(centroid(ours) - centroid(expected)).max() < 1.0
    assert np.unravel_index(ours.argmax(), ours.shape) == np.unravel_index(expected.argmax(), expected.shape)
    # The check tells directions apart: the opposite rotation or a missing mirror moves the dot.
    assert np.abs(centroid(warp(image, -angle, zoom, flip)) - centroid(expected)).max() > 3.0
    assert np.abs(centroid(warp(image, angle, zoom, not flip)) - centroid(expected)).max() > 3.0


@pytest.mark.parametrize("angle,zoom,flip", CASES)
def test_image_matches_keras_layers_away_from_the_border(angle, zoom, flip):
    image = smooth_image()
    expected, ours = keras_layers(image, angle, zoom, flip), warp(image, angle, zoom, flip)
    difference = np.abs(ours - expected)[CENTRE].mean()
    # Keras resamples twice (rotation, then zoom), the warp once: they differ by a little blur.
    assert difference < 2.0, difference
    wrong = np.abs(warp(image, angle + 10, zoom, flip) - expected)[CENTRE].mean()
    assert wrong > 5 * max(difference, 1.0)


def test_outside_the_image_is_the_fill_value():
    image = np.full((1, SIZE, SIZE, 1), 200.0, "float32")
    rotated = warp(image, 30.0, 1.1, False)
    corners = rotated[[0, 0, -1, -1], [0, -1, 0, -1]]
    assert (corners == 0).all()
    assert np.allclose(rotated[CENTRE], 200.0)
    assert np.allclose(warp(image, 0.0, 1.0, False), image[0, ..., 0])


def test_draws_have_the_old_layers_distribution():
    layer = RandomAffine(30.0, 0.1, seed=7)
    draw = {name: keras.ops.convert_to_numpy(value) for name, value in layer.random_transform(4000).items()}
    assert stats.kstest(draw["angle"], "uniform", args=(-30, 60)).pvalue > 0.01
    assert draw["angle"].min() >= -30 and draw["angle"].max() <= 30
    assert stats.kstest(draw["zoom"], "uniform", args=(0.9, 0.2)).pvalue > 0.01
    assert draw["zoom"].min() >= 0.9 and draw["zoom"].max() <= 1.1
    assert stats.binomtest(int(draw["flip"].sum()), len(draw["flip"]), 0.5).pvalue > 0.01
    # Not independent of each other by accident of sharing one seed generator.
    assert abs(stats.spearmanr(draw["angle"], draw["zoom"]).statistic) < 0.1


def test_identity_at_inference_and_reproducible_in_training():
    images = np.concatenate([smooth_image(seed) for seed in range(4)])
    layer = RandomAffine(seed=3)
    assert np.array_equal(keras.ops.convert_to_numpy(layer(images, training=False)), images)
    first = keras.ops.convert_to_numpy(RandomAffine(seed=3)(images, training=True))
    again = keras.ops.convert_to_numpy(RandomAffine(seed=3)(images, training=True))
    other = keras.ops.convert_to_numpy(RandomAffine(seed=4)(images, training=True))
    np.testing.assert_array_equal(first, again)
    assert not np.allclose(first, other) and not np.allclose(first, images)
    # Each image of a batch gets its own transform.
    same = np.repeat(images[:1], 4, axis=0)
    warped = keras.ops.convert_to_numpy(RandomAffine(seed=3)(same, training=True))
    assert len({warped[i].tobytes() for i in range(4)}) == 4


def test_epoch_reseeding_reaches_the_warp():
    model = keras.Sequential([keras.Input((SIZE, SIZE, 1)), augmentation(0)])
    images = np.repeat(smooth_image(), 2, axis=0)
    reseed = _ReseedEachEpoch()
    reseed.set_model(model)

    def epoch_output(epoch):
        reseed.on_epoch_begin(epoch)
        return keras.ops.convert_to_numpy(model(images, training=True))

    np.testing.assert_array_equal(epoch_output(3), epoch_output(3))
    assert not np.allclose(epoch_output(3), epoch_output(4))


def test_both_augmentations_keep_shape_and_range_under_mixed_precision():
    images = np.concatenate([smooth_image(seed) for seed in range(2)])
    keras.config.set_dtype_policy("mixed_bfloat16")
    try:
        for builder in (augmentation, keras_augmentation):
            out = builder(0)(images, training=True)
            assert keras.backend.standardize_dtype(out.dtype) == "bfloat16"
            assert out.shape == images.shape
    finally:
        keras.config.set_dtype_policy("float32")


def test_a_model_with_the_warp_trains():
    model = build_cnn(16, depth=2, width=4, seed=0)

    def layers(block):
        for layer in block.layers:
            yield layer
            if hasattr(layer, "layers"):
                yield from layers(layer)

    assert any(isinstance(layer, RandomAffine) for layer in layers(model))
    model.compile(optimizer="adam", loss="binary_crossentropy")
    x = np.random.default_rng(0).uniform(0, 255, (8, 16, 16, 1)).astype("float32")
    history = model.fit(x, np.array([0, 1] * 4, "float32"), batch_size=8, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])


JAX_SCRIPT = """
import json, sys
import keras, numpy as np
from mura_lib.models import affine_matrices, affine_warp, build_cnn
image = np.load(sys.argv[1])
matrices = affine_matrices(np.array([-27.0, 20.0], "float32"), np.array([1.08, 0.9], "float32"),
                           np.array([True, False]), image.shape[1], image.shape[2])
warped = keras.ops.convert_to_numpy(affine_warp(np.concatenate([image, image]), matrices))
np.save(sys.argv[2], warped)
model = build_cnn(16, depth=2, width=4, seed=0)
model.compile(optimizer="adam", loss="binary_crossentropy")
x = np.random.default_rng(0).uniform(0, 255, (8, 16, 16, 1)).astype("float32")
loss = model.fit(x, np.array([0, 1] * 4, "float32"), batch_size=8, epochs=1, verbose=0).history["loss"][0]
print(json.dumps({"backend": keras.backend.backend(), "loss": float(loss)}))
"""


@pytest.mark.jax  # the JAX tier (make test-jax); skipped where JAX is absent, see tests/conftest.py
def test_the_warp_on_jax_matches_tensorflow(tmp_path):
    image = smooth_image()
    np.save(tmp_path / "image.npy", image)
    environment = os.environ | {"KERAS_BACKEND": "jax", "JAX_PLATFORMS": "cpu"}
    result = subprocess.run(
        [sys.executable, "-c", JAX_SCRIPT, str(tmp_path / "image.npy"), str(tmp_path / "warped.npy")],
        capture_output=True,
        text=True,
        env=environment,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["backend"] == "jax" and np.isfinite(summary["loss"])
    on_jax = np.load(tmp_path / "warped.npy")[..., 0]
    here = [warp(image, -27.0, 1.08, True), warp(image, 20.0, 0.9, False)]
    np.testing.assert_allclose(on_jax, np.stack(here), atol=1e-2)
