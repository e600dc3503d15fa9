import keras
import numpy as np
import pytest

from mura_lib.explain import grad_cam, last_spatial_layer
from mura_lib.models import build_cnn, build_multiview, build_pretrained, resolve_weights


def test_cnn_shapes_and_parameters():
    model = build_cnn(32, depth=3, width=4, seed=0)
    assert model.input_shape == (None, 32, 32, 1) and model.output_shape == (None, 1)
    out = model.predict(np.zeros((2, 32, 32, 1), "float32"), verbose=0)
    assert ((out > 0) & (out < 1)).all()
    wider = build_cnn(32, depth=3, width=8, seed=0)
    assert wider.count_params() > model.count_params()
    with pytest.raises(ValueError, match="too small"):
        build_cnn(8, depth=4)
    with pytest.raises(ValueError, match="dropout"):
        build_cnn(32, dropout=1.0)


def test_pretrained_backbone_is_frozen_or_not_and_inner_layers_reachable():
    frozen = build_pretrained("vgg16", 32, weights=None, fine_tune=False, augment=False)
    tuned = build_pretrained("vgg16", 32, weights=None, fine_tune=True, augment=False)
    head = frozen.get_layer("abnormal").count_params()
    assert sum(np.prod(w.shape) for w in frozen.trainable_weights) == head
    assert sum(np.prod(w.shape) for w in tuned.trainable_weights) > 10 * head
    assert last_spatial_layer(frozen) == "block5_conv3"
    with pytest.raises(ValueError, match="Unknown backbone"):
        build_pretrained("alexnet", 32, weights=None)


def test_weights_must_exist():
    assert resolve_weights(None) is None and resolve_weights("imagenet") == "imagenet"
    with pytest.raises(ValueError, match="does not exist"):
        resolve_weights("/nonexistent/weights.h5")


def test_multiview_model_ignores_padded_views():
    image_model = build_cnn(16, depth=2, width=4, augment=False, dropout=0.0, seed=0)
    model = build_multiview(image_model, max_views=3)
    views = np.random.default_rng(0).uniform(0, 255, (1, 3, 16, 16, 1)).astype("float32")
    mask = np.array([[1, 1, 0]], "float32")
    changed = views.copy()
    changed[0, 2] = 255.0  # a padded view's content must not matter
    a = model.predict([views, mask], verbose=0)
    b = model.predict([changed, mask], verbose=0)
    np.testing.assert_allclose(a, b, rtol=1e-6)
    c = model.predict([changed, np.ones((1, 3), "float32")], verbose=0)
    assert not np.allclose(a, c)


def test_grad_cam_points_at_what_drives_the_score():
    inputs = keras.Input((16, 16, 1))
    features = keras.layers.Conv2D(1, 1, kernel_initializer="ones", bias_initializer="zeros", name="conv")(inputs)
    pooled = keras.layers.GlobalAveragePooling2D()(features)
    outputs = keras.layers.Dense(1, activation="sigmoid", kernel_initializer="ones")(pooled)
    model = keras.Model(inputs, outputs)
    image = np.zeros((1, 16, 16), "float32")
    image[0, 2:6, 2:6] = 1.0  # a bright patch top left
    heatmap = grad_cam(model, image, layer_name="conv")
    assert heatmap.shape == (1, 16, 16)
    assert heatmap.max() == pytest.approx(1.0) and heatmap.min() >= 0
    row, column = np.unravel_index(heatmap[0].argmax(), (16, 16))
    assert row < 8 and column < 8
    assert heatmap[0, 12:, 12:].max() < 0.1


def test_every_image_model_is_one_entry_that_keras_can_build():
    """mura_lib.config.IMAGE_MODELS is the one registry: each backbone's class and preprocessing
    exist in keras.applications, and the plan's display names and the builder's table derive from it."""
    import keras

    from mura_lib.config import IMAGE_MODELS
    from mura_lib.models import BACKBONES
    from mura_thesis.plan import BACKBONE_NAMES

    for name, model in IMAGE_MODELS.items():
        assert BACKBONE_NAMES[name] == model.display_name
        if model.constructor is None:
            assert name == "cnn" and name not in BACKBONES
            continue
        assert callable(getattr(keras.applications, model.constructor)), name
        assert callable(getattr(keras.applications, model.preprocess_module).preprocess_input), name
        assert BACKBONES[name] == (model.constructor, model.preprocess_module, model.smallest_input)
