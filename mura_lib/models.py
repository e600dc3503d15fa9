"""Keras 3 models: the thesis' ab-initio CNN, pretrained backbones with a new head, and a
multi-view study model.

Only the backend-neutral Keras API is used (``keras.layers``, ``keras.ops``), so the same
models train on TensorFlow, JAX or PyTorch.  Every model takes ``uint8``-range grayscale
images of shape (size, size, 1) and returns one abnormality probability (the ``abnormality``
task) or, for the ``study_type`` task, a probability for each of the seven study types;
scaling, augmentation and each backbone's own preprocessing happen inside the model, on the
device.  The two tasks' models differ only in their head (the last layer), so a backbone
trained on one task initialises the other (:func:`transfer_backbone_weights`).
"""

from __future__ import annotations

import math
import os
import re
from pathlib import Path

import keras
from keras import layers

from .config import IMAGE_MODELS, MODEL_NAMES, TASK_NAMES
from .dataset import STUDY_TYPES

# The keras.applications backbones of mura_lib.config.IMAGE_MODELS:
# name -> (constructor, preprocess_input module, smallest input size).
BACKBONES = {
    name: (model.constructor, model.preprocess_module, model.smallest_input)
    for name, model in IMAGE_MODELS.items()
    if model.constructor is not None
}
# The tasks a model can be trained for, with the name of the head layer that answers each one.
TASKS = {"abnormality": "abnormal", "study_type": "study_type"}
if tuple(TASKS) != TASK_NAMES:
    raise ImportError("mura_lib.config's TASK_NAMES must name exactly the tasks built here")


def head(task: str, *, kernel_regularizer=None) -> layers.Dense:
    """The last layer of a model for ``task``: one sigmoid unit (abnormality) or a softmax over
    :data:`~mura_lib.dataset.STUDY_TYPES` (study type)."""
    if task not in TASKS:
        raise ValueError(f"task must be one of {tuple(TASKS)}, got {task!r}")
    units, activation = (1, "sigmoid") if task == "abnormality" else (len(STUDY_TYPES), "softmax")
    return layers.Dense(
        units, activation=activation, dtype="float32", kernel_regularizer=kernel_regularizer, name=TASKS[task]
    )


def affine_matrices(angle_degrees, zoom, flip, height: int, width: int):
    """Per-image affine transforms, (batch, 6) rows ``[a0, a1, a2, b0, b1, b2]`` that map each
    output pixel (x, y) to the input point (a0 x + a1 y + a2, b0 x + b1 y + b2) it samples, as
    ``keras.ops.image.affine_transform`` reads them.

    The transform is Keras' ``RandomFlip("horizontal")``, then ``RandomRotation`` by
    ``angle_degrees`` (counter-clockwise for positive angles), then ``RandomZoom`` by ``zoom``
    (below 1 enlarges), all about the image centre, composed into one: ``flip`` (bool or 0/1,
    per image) mirrors left and right.
    """
    ops = keras.ops
    angle = ops.cast(angle_degrees, "float32") * (math.pi / 180.0)
    zoom = ops.cast(zoom, "float32")
    sign = 1.0 - 2.0 * ops.cast(flip, "float32")  # -1 mirrors x
    cos, sin = ops.cos(angle), ops.sin(angle)
    # source - centre = zoom * mirror @ rotation @ (output - centre)
    a0, a1 = zoom * sign * cos, -zoom * sign * sin
    b0, b1 = zoom * sin, zoom * cos
    cx, cy = (width - 1) / 2.0, (height - 1) / 2.0
    a2 = cx - a0 * cx - a1 * cy
    b2 = cy - b0 * cx - b1 * cy
    return ops.stack([a0, a1, a2, b0, b1, b2], axis=-1)


def affine_warp(images, matrices, *, fill_value: float = 0.0):
    """``images`` (batch, height, width, channels) resampled through per-image ``matrices``
    (batch, 6; see :func:`affine_matrices`) with bilinear interpolation in one gather: each
    output pixel blends the four input pixels around its source point, and neighbours outside
    the image read ``fill_value`` (Keras' ``fill_mode="constant"``).  Computed in float32."""
    ops = keras.ops
    images = ops.cast(images, "float32")
    _, height, width, channels = images.shape
    ys, xs = ops.meshgrid(ops.arange(height, dtype="float32"), ops.arange(width, dtype="float32"), indexing="ij")
    m = ops.cast(matrices, "float32")[:, :, None, None]
    source_x = m[:, 0] * xs + m[:, 1] * ys + m[:, 2]  # (batch, height, width)
    source_y = m[:, 3] * xs + m[:, 4] * ys + m[:, 5]
    x0, y0 = ops.floor(source_x), ops.floor(source_y)
    wx, wy = source_x - x0, source_y - y0
    # The four neighbours on a new axis 1: (x0, y0), (x0 + 1, y0), (x0, y0 + 1), (x0 + 1, y0 + 1).
    nx = ops.stack([x0, x0 + 1.0, x0, x0 + 1.0], axis=1)
    ny = ops.stack([y0, y0, y0 + 1.0, y0 + 1.0], axis=1)
    weights = ops.stack([(1 - wx) * (1 - wy), wx * (1 - wy), (1 - wx) * wy, wx * wy], axis=1)
    inside = (nx >= 0) & (nx <= width - 1) & (ny >= 0) & (ny <= height - 1)
    index = ops.cast(ops.clip(ny, 0, height - 1), "int32") * width + ops.cast(ops.clip(nx, 0, width - 1), "int32")
    flat = ops.reshape(images, (-1, height * width, channels))
    values = ops.take_along_axis(flat, ops.reshape(index, (-1, 4 * height * width, 1)), axis=1)
    values = ops.reshape(values, (-1, 4, height, width, channels))
    values = ops.where(inside[..., None], values, ops.cast(fill_value, "float32"))
    return ops.sum(values * weights[..., None], axis=1)


@keras.saving.register_keras_serializable(package="mura_lib")
class RandomAffine(layers.Layer):
    """Random horizontal flips, rotations and zooms in one bilinear resampling, on the device.

    Draws per image what ``RandomFlip("horizontal")``, ``RandomRotation(rotation_degrees /
    360)`` and ``RandomZoom(zoom)`` (with their ``fill_mode="constant"``, bilinear
    interpolation) draw: a flip with probability 1/2, an angle uniform in
    ±``rotation_degrees``, and one zoom factor for both axes uniform in 1 ± ``zoom``; then
    applies the composed transform with :func:`affine_warp`.  Written with ``keras.ops`` only,
    so every backend compiles it (Keras' own rotation and zoom go through
    ``map_coordinates`` on JAX, which is slow on a GPU).  The identity outside training.
    """

    def __init__(
        self,
        rotation_degrees: float = 30.0,
        zoom: float = 0.1,
        flip: bool = True,
        *,
        fill_value: float = 0.0,
        seed=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if not 0 <= rotation_degrees <= 180:
            raise ValueError(f"rotation_degrees must be in [0, 180], got {rotation_degrees}")
        if not 0 <= zoom < 1:
            raise ValueError(f"zoom must be in [0, 1), got {zoom}")
        self.rotation_degrees = float(rotation_degrees)
        self.zoom = float(zoom)
        self.flip = bool(flip)
        self.fill_value = float(fill_value)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def random_transform(self, batch_size):
        """One draw per image: ``{"angle": degrees, "zoom": factor, "flip": bool}``, each of
        shape (batch_size,)."""
        shape = (batch_size,)
        uniform = keras.random.uniform
        return {
            "angle": uniform(shape, -self.rotation_degrees, self.rotation_degrees, seed=self.seed_generator),
            "zoom": uniform(shape, 1.0 - self.zoom, 1.0 + self.zoom, seed=self.seed_generator),
            "flip": keras.ops.logical_and(uniform(shape, seed=self.seed_generator) < 0.5, self.flip),
        }

    def call(self, images, training=None):
        if not training:
            return images
        _, height, width, _ = images.shape
        draw = self.random_transform(keras.ops.shape(images)[0])
        matrices = affine_matrices(draw["angle"], draw["zoom"], draw["flip"], height, width)
        return keras.ops.cast(affine_warp(images, matrices, fill_value=self.fill_value), self.compute_dtype)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {
            **super().get_config(),
            "rotation_degrees": self.rotation_degrees,
            "zoom": self.zoom,
            "flip": self.flip,
            "fill_value": self.fill_value,
            "seed": self.seed,
        }


def augmentation(
    seed: int, *, rotation_degrees: float = 30.0, zoom: float = 0.1, contrast: float = 0.1
) -> keras.Sequential:
    """The paper's augmentation (lateral flips, rotations up to 30 degrees) plus small zoom and
    contrast changes; active only in training, and run on the device as part of the model.

    Flips, rotation and zoom are one :class:`RandomAffine` warp (:func:`affine_augmentation`)."""
    return affine_augmentation(seed, rotation_degrees=rotation_degrees, zoom=zoom, contrast=contrast)


def affine_augmentation(
    seed: int, *, rotation_degrees: float = 30.0, zoom: float = 0.1, contrast: float = 0.1
) -> keras.Sequential:
    """Flips, rotation and zoom in one :class:`RandomAffine` warp, then Keras' ``RandomContrast``."""
    steps = [RandomAffine(rotation_degrees, zoom, seed=seed, name="flip_rotate_zoom")]
    if contrast:
        steps.append(layers.RandomContrast(contrast, value_range=(0, 255), seed=seed + 3))
    return keras.Sequential(steps, name="augmentation")


def keras_augmentation(
    seed: int, *, rotation_degrees: float = 30.0, zoom: float = 0.1, contrast: float = 0.1
) -> keras.Sequential:
    """The same augmentation from Keras' own ``RandomFlip``, ``RandomRotation`` and ``RandomZoom``
    layers (one resampling each for rotation and zoom)."""
    steps = [layers.RandomFlip("horizontal", seed=seed)]
    if rotation_degrees:
        steps.append(layers.RandomRotation(rotation_degrees / 360.0, fill_mode="constant", seed=seed + 1))
    if zoom:
        steps.append(layers.RandomZoom(zoom, fill_mode="constant", seed=seed + 2))
    if contrast:
        steps.append(layers.RandomContrast(contrast, value_range=(0, 255), seed=seed + 3))
    return keras.Sequential(steps, name="augmentation")


def build_cnn(
    image_size: int = 64,
    *,
    depth: int = 4,
    width: int = 32,
    dropout: float = 0.3,
    l2: float = 1e-4,
    batch_norm: bool = True,
    augment: bool = True,
    seed: int = 0,
    task: str = "abnormality",
) -> keras.Model:
    """The ab-initio CNN: ``depth`` blocks of 3x3 convolution (+ batch normalisation) + ReLU +
    2x2 max-pooling, doubling the width every block up to 8x, then global average pooling,
    dropout and the ``task``'s head (one sigmoid unit for abnormality).  L2 weight decay
    applies to every kernel."""
    _check_positive(image_size=image_size, depth=depth, width=width)
    if image_size < 2**depth:
        raise ValueError(f"image_size {image_size} is too small for {depth} pooling blocks (needs >= {2**depth}).")
    if not 0 <= dropout < 1:
        raise ValueError(f"dropout must be in [0, 1), got {dropout}")
    regulariser = keras.regularizers.L2(l2) if l2 else None
    inputs = keras.Input((image_size, image_size, 1), name="image")
    x = augmentation(seed)(inputs) if augment else inputs
    x = layers.Rescaling(1.0 / 255.0, name="scale")(x)
    for block in range(depth):
        filters = width * 2 ** min(block, 3)
        x = layers.Conv2D(
            filters, 3, padding="same", use_bias=not batch_norm, kernel_regularizer=regulariser, name=f"conv{block + 1}"
        )(x)
        if batch_norm:
            # Momentum 0.9 (not 0.99): with a few dozen steps per epoch the moving statistics
            # must settle within an epoch, or inference-mode predictions saturate.
            x = layers.BatchNormalization(momentum=0.9, name=f"bn{block + 1}")(x)
        x = layers.Activation("relu", name=f"relu{block + 1}")(x)
        x = layers.MaxPooling2D(2, name=f"pool{block + 1}")(x)
    x = layers.GlobalAveragePooling2D(name="gap")(x)
    if dropout:
        x = layers.Dropout(dropout, seed=seed, name="dropout")(x)
    outputs = head(task, kernel_regularizer=regulariser)(x)
    return keras.Model(inputs, outputs, name="abinitio_cnn")


def resolve_weights(weights: str | None) -> str | None:
    """``"imagenet"``, ``None``, or a path to a local weights file (checked to exist)."""
    if weights in (None, "none", "None", ""):
        return None
    if weights == "imagenet":
        return "imagenet"
    path = Path(os.path.expanduser(str(weights)))
    if not path.is_file():
        raise ValueError(f"weights must be 'imagenet', None or an existing weights file; {path} does not exist.")
    return str(path)


def build_backbone(name: str, image_size: int, weights: str | None = None, input_tensor=None) -> keras.Model:
    """A ``keras.applications`` backbone without its classifier, global-average pooled.

    With ``input_tensor`` its layers join the caller's graph directly (not as one nested
    layer), so that any inner layer, e.g. the last convolution for Grad-CAM, is reachable.
    """
    if name not in BACKBONES:
        raise ValueError(f"Unknown backbone {name!r}; choose one of {sorted(BACKBONES)}.")
    constructor, _, smallest = BACKBONES[name]
    if image_size < smallest:
        raise ValueError(f"{name} needs inputs of at least {smallest}px, got {image_size}.")
    factory = getattr(keras.applications, constructor)
    return factory(
        include_top=False,
        weights=resolve_weights(weights),
        input_shape=(image_size, image_size, 3),
        input_tensor=input_tensor,
        pooling="avg",
    )


def build_pretrained(
    name: str,
    image_size: int = 224,
    *,
    weights: str | None = "imagenet",
    fine_tune: bool = False,
    dropout: float = 0.0,
    augment: bool = True,
    seed: int = 0,
    task: str = "abnormality",
) -> keras.Model:
    """A backbone with a new head: a single sigmoid unit (or, for ``task="study_type"``, a
    softmax over the study types).

    Grayscale input is repeated to three channels and passed through the backbone's own
    ``preprocess_input`` (ImageNet mean/std or scaling, as the backbone was trained).  With
    ``fine_tune=False`` the backbone is frozen: its weights stay as loaded and its batch
    normalisation layers run in inference mode (Keras 3 does so for non-trainable layers);
    only the head learns.
    """
    if name not in BACKBONES:
        raise ValueError(f"Unknown backbone {name!r}; choose one of {sorted(BACKBONES)}.")
    preprocess = getattr(keras.applications, BACKBONES[name][1]).preprocess_input
    inputs = keras.Input((image_size, image_size, 1), name="image")
    x = augmentation(seed)(inputs) if augment else inputs
    x = layers.Concatenate(name="to_rgb")([x, x, x])
    if name != "efficientnetb0":  # EfficientNet normalises inside the network
        x = layers.Lambda(lambda t: preprocess(t), name="preprocess")(x)
    backbone = build_backbone(name, image_size, weights, input_tensor=x)
    for layer in backbone.layers:
        layer.trainable = fine_tune
    features = backbone.output
    if dropout:
        features = layers.Dropout(dropout, seed=seed, name="dropout")(features)
    outputs = head(task)(features)
    return keras.Model(inputs, outputs, name=f"{name}_{'finetuned' if fine_tune else 'frozen'}")


def build_model(config) -> keras.Model:
    """The model an :class:`~mura_lib.config.ExperimentConfig` describes.

    The ab-initio CNN trains every layer, unless it starts from another run's weights
    (``init_from``) with ``fine_tune=False``: then, like a frozen backbone, only its head learns.
    """
    if config.model == "cnn":
        model = build_cnn(
            config.image_size,
            depth=config.depth,
            width=config.width,
            dropout=config.dropout,
            l2=config.l2,
            batch_norm=config.batch_norm,
            augment=config.augment,
            seed=config.seed,
            task=config.task,
        )
        if getattr(config, "init_from", None) and not config.fine_tune:
            # Transferred weights, frozen: as for a frozen backbone, only the head learns.
            for layer in backbone_layers(model):
                layer.trainable = False
        return model
    if config.model == "multiview":
        # The image network the multi-view model wraps has the same settings as the run it
        # starts from (the plan derives one configuration from the other).
        image_model = build_model(config.replace(model="cnn", init_from=None))
        return build_multiview(image_model, config.max_views)
    if config.model in BACKBONES:
        return build_pretrained(
            config.model,
            config.image_size,
            weights=config.weights,
            fine_tune=config.fine_tune,
            dropout=config.dropout,
            augment=config.augment,
            seed=config.seed,
            task=config.task,
        )
    raise ValueError(f"Unknown model {config.model!r}; choose one of {MODEL_NAMES}.")


def backbone_layers(model: keras.Model) -> list:
    """The layers of ``model`` that hold weights, in order, without its head: what a model for
    one task hands on to a model for another (convolutions, batch normalisation statistics)."""
    heads = set(TASKS.values())
    return [layer for layer in model.layers if layer.weights and layer.name not in heads]


def _base_name(name: str) -> str:
    # Keras numbers the automatic names of unnamed layers (``normalization``, ``normalization_1``)
    # per process, so the same layer of two models built one after the other may differ by it.
    return re.sub(r"_\d+$", "", name)


def transfer_backbone_weights(source_model: keras.Model, target_model: keras.Model) -> list[str]:
    """Copy every backbone weight (trainable and not, e.g. batch normalisation statistics) of
    ``source_model`` into ``target_model``; the heads, which differ between tasks, are left alone.

    The two models must be built by the same model function (same ``model``, depth, width, ...):
    their backbone layers are paired in order and must agree in name (up to Keras' automatic
    numbering of unnamed layers), type and weight shapes.  The image size may differ: the
    backbones' weights do not depend on it.  Returns the names of the target's layers that
    received weights.
    """
    sources, targets = backbone_layers(source_model), backbone_layers(target_model)
    if len(sources) != len(targets):
        raise ValueError(
            f"Cannot transfer weights from {source_model.name!r} ({len(sources)} backbone layers with weights) to "
            f"{target_model.name!r} ({len(targets)}): the two models have different backbones; build both with the "
            "same model settings (model, depth, width, batch_norm)."
        )
    pairs = []
    for source, target in zip(sources, targets):
        shapes = [tuple(w.shape) for w in source.weights], [tuple(w.shape) for w in target.weights]
        same_name = _base_name(source.name) == _base_name(target.name)
        if not same_name or type(source) is not type(target) or shapes[0] != shapes[1]:
            raise ValueError(
                f"Cannot transfer weights: the source's layer {source.name!r} ({type(source).__name__}, {shapes[0]}) "
                f"does not match the target's {target.name!r} ({type(target).__name__}, {shapes[1]}); build both "
                "models with the same model settings (model, depth, width, batch_norm)."
            )
        pairs.append((source, target))
    for source, target in pairs:
        target.set_weights(source.get_weights())
    return [target.name for _, target in pairs]


class MaskedMean(layers.Layer):
    """Mean over the views axis of (batch, views, features), ignoring padded views."""

    def call(self, features, mask):
        mask = keras.ops.cast(keras.ops.expand_dims(mask, -1), features.dtype)
        total = keras.ops.sum(features * mask, axis=1)
        count = keras.ops.maximum(keras.ops.sum(mask, axis=1), 1.0)
        return total / count


def build_multiview(image_model: keras.Model, max_views: int, *, feature_layer: str = "gap") -> keras.Model:
    """A study model: one shared image network over every view of a study, its features
    averaged over the study's views (padding masked out), then one sigmoid unit.

    ``image_model`` is an image model whose layer ``feature_layer`` gives per-image features
    (the ab-initio CNN's global-average-pooling layer by default).
    """
    if max_views < 1:
        raise ValueError(f"max_views must be at least 1, got {max_views}")
    size = image_model.input_shape[1]
    encoder = keras.Model(image_model.input, image_model.get_layer(feature_layer).output, name="view_encoder")
    views = keras.Input((max_views, size, size, 1), name="views")
    mask = keras.Input((max_views,), name="view_mask")
    features = layers.TimeDistributed(encoder, name="per_view")(views)
    pooled = MaskedMean(name="study_mean")(features, mask)
    outputs = layers.Dense(1, activation="sigmoid", dtype="float32", name="abnormal")(pooled)
    return keras.Model([views, mask], outputs, name="multiview_study_model")


def _check_positive(**values: int) -> None:
    for name, value in values.items():
        if value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value}")
