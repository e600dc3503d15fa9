"""Scoring predictions at study level: image probabilities to study probabilities, and the
metrics of one model's predictions.

Training uses these to validate after each epoch (the plateau rules act on them) and the run
store to summarise a finished run, so this module is one of the result modules
(:data:`mura_lib.config.RESULT_MODULES`): a change here retrains.  The statistics of
comparisons live in :mod:`mura_lib.evaluation`, whose changes never retrain.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn import metrics as skm

from .dataset import STUDY_TYPES

AGGREGATIONS = ("mean", "max", "median", "vote")


def aggregate_studies(predictions: pd.DataFrame, rule: str = "mean") -> pd.DataFrame:
    """Image probabilities to one probability per study.

    ``mean`` is the paper's rule (the arithmetic mean over a study's views); ``max`` flags a
    study if any view looks abnormal; ``median`` resists one odd view; ``vote`` is the share of
    views above 0.5.
    """
    if rule not in AGGREGATIONS:
        raise ValueError(f"rule must be one of {AGGREGATIONS}, got {rule!r}")
    required = {"study_path", "study_type", "label", "probability"}
    missing = required - set(predictions.columns)
    if missing:
        raise ValueError(f"predictions lack the columns {sorted(missing)}")
    if predictions.empty:
        raise ValueError("No predictions to aggregate.")
    conflicting = predictions.groupby("study_path")["label"].nunique()
    if (conflicting > 1).any():
        raise ValueError(f"Images of study {conflicting.idxmax()} carry different labels.")
    grouped = predictions.groupby("study_path", sort=True)
    if rule == "vote":
        probability = grouped["probability"].apply(lambda p: float((p > 0.5).mean()))
    else:
        probability = grouped["probability"].agg(rule)
    return pd.DataFrame(
        {
            "study_type": grouped["study_type"].first(),
            "label": grouped["label"].first().astype(int),
            "views": grouped.size(),
            "probability": probability.astype(float),
        }
    ).reset_index()


def study_metrics(labels, probabilities, threshold: float = 0.5) -> dict:
    """AUROC, Cohen's kappa, accuracy, sensitivity, specificity and F1 (abnormal = positive)."""
    labels = np.asarray(labels).astype(int)
    probabilities = np.asarray(probabilities, dtype=float)
    predicted = (probabilities > threshold).astype(int)
    tn, fp, fn, tp = skm.confusion_matrix(labels, predicted, labels=[0, 1]).ravel()
    both = len(np.unique(labels)) == 2
    return {
        "auroc": float(skm.roc_auc_score(labels, probabilities)) if both else float("nan"),
        "kappa": float(skm.cohen_kappa_score(labels, predicted))
        if both or len(np.unique(predicted)) == 2
        else float("nan"),
        "accuracy": float(skm.accuracy_score(labels, predicted)),
        "sensitivity": float(tp / (tp + fn)) if tp + fn else float("nan"),
        "specificity": float(tn / (tn + fp)) if tn + fp else float("nan"),
        "f1": float(skm.f1_score(labels, predicted, zero_division=0.0)),
        "studies": int(len(labels)),
        "threshold": float(threshold),
    }


def _type_scores(labels: np.ndarray, probabilities: np.ndarray) -> dict:
    """Accuracy and macro one-vs-rest AUROC of study-type probabilities (one column per type of
    :data:`STUDY_TYPES`); the AUROC averages over the types present with both positives and
    negatives (NaN if none)."""
    predicted = probabilities.argmax(axis=1)
    aurocs = [
        skm.roc_auc_score(labels == k, probabilities[:, k])
        for k in range(len(STUDY_TYPES))
        if 0 < (labels == k).sum() < len(labels)
    ]
    return {
        "accuracy": float((predicted == labels).mean()),
        "macro_auroc": float(np.mean(aurocs)) if aurocs else float("nan"),
    }


def study_type_scores(images: pd.DataFrame, probabilities) -> tuple[dict, dict]:
    """``(image-level, study-level)`` accuracy and macro one-vs-rest AUROC of study-type
    predictions: ``images`` has ``study_path`` and ``study_type``, ``probabilities`` one row per
    image and one column per type of :data:`STUDY_TYPES`; a study's probabilities are the mean
    over its views."""
    probabilities = np.asarray(probabilities, dtype=float)
    if probabilities.shape != (len(images), len(STUDY_TYPES)):
        raise ValueError(
            f"probabilities must have shape ({len(images)}, {len(STUDY_TYPES)}), got {probabilities.shape}"
        )
    index = {name: k for k, name in enumerate(STUDY_TYPES)}
    labels = images["study_type"].map(index).to_numpy()
    frame = pd.DataFrame(probabilities, columns=list(STUDY_TYPES)).assign(study_path=images["study_path"].to_numpy())
    studies = frame.groupby("study_path", sort=True).mean()
    study_labels = images.groupby("study_path", sort=True)["study_type"].first().map(index).to_numpy()
    image = _type_scores(labels, probabilities) | {"images": int(len(labels))}
    study = _type_scores(study_labels, studies.to_numpy()) | {"studies": int(len(study_labels))}
    return image, study


def study_type_metrics(predictions: pd.DataFrame) -> dict:
    """The test metrics of a study-type (source task) run from its ``predictions`` (the columns
    ``p_XR_ELBOW`` ... of :func:`mura_lib.training.predict_images`): study-level accuracy and
    macro AUROC, and the same at the image level."""
    columns = [f"p_{name}" for name in STUDY_TYPES]
    missing = set(columns) - set(predictions.columns)
    if missing:
        raise ValueError(f"study-type predictions lack the columns {sorted(missing)}")
    image, study = study_type_scores(predictions, predictions[columns].to_numpy())
    return {
        "task": "study_type",
        "accuracy": study["accuracy"],
        "macro_auroc": study["macro_auroc"],
        "image_accuracy": image["accuracy"],
        "image_macro_auroc": image["macro_auroc"],
        "studies": study["studies"],
        "images": image["images"],
    }


def constant_predictions(predictions: pd.DataFrame, tolerance: float = 1e-6, threshold: float = 0.5) -> str | None:
    """Why a model's predictions are constant, or None if they are not.

    A model has collapsed when its probabilities hardly vary (their range is below
    ``tolerance``: nothing to rank with, AUROC 0.5 at best) or when every image falls on the same
    side of ``threshold`` (every decision the same: kappa 0).  Study-type predictions (with a
    ``predicted_type`` column) are constant when every image gets the same type.
    """
    if predictions.empty:
        raise ValueError("No predictions to check.")
    if "predicted_type" in predictions:
        columns = [c for c in predictions.columns if c.startswith("p_XR_")]
        spread = float((predictions[columns].max() - predictions[columns].min()).max()) if columns else float("inf")
        if spread < tolerance:
            return f"every image gets the same study-type probabilities (range {spread:.1e} < {tolerance:.0e})"
        types = predictions["predicted_type"].unique()
        if len(types) == 1:
            return f"every image is predicted {types[0]}"
        return None
    probability = predictions["probability"].to_numpy(dtype=float)
    spread = float(probability.max() - probability.min())
    if spread < tolerance:
        return f"every probability is {probability.mean():.4g} (range {spread:.1e} < {tolerance:.0e})"
    above = probability > threshold
    if above.all() or not above.any():
        side = "abnormal" if above.all() else "normal"
        return (
            f"every image is predicted {side} at threshold {threshold:g} "
            f"(probabilities {probability.min():.3g} to {probability.max():.3g})"
        )
    return None


def is_constant(predictions: pd.DataFrame, tolerance: float = 1e-6, threshold: float = 0.5) -> bool:
    """True if the predictions are constant (see :func:`constant_predictions`)."""
    return constant_predictions(predictions, tolerance=tolerance, threshold=threshold) is not None
