"""Study-level evaluation: aggregation, metrics with bootstrap intervals, the paper's
reference results, ensembles, and the official submission format with its scorer.

Point estimates come from scikit-learn.  The bootstrap resamples studies with
``scipy.stats.bootstrap``; for speed its statistics are vectorised numpy versions of the same
metrics, tested against scikit-learn.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats
from sklearn import metrics as skm

from .dataset import DATASET_DIRNAME, STUDY_TYPES

AGGREGATIONS = ("mean", "max", "median", "vote")
METRICS = ("auroc", "kappa", "accuracy", "sensitivity", "specificity", "f1")

# Cohen's kappa on the hidden test set (Rajpurkar et al., 2017, Table 2), per study type.
PAPER_KAPPA = pd.DataFrame(
    {
        "radiologist 1": [0.850, 0.304, 0.796, 0.661, 0.867, 0.864, 0.791, 0.731],
        "radiologist 2": [0.710, 0.403, 0.802, 0.927, 0.733, 0.791, 0.931, 0.763],
        "radiologist 3": [0.719, 0.410, 0.798, 0.789, 0.933, 0.864, 0.931, 0.778],
        "paper model": [0.710, 0.389, 0.737, 0.851, 0.600, 0.729, 0.931, 0.705],
    },
    index=pd.Index([*STUDY_TYPES, "overall"], name="study_type"),
)
PAPER_TEST_AUROC = 0.929


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
        "kappa": float(skm.cohen_kappa_score(labels, predicted)) if both or len(np.unique(predicted)) == 2 else float("nan"),
        "accuracy": float(skm.accuracy_score(labels, predicted)),
        "sensitivity": float(tp / (tp + fn)) if tp + fn else float("nan"),
        "specificity": float(tn / (tn + fp)) if tn + fp else float("nan"),
        "f1": float(skm.f1_score(labels, predicted, zero_division=0.0)),
        "studies": int(len(labels)),
        "threshold": float(threshold),
    }


# --- vectorised statistics for the bootstrap (axis=-1 holds the studies) ---------------------


def _auroc(labels, scores, axis=-1):
    labels = np.moveaxis(np.asarray(labels, dtype=float), axis, -1)
    scores = np.moveaxis(np.asarray(scores, dtype=float), axis, -1)
    ranks = stats.rankdata(scores, axis=-1)
    positives = labels.sum(-1)
    negatives = labels.shape[-1] - positives
    rank_sum = (ranks * labels).sum(-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (rank_sum - positives * (positives + 1) / 2) / (positives * negatives)


def _confusion(labels, predicted):
    labels = np.asarray(labels, dtype=float)
    predicted = np.asarray(predicted, dtype=float)
    tp = (labels * predicted).sum(-1)
    tn = ((1 - labels) * (1 - predicted)).sum(-1)
    fp = ((1 - labels) * predicted).sum(-1)
    fn = (labels * (1 - predicted)).sum(-1)
    return tp, tn, fp, fn


def _kappa(labels, predicted, axis=-1):
    labels, predicted = np.moveaxis(labels, axis, -1), np.moveaxis(predicted, axis, -1)
    tp, tn, fp, fn = _confusion(labels, predicted)
    n = tp + tn + fp + fn
    observed = (tp + tn) / n
    expected = ((tp + fp) * (tp + fn) + (tn + fn) * (tn + fp)) / n**2
    with np.errstate(invalid="ignore", divide="ignore"):
        return (observed - expected) / (1 - expected)


def _rate(kind):
    def statistic(labels, predicted, axis=-1):
        labels, predicted = np.moveaxis(labels, axis, -1), np.moveaxis(predicted, axis, -1)
        tp, tn, fp, fn = _confusion(labels, predicted)
        with np.errstate(invalid="ignore", divide="ignore"):
            return {
                "accuracy": (tp + tn) / (tp + tn + fp + fn),
                "sensitivity": tp / (tp + fn),
                "specificity": tn / (tn + fp),
                "f1": 2 * tp / (2 * tp + fp + fn),
            }[kind]

    return statistic


_STATISTICS = {
    "auroc": (_auroc, False),
    "kappa": (_kappa, True),
    "accuracy": (_rate("accuracy"), True),
    "sensitivity": (_rate("sensitivity"), True),
    "specificity": (_rate("specificity"), True),
    "f1": (_rate("f1"), True),
}


def bootstrap_interval(
    labels, probabilities, metric: str, *, threshold: float = 0.5, n_resamples: int = 1000,
    confidence_level: float = 0.95, seed: int = 0,
) -> tuple[float, float]:
    """Percentile bootstrap interval of a study-level metric, resampling studies."""
    if metric not in _STATISTICS:
        raise ValueError(f"metric must be one of {tuple(_STATISTICS)}, got {metric!r}")
    statistic, thresholded = _STATISTICS[metric]
    labels = np.asarray(labels, dtype=float)
    scores = np.asarray(probabilities, dtype=float)
    if thresholded:
        scores = (scores > threshold).astype(float)
    if len(labels) < 2:
        return (float("nan"), float("nan"))
    result = stats.bootstrap(
        (labels, scores), statistic, paired=True, vectorized=True, n_resamples=n_resamples,
        confidence_level=confidence_level, method="percentile", random_state=np.random.default_rng(seed),
    )
    return float(result.confidence_interval.low), float(result.confidence_interval.high)


def metrics_table(
    studies: pd.DataFrame, *, threshold: float = 0.5, n_resamples: int = 1000, seed: int = 0,
    metrics=("auroc", "kappa", "sensitivity", "specificity"),
) -> pd.DataFrame:
    """Metrics with 95% bootstrap intervals, per study type and overall (one row each)."""
    rows = []
    groups = [(t, studies.loc[studies["study_type"] == t]) for t in STUDY_TYPES if (studies["study_type"] == t).any()]
    groups.append(("overall", studies))
    for name, group in groups:
        point = study_metrics(group["label"], group["probability"], threshold)
        row = {"study_type": name, "studies": point["studies"]}
        for metric in metrics:
            low, high = bootstrap_interval(group["label"], group["probability"], metric, threshold=threshold, n_resamples=n_resamples, seed=seed)
            row.update({metric: point[metric], f"{metric}_low": low, f"{metric}_high": high})
        rows.append(row)
    return pd.DataFrame(rows).set_index("study_type")


def choose_threshold(studies: pd.DataFrame, criterion: str = "youden") -> float:
    """A decision threshold chosen on *validation* studies (never on the test set).

    Candidates lie midway between consecutive distinct probabilities, so that the rule
    ``probability > threshold`` separates them; ``youden`` maximises sensitivity +
    specificity - 1, ``kappa`` maximises Cohen's kappa.
    """
    if criterion not in ("youden", "kappa"):
        raise ValueError(f"criterion must be 'youden' or 'kappa', got {criterion!r}")
    values = np.unique(studies["probability"].to_numpy(dtype=float))
    candidates = np.concatenate([[0.0], (values[:-1] + values[1:]) / 2, [1.0]])
    labels = studies["label"].to_numpy().astype(int)
    scores = []
    for threshold in candidates:
        predicted = (studies["probability"].to_numpy() > threshold).astype(int)
        if criterion == "kappa":
            scores.append(skm.cohen_kappa_score(labels, predicted) if len(np.unique(predicted)) > 1 else -1.0)
        else:
            tpr = predicted[labels == 1].mean() if (labels == 1).any() else 0.0
            tnr = 1 - predicted[labels == 0].mean() if (labels == 0).any() else 0.0
            scores.append(tpr + tnr - 1)
    return float(candidates[int(np.argmax(scores))])


def ensemble(predictions: list[pd.DataFrame]) -> pd.DataFrame:
    """Mean of several runs' image probabilities (the paper's ensemble), aligned by image."""
    if not predictions:
        raise ValueError("An ensemble needs at least one run.")
    keys = ["relpath", "study_path", "study_type", "patient", "view", "label", "subset"]
    keys = [k for k in keys if k in predictions[0].columns]
    base = predictions[0][keys].reset_index(drop=True)
    stacked = []
    for frame in predictions:
        aligned = base.merge(frame[["relpath", "probability"]], on="relpath", how="left", validate="one_to_one")
        if aligned["probability"].isna().any():
            raise ValueError("The runs of an ensemble must predict the same images.")
        stacked.append(aligned["probability"].to_numpy())
    return base.assign(probability=np.mean(stacked, axis=0))


def export_submission(studies: pd.DataFrame, path: str | os.PathLike, *, threshold: float = 0.5, split: str = "valid") -> Path:
    """Write study predictions in the official MURA format: ``<study path>/,<0|1>``, no header."""
    path = Path(path)
    lines = []
    for study_path, probability in zip(studies["study_path"], studies["probability"]):
        if not study_path.startswith(f"{split}/"):
            raise ValueError(f"{study_path} is not a {split} study.")
        lines.append(f"{DATASET_DIRNAME}/{study_path}/,{int(probability > threshold)}\n")
    path.write_text("".join(lines))
    return path


def score_submission(submission: str | os.PathLike, labeled_studies: str | os.PathLike) -> pd.DataFrame:
    """Cohen's kappa per study type and overall for a submission file, as the official scorer
    computes it, with a bootstrap interval over studies instead of its too-narrow one."""
    predicted = pd.read_csv(submission, header=None, names=["study", "prediction"])
    truth = pd.read_csv(labeled_studies, header=None, names=["study", "label"])
    merged = truth.merge(predicted, on="study", how="left", validate="one_to_one")
    if merged["prediction"].isna().any():
        missing = merged.loc[merged["prediction"].isna(), "study"]
        raise ValueError(f"The submission lacks {len(missing)} studies, e.g. {missing.iloc[0]}")
    extra = set(predicted["study"]) - set(truth["study"])
    if extra:
        raise ValueError(f"The submission has {len(extra)} studies not in the labels, e.g. {sorted(extra)[0]}")
    merged["study_type"] = merged["study"].str.split("/").str[2]
    rows = []
    for name, group in [*merged.groupby("study_type"), ("overall", merged)]:
        kappa = skm.cohen_kappa_score(group["label"], group["prediction"].astype(int))
        low, high = bootstrap_interval(group["label"], group["prediction"], "kappa", threshold=0.5)
        rows.append({"study_type": name, "studies": len(group), "kappa": kappa, "kappa_low": low, "kappa_high": high})
    return pd.DataFrame(rows).set_index("study_type")


def roc_points(studies: pd.DataFrame) -> pd.DataFrame:
    fpr, tpr, thresholds = skm.roc_curve(studies["label"], studies["probability"])
    return pd.DataFrame({"false_positive_rate": fpr, "true_positive_rate": tpr, "threshold": thresholds})


def with_intervals(table: pd.DataFrame, metrics=("auroc", "kappa", "sensitivity", "specificity"), digits: int = 3):
    """A metrics table for reading (a styled table): each metric as ``estimate (low to high)``,
    its 95% bootstrap interval in brackets, with word headers (``tables.format_table``)."""
    from .tables import column_words, format_table

    shown = pd.DataFrame(index=table.index)
    if "studies" in table:
        shown["studies"] = table["studies"]
    for metric in metrics:
        if metric not in table:
            continue
        shown[f"{column_words(metric)} (95% interval)"] = [
            "n/a" if np.isnan(value) else f"{value:.{digits}f}" + ("" if np.isnan(low) else f" ({low:.{digits}f} to {high:.{digits}f})")
            for value, low, high in zip(table[metric], table[f"{metric}_low"], table[f"{metric}_high"])
        ]
    shown.index.name = "study type"
    return format_table(shown, digits=digits)


PUBLISHED_GROUP = "MURA hidden test set (Rajpurkar et al., 2017)"
DATA_GROUPS = {
    "mura": "this build: MURA-v1.1 validation split",
    "synthetic": "this build: synthetic radiographs (a different data set)",
}


def kappa_beside_paper(table: pd.DataFrame, label: str = "this model", *, data_source: str = "mura") -> pd.DataFrame:
    """This run's kappa per study type beside the paper's radiologists and model.

    The columns form two labelled groups: the published figures, and this build's kappa
    titled with the data it was measured on (``data_source``: ``"mura"`` or ``"synthetic"``),
    so that a kappa measured on synthetic images never reads as a column of the paper's.
    """
    if data_source not in DATA_GROUPS:
        raise ValueError(f"data_source must be one of {tuple(DATA_GROUPS)}, got {data_source!r}")
    ours = table["kappa"].rename(label).reindex(PAPER_KAPPA.index).to_frame()
    published = PAPER_KAPPA.copy()
    published.columns = pd.MultiIndex.from_product([[PUBLISHED_GROUP], published.columns])
    ours.columns = pd.MultiIndex.from_product([[DATA_GROUPS[data_source]], ours.columns])
    return published.join(ours, how="left")
