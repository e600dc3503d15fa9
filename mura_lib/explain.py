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


# --- Grad-CAM against where the finding is -------------------------------------------------------


def box_in_input(box, height: int, width: int, size: int, policy: str) -> tuple[float, float, float, float]:
    """A box on a stored image, ``(left, top, right, bottom)`` as fractions of its ``width`` and
    ``height``, in the pixels of the ``size`` by ``size`` input that
    :func:`mura_lib.preprocess.resize_image` makes of it with ``policy``: stretched to the square,
    scaled and centred on black padding (``pad``), or scaled and centre-cropped (``crop``, the box
    clipped to what is left).  Returns ``(x0, y0, x1, y1)`` as floats, ends exclusive."""
    from .config import POLICIES

    if policy not in POLICIES:
        raise ValueError(f"policy must be one of {POLICIES}, got {policy!r}")
    left, top, right, bottom = (float(v) for v in box)
    if policy == "stretch":
        return left * size, top * size, right * size, bottom * size
    # The same arithmetic as resize_image: the scaled sides are rounded, then centred.
    scale = size / max(height, width) if policy == "pad" else size / min(height, width)
    new_h, new_w = max(1, round(height * scale)), max(1, round(width * scale))
    if policy == "pad":
        y_off, x_off = (size - new_h) // 2, (size - new_w) // 2
    else:
        y_off, x_off = -((new_h - size) // 2), -((new_w - size) // 2)

    def clip(v):
        return min(max(v, 0.0), float(size))

    return (
        clip(x_off + left * new_w),
        clip(y_off + top * new_h),
        clip(x_off + right * new_w),
        clip(y_off + bottom * new_h),
    )


def _coverage(low: float, high: float, n: int) -> np.ndarray:
    """How much of each of ``n`` unit pixels the interval [low, high) covers (0 to 1)."""
    edges = np.arange(n, dtype="float64")
    return np.clip(np.minimum(high, edges + 1) - np.maximum(low, edges), 0.0, 1.0)


def box_mass_share(maps: np.ndarray, boxes) -> tuple[np.ndarray, np.ndarray]:
    """For each map (``maps``: (n, h, w), non-negative) and its box in the map's pixels
    (``(x0, y0, x1, y1)`` floats, as :func:`box_in_input` gives), the share of the map's mass inside
    the box (pixels cut by the box's edge count by the part inside), and the box's share of the
    map's area: what a uniform map would give.  A map with no mass has a NaN share."""
    maps = np.asarray(maps, dtype="float64")
    shares, areas = np.full(len(maps), np.nan), np.zeros(len(maps))
    for i, (heat, (x0, y0, x1, y1)) in enumerate(zip(maps, boxes)):
        h, w = heat.shape
        weight = np.outer(_coverage(y0, y1, h), _coverage(x0, x1, w))
        areas[i] = weight.sum() / (h * w)
        total = heat.sum()
        if total > 0:
            shares[i] = float((heat * weight).sum() / total)
    return shares, areas


def finding_localisation(
    run, dataset, truth: pd.DataFrame | None, *, cache_dir, subset: str = "test", layer_name=None, batch: int = 256
) -> pd.DataFrame | None:
    """Grad-CAM of ``run``'s model on every view of ``subset`` that shows a finding with a recorded
    box (``truth``: :func:`mura_lib.synthetic.image_truth`, None on real MURA, which gives None),
    scored against it: one row per view with ``relpath``, ``finding``, the box in the input's pixels
    (``x0``, ``y0``, ``x1``, ``y1``: the stored image's box mapped through the run's resizing
    policy), the map's ``share`` of mass inside the box and the box's ``area`` share."""
    if truth is None:
        return None
    images = run.predictions.loc[run.predictions["subset"] == subset, ["relpath"]]
    boxed = truth.dropna(subset=["finding_left"])
    views = images.merge(boxed, on="relpath", how="inner").reset_index(drop=True)
    columns = ["relpath", "finding", "x0", "y0", "x1", "y1", "share", "area"]
    if views.empty:
        return pd.DataFrame(columns=columns)
    size, policy = run.config.image_size, run.config.policy
    corners = ["finding_left", "finding_top", "finding_right", "finding_bottom"]
    boxes = [box_in_input(row[corners], row["height"], row["width"], size, policy) for _, row in views.iterrows()]
    model = run.load_model()
    layer = layer_name or last_spatial_layer(model)
    shares, areas = [], []
    for start in range(0, len(views), batch):
        part = views["relpath"].iloc[start : start + batch]
        maps = grad_cam(model, cached_pixels(dataset, run.config, part, cache_dir), layer_name=layer)
        share, area = box_mass_share(maps, boxes[start : start + batch])
        shares.append(share)
        areas.append(area)
    frame = pd.DataFrame(boxes, columns=["x0", "y0", "x1", "y1"])
    return views[["relpath", "finding"]].join(frame).assign(share=np.concatenate(shares), area=np.concatenate(areas))


def localisation_summary(
    table: pd.DataFrame | None, *, n_resamples: int = 1000, seed: int = 0, confidence: float = 0.95
) -> pd.DataFrame | None:
    """:func:`finding_localisation` by finding (in the order of the generator's findings): the views
    scored (``views``) and those whose map has mass (``images``; a map that is zero everywhere has
    no share), the mean share of the map inside the box (``share``), the mean share of the input the
    box covers (``area``, a uniform map's share), and the mean of their difference per view
    (``excess``) with a percentile bootstrap interval over views (``low``, ``high``; NaN with fewer
    than two views with mass), over the views with mass.  None where ``table`` is None."""
    from .evaluation import percentile_bootstrap
    from .synthetic.findings import FINDINGS

    if table is None:
        return None
    rows = []
    for finding in FINDINGS:
        views = int((table["finding"] == finding).sum())
        part = table.loc[table["finding"] == finding].dropna(subset=["share"])
        if not views:
            continue
        excess = (part["share"] - part["area"]).to_numpy()
        low = high = float("nan")
        if len(excess) >= 2 and np.ptp(excess) > 0:  # NaN where nothing varies to resample
            low, high = percentile_bootstrap(
                (excess,),
                lambda x, axis=-1: np.mean(x, axis=axis),
                paired=False,
                n_resamples=n_resamples,
                confidence=confidence,
                seed=seed,
            )
        rows.append(
            {
                "finding": finding,
                "views": views,
                "images": len(part),
                "share": float(part["share"].mean()) if len(part) else float("nan"),
                "area": float(part["area"].mean()) if len(part) else float("nan"),
                "excess": float(excess.mean()) if len(part) else float("nan"),
                "low": float(low),
                "high": float(high),
            }
        )
    return pd.DataFrame(rows, columns=["finding", "views", "images", "share", "area", "excess", "low", "high"])


def input_boxes(relpaths, truth: pd.DataFrame | None, size: int, policy: str) -> list:
    """The finding's box of each image ``relpaths`` in the input's pixels (:func:`box_in_input`), or
    None for an image without one (and for every image where ``truth`` is None, as on real MURA)."""
    if truth is None:
        return [None for _ in relpaths]
    rows = truth.set_index("relpath")
    corners = ["finding_left", "finding_top", "finding_right", "finding_bottom"]
    boxes = []
    for relpath in relpaths:
        row = rows.loc[relpath]
        present = pd.notna(row[corners]).all()
        boxes.append(box_in_input(row[corners], row["height"], row["width"], size, policy) if present else None)
    return boxes
