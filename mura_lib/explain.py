"""Grad-CAM (Selvaraju et al., 2017): where in the radiograph a model's decision came from."""

from __future__ import annotations

from dataclasses import dataclass

import keras
import numpy as np
import pandas as pd


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

    Works on every Keras backend: TensorFlow and PyTorch differentiate with respect to the
    intermediate activation directly; JAX, which differentiates functions, not tensors, splits
    the model at ``layer_name`` and differentiates the second part (:func:`_jax_gradients`).
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
    elif backend == "jax":
        features, gradients = _jax_gradients(model, layer, images)
    else:
        raise ValueError(f"Grad-CAM needs the TensorFlow, PyTorch or JAX backend, not {backend!r}.")
    weights = gradients.mean(axis=(1, 2), keepdims=True)
    maps = np.maximum((weights * features).sum(axis=-1), 0.0)
    size = images.shape[1:3]
    resized = keras.ops.convert_to_numpy(keras.ops.image.resize(maps[..., None], size, interpolation="bilinear"))[
        ..., 0
    ]
    peak = resized.reshape(len(resized), -1).max(axis=1).reshape(-1, 1, 1)
    return np.divide(resized, peak, out=np.zeros_like(resized), where=peak > 0)


def _jax_gradients(model: keras.Model, layer, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(features, gradients)`` on JAX: the output of ``layer`` and the gradient of the summed
    output with respect to it.  The model is split at ``layer`` into the part before it and the
    part after it (a Keras functional graph can start from any of its tensors), and
    ``jax.grad`` differentiates the second part, called statelessly with the model's variables
    (inference mode: batch normalisation reads its moving statistics, dropout is off)."""
    import jax
    import jax.numpy as jnp

    try:
        after = keras.Model(layer.output, model.output)
    except ValueError as error:  # a path to the output bypasses the layer (a skip connection over it)
        raise ValueError(
            f"Grad-CAM on JAX needs a layer that every path from the input to the output passes through; "
            f"{layer.name!r} is not one ({error})"
        ) from error
    before = keras.Model(model.input, layer.output)
    features = before(images, training=False)
    trainable = [variable.value for variable in after.trainable_variables]
    non_trainable = [variable.value for variable in after.non_trainable_variables]

    def score(activations):
        output, _ = after.stateless_call(trainable, non_trainable, activations, training=False)
        return jnp.sum(output.astype("float32"))

    gradients = jax.grad(score)(features)
    return np.asarray(features, dtype="float32"), np.asarray(gradients, dtype="float32")


def confident_views(predictions: pd.DataFrame, per_group: int, subset: str = "test") -> pd.DataFrame:
    """The ``per_group`` studies of ``subset`` classified correctly (at 0.5, mean over views) with
    the most confidence, then the ``per_group`` classified wrongly with the most confidence (column
    ``group``: "correct" or "failed"), each with the view it found most abnormal (``relpath`` and
    its ``view_probability``); ``probability`` is the study's."""
    from .scoring import aggregate_studies

    images = predictions.loc[predictions["subset"] == subset]
    studies = aggregate_studies(images)
    correct = (studies["probability"] > 0.5).astype(int) == studies["label"]
    confidence = (studies["probability"] - 0.5).abs()
    studies = studies.assign(
        predicted=(studies["probability"] > 0.5).astype(int), correct=correct, confidence=confidence
    )
    chosen = pd.concat(
        [
            studies.loc[studies["correct"]]
            .sort_values("confidence", ascending=False)
            .head(per_group)
            .assign(group="correct"),
            studies.loc[~studies["correct"]]
            .sort_values("confidence", ascending=False)
            .head(per_group)
            .assign(group="failed"),
        ]
    )
    views = images.loc[images.groupby("study_path")["probability"].idxmax()].set_index("study_path")
    views = views[["relpath", "probability"]].rename(columns={"probability": "view_probability"})
    return chosen.join(views, on="study_path")


def cached_pixels(dataset, config, relpaths, cache_dir) -> np.ndarray:
    """The images ``relpaths`` as the network of ``config`` sees them: read from the preprocessed
    cache (:func:`mura_lib.inputs.prepare_data`), ``float32`` of shape (n, size, size, 1)."""
    from .inputs import prepare_for

    prepared = prepare_for(dataset, config, cache_dir=cache_dir)
    rows = pd.Series(np.arange(len(prepared.images)), index=prepared.images["relpath"])
    relpaths = list(relpaths)
    unknown = [r for r in relpaths if r not in rows.index]
    if unknown:
        raise KeyError(f"{len(unknown)} images are not among the prepared images of the dataset, e.g. {unknown[0]}.")
    cache_rows = prepared.images["cache_row"].to_numpy()[rows.loc[relpaths].to_numpy()]
    size = config.image_size
    pixels = np.stack([prepared.cache_images[r] for r in cache_rows]) if relpaths else np.zeros((0, size, size))
    return pixels.astype("float32")[..., None]


@dataclass
class GradCamExamples:
    """Grad-CAM maps of chosen views: ``views`` (:func:`confident_views`), their ``pixels`` as the
    network sees them, the ``maps`` and the ``layer`` they were computed on, whose output is a
    ``grid`` by ``grid`` map."""

    views: pd.DataFrame
    pixels: np.ndarray
    maps: np.ndarray
    layer: str
    grid: int

    def facts(self) -> dict:
        """The numbers the text quotes, by name."""
        counts = self.views["group"].value_counts()
        return {
            "correct": int(counts.get("correct", 0)),
            "failed": int(counts.get("failed", 0)),
            "layer": self.layer,
            "grid": self.grid,
        }


def confident_examples(run, dataset, per_group: int, *, cache_dir, layer_name: str | None = None) -> GradCamExamples:
    """Grad-CAM maps of ``run``'s trained model for its most confidently correct and most confidently
    wrong test studies (:func:`confident_views`), each on the view it found most abnormal, computed on
    ``layer_name`` (the last spatial layer by default)."""
    model = run.load_model()
    views = confident_views(run.predictions, per_group)
    pixels = cached_pixels(dataset, run.config, views["relpath"], cache_dir)
    layer = layer_name or last_spatial_layer(model)
    maps = grad_cam(model, pixels, layer_name=layer)
    return GradCamExamples(views, pixels, maps, layer, int(model.get_layer(layer).output.shape[1]))
