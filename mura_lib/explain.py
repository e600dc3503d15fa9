"""Grad-CAM (Selvaraju et al., 2017): where in the radiograph a model's decision came from."""

from __future__ import annotations

import keras
import numpy as np


def last_spatial_layer(model: keras.Model) -> str:
    """The name of the last layer, pooling aside, whose output still has a spatial grid."""
    for layer in reversed(model.layers):
        if isinstance(layer, (keras.Sequential, keras.layers.InputLayer)) or "Pooling" in type(layer).__name__:
            continue
        if len(layer.output.shape) == 4:
            return layer.name
    raise ValueError(f"Model {model.name} has no layer with a spatial output for Grad-CAM.")


def grad_cam(model: keras.Model, images: np.ndarray, *, layer_name: str | None = None) -> np.ndarray:
    """Grad-CAM heatmaps for the abnormal output, one per image, resized to the input and
    scaled to [0, 1]: the ReLU of the feature maps of ``layer_name`` (the last spatial layer
    by default) weighted by the average gradient of the abnormality score.

    Works with the TensorFlow and PyTorch backends, which can differentiate with respect to an
    intermediate activation.
    """
    images = np.asarray(images, dtype="float32")
    if images.ndim == 3:
        images = images[..., None]
    if images.ndim != 4:
        raise ValueError(f"images must have shape (n, h, w) or (n, h, w, 1), got {images.shape}")
    layer = model.get_layer(layer_name or last_spatial_layer(model))
    probe = keras.Model(model.input, [layer.output, model.output])
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        with tf.GradientTape() as tape:
            features, output = probe(images, training=False)
            score = tf.reduce_sum(output)
        gradients = tape.gradient(score, features).numpy()
        features = features.numpy()
    elif backend == "torch":
        import torch

        features, output = probe(torch.as_tensor(images), training=False)
        features.retain_grad()
        output.sum().backward()
        gradients = features.grad.detach().cpu().numpy()
        features = features.detach().cpu().numpy()
    else:
        raise ValueError(f"Grad-CAM needs the TensorFlow or PyTorch backend, not {backend!r}.")
    weights = gradients.mean(axis=(1, 2), keepdims=True)
    maps = np.maximum((weights * features).sum(axis=-1), 0.0)
    size = images.shape[1:3]
    resized = keras.ops.convert_to_numpy(keras.ops.image.resize(maps[..., None], size, interpolation="bilinear"))[
        ..., 0
    ]
    peak = resized.reshape(len(resized), -1).max(axis=1).reshape(-1, 1, 1)
    return np.divide(resized, peak, out=np.zeros_like(resized), where=peak > 0)
