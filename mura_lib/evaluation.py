"""Study-level evaluation: aggregation, metrics with bootstrap intervals, paired comparisons of
two models on the same studies, the paper's reference results, ensembles, and the official
submission format with its scorer.

Point estimates come from scikit-learn.  The bootstrap resamples studies with
``scipy.stats.bootstrap``; for speed its statistics are vectorised numpy versions of the same
metrics, tested against scikit-learn.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats
from sklearn import metrics as skm

from .dataset import DATASET_DIRNAME, STUDY_TYPES
from .scoring import (  # noqa: F401 (re-exported: evaluation is the chapters' one import)
    AGGREGATIONS,
    aggregate_studies,
    constant_predictions,
    is_constant,
    study_metrics,
    study_type_metrics,
    study_type_scores,
)

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


def study_type_name(study_type: str) -> str:
    """A study type as a reader names it: ``XR_SHOULDER`` as ``shoulder``; other labels (``overall``)
    as they are."""
    return str(study_type).removeprefix("XR_").lower()


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
    return _kappa_counts(*_confusion(labels, predicted))


def _kappa_counts(tp, tn, fp, fn):
    """Cohen's kappa from the four counts of a confusion matrix (arrays allowed)."""
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


def percentile_bootstrap(data, statistic, *, paired: bool, n_resamples: int, confidence: float, seed: int):
    """``scipy.stats.bootstrap`` as the thesis uses it everywhere: a vectorised statistic, the
    percentile method and a seeded generator; returns the interval's ``(low, high)`` (arrays for a
    statistic with several values).  ``paired`` resamples the rows of all arrays together (one set
    of studies); otherwise each array on its own."""
    result = stats.bootstrap(
        data,
        statistic,
        paired=paired,
        vectorized=True,
        n_resamples=n_resamples,
        confidence_level=confidence,
        method="percentile",
        random_state=np.random.default_rng(seed),
    )
    return result.confidence_interval.low, result.confidence_interval.high


def bootstrap_interval(
    labels,
    probabilities,
    metric: str,
    *,
    threshold: float = 0.5,
    n_resamples: int = 1000,
    confidence_level: float = 0.95,
    seed: int = 0,
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
    low, high = percentile_bootstrap(
        (labels, scores), statistic, paired=True, n_resamples=n_resamples, confidence=confidence_level, seed=seed
    )
    return float(low), float(high)


def metrics_table(
    studies: pd.DataFrame,
    *,
    threshold: float = 0.5,
    n_resamples: int = 1000,
    seed: int = 0,
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
            low, high = bootstrap_interval(
                group["label"], group["probability"], metric, threshold=threshold, n_resamples=n_resamples, seed=seed
            )
            row.update({metric: point[metric], f"{metric}_low": low, f"{metric}_high": high})
        rows.append(row)
    return pd.DataFrame(rows).set_index("study_type")


# --- paired comparisons of two models scored on the same studies ----------------------------

MINUS = "\u2212"  # the typographic minus sign, for numbers in sentences and tables


def delong_test(labels, scores_a, scores_b, *, confidence: float = 0.95) -> dict:
    """DeLong et al. (1988) test of the difference between two correlated AUROCs.

    Both models score the same studies, so their AUROCs share sampling noise; the test's variance
    of the difference accounts for that covariance.  The structural components are computed with
    the fast midrank algorithm of Sun & Xu (2014): average ranks within the abnormal studies,
    within the normal studies and over all studies.  Tied scores count half, as in scikit-learn.

    Returns the two AUROCs, their ``difference`` (a - b), its standard error ``se``, the
    statistic ``z``, the two-sided ``p_value`` and the normal interval ``low`` to ``high``.
    Identical scores give a difference of 0 with p = 1.
    """
    labels = np.asarray(labels)
    one_per_study = labels.ndim == np.ndim(scores_a) == np.ndim(scores_b) == 1
    if not one_per_study or not len(labels) == len(scores_a) == len(scores_b):
        raise ValueError(
            f"labels and both score arrays must have one value per study; got the shapes {labels.shape}, "
            f"{np.shape(scores_a)} and {np.shape(scores_b)}"
        )
    scores = np.vstack([np.asarray(scores_a, dtype=float), np.asarray(scores_b, dtype=float)])
    if not np.isin(labels, (0, 1)).all():
        raise ValueError(f"labels must be 0 (normal) or 1 (abnormal); got the values {sorted(set(labels.tolist()))}")
    if not np.isfinite(scores).all():
        raise ValueError("The scores contain NaN or infinite values; DeLong's test needs a finite score per study.")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must lie between 0 and 1, got {confidence}")
    positive = labels.astype(int) == 1
    m, n = int(positive.sum()), int((~positive).sum())
    if m == 0 or n == 0:
        raise ValueError(f"An AUROC needs abnormal and normal studies; got {m} abnormal and {n} normal.")
    abnormal, normal = scores[:, positive], scores[:, ~positive]
    within_abnormal = stats.rankdata(abnormal, axis=1)
    within_normal = stats.rankdata(normal, axis=1)
    overall = stats.rankdata(np.hstack([abnormal, normal]), axis=1)
    auroc = (overall[:, :m].sum(axis=1) - m * (m + 1) / 2) / (m * n)
    # Per abnormal study: the share of normal studies it outscores; per normal study: the share
    # of abnormal studies that outscore it (ties counting half in both).
    abnormal_components = (overall[:, :m] - within_abnormal) / n
    normal_components = 1 - (overall[:, m:] - within_normal) / m
    difference = float(auroc[0] - auroc[1])
    if m > 1 and n > 1:
        covariance = np.cov(abnormal_components) / m + np.cov(normal_components) / n
        variance = covariance[0, 0] + covariance[1, 1] - 2 * covariance[0, 1]
        se = float(np.sqrt(max(variance, 0.0)))
    else:  # one study in a class: its spread, hence the variance, cannot be estimated
        se = float("nan")
    if se > 0:
        z = difference / se
    elif difference == 0:
        z = 0.0
    else:
        z = float("nan")
    half_width = stats.norm.ppf(0.5 + confidence / 2) * se
    return {
        "auroc_a": float(auroc[0]),
        "auroc_b": float(auroc[1]),
        "difference": difference,
        "se": se,
        "z": float(z),
        "p_value": float(2 * stats.norm.sf(abs(z))),
        "low": float(difference - half_width),
        "high": float(difference + half_width),
    }


def _paired_differences(labels, scores_a, scores_b, predicted_a, predicted_b, axis=-1):
    """AUROC and kappa differences (a - b) on the same resample of studies, stacked."""
    return np.stack(
        [
            _auroc(labels, scores_a, axis) - _auroc(labels, scores_b, axis),
            _kappa(labels, predicted_a, axis) - _kappa(labels, predicted_b, axis),
        ]
    )


def _signed(value: float, digits: int = 3) -> str:
    """``+0.022`` or ``−0.004`` (typographic minus); ``n/a`` for NaN."""
    if not np.isfinite(value):
        return "n/a"
    return f"{value + 0.0:+.{digits}f}".replace("-", MINUS)


def _plain(value: float, digits: int = 3) -> str:
    if not np.isfinite(value):
        return "n/a"
    return f"{value + 0.0:.{digits}f}".replace("-", MINUS)


def _p_text(p: float) -> str:
    """A p-value for reading: ``< 0.001``, else two decimals (three below 0.01)."""
    if not np.isfinite(p):
        return "n/a"
    if p < 0.001:
        return "< 0.001"
    return f"{p:.3f}" if p < 0.01 else f"{p:.2f}"


def _percent(confidence: float) -> str:
    return f"{confidence * 100:.4g}%"


def _verdict(low: float, high: float) -> str:
    if low > 0:
        return "higher"
    if high < 0:
        return "lower"
    return "undetermined"


@dataclass(frozen=True, kw_only=True)
class Comparison:
    """Model A against model B on the same studies: point estimates, paired bootstrap intervals
    of the differences (a - b) and DeLong's p-value for the AUROC difference."""

    name_a: str = "A"
    name_b: str = "B"
    studies: int
    auroc_a: float
    auroc_b: float
    auroc_diff: float
    auroc_low: float
    auroc_high: float
    delong_p: float
    kappa_a: float
    kappa_b: float
    kappa_diff: float
    kappa_low: float
    kappa_high: float
    confidence: float = 0.95

    @property
    def verdict(self) -> str:
        """``higher`` or ``lower`` when the AUROC difference's interval excludes 0, else
        ``undetermined`` (the word comparisons of configurations use too)."""
        return _verdict(self.auroc_low, self.auroc_high)

    @property
    def kappa_verdict(self) -> str:
        """As ``verdict``, for the kappa difference."""
        return _verdict(self.kappa_low, self.kappa_high)

    def to_dict(self) -> dict:
        return {**asdict(self), "verdict": self.verdict, "kappa_verdict": self.kappa_verdict}

    def sentence(self, metric: str = "auroc") -> str:
        """A clause for the text, e.g. ``AUROC 0.812 vs 0.790, difference +0.022 (95% paired
        interval −0.004 to +0.047, DeLong p = 0.09): undetermined``."""
        if metric not in ("auroc", "kappa"):
            raise ValueError(f"metric must be 'auroc' or 'kappa', got {metric!r}")
        value = {key: getattr(self, f"{metric}_{key}") for key in ("a", "b", "diff", "low", "high")}
        verdict = self.verdict if metric == "auroc" else self.kappa_verdict
        if verdict != "undetermined":
            verdict = f"{self.name_a} {verdict}"
        label = "AUROC" if metric == "auroc" else "Cohen's kappa"
        p = self.delong_p
        test = "" if metric == "kappa" else ", DeLong p " + ("< 0.001" if p < 0.001 else f"= {_p_text(p)}")
        return (
            f"{label} {_plain(value['a'])} vs {_plain(value['b'])}, "
            f"difference {_signed(value['diff'])} ({_percent(self.confidence)} paired interval "
            f"{_signed(value['low'])} to {_signed(value['high'])}{test}): {verdict}"
        )


STUDY_TABLE_COLUMNS = ("study_path", "label", "probability")


def check_study_table(frame: pd.DataFrame, name: str) -> None:
    """Raise a ValueError that names ``name`` unless ``frame`` is a study table (one row per
    study, with the columns of :data:`STUDY_TABLE_COLUMNS`, as ``aggregate_studies`` makes it)."""
    missing = set(STUDY_TABLE_COLUMNS) - set(frame.columns)
    if missing:
        raise ValueError(
            f"The study table of {name} lacks the columns {sorted(missing)}; pass study tables as made by aggregate_studies."
        )
    repeated = frame["study_path"].duplicated()
    if repeated.any():
        raise ValueError(
            f"The study table of {name} lists {int(repeated.sum())} studies more than once, e.g. "
            f"{frame.loc[repeated, 'study_path'].iloc[0]}; aggregate image predictions to one row per study "
            "with aggregate_studies first."
        )


def compare_paired(
    a: pd.DataFrame,
    b: pd.DataFrame,
    *,
    n_resamples: int = 1000,
    seed: int = 0,
    confidence: float = 0.95,
    threshold: float = 0.5,
    name_a: str = "A",
    name_b: str = "B",
) -> Comparison:
    """Compare two models scored on the same test studies (tables from ``aggregate_studies``).

    The tables are matched on ``study_path``.  One set of bootstrap resamples of studies scores
    both models on each resample, so the percentile intervals of the AUROC and kappa differences
    keep the correlation between the models; intervals of each model alone would overstate the
    uncertainty of their difference.  DeLong's test gives a p-value for the AUROC difference.
    Kappa uses the decision rule ``probability > threshold`` for both models.
    """
    columns = list(STUDY_TABLE_COLUMNS)
    for name, frame in ((name_a, a), (name_b, b)):
        check_study_table(frame, name)
    merged = a[columns].merge(b[columns], on="study_path", how="inner", suffixes=("_a", "_b"))
    if len(merged) != len(a) or len(merged) != len(b):
        only_a = sorted(set(a["study_path"]) - set(merged["study_path"]))
        only_b = sorted(set(b["study_path"]) - set(merged["study_path"]))
        example = f"e.g. {only_a[0]} only in {name_a}" if only_a else f"e.g. {only_b[0]} only in {name_b}"
        raise ValueError(
            f"{name_a} has {len(a)} studies and {name_b} has {len(b)}, of which {len(merged)} are in both "
            f"({example}); a paired comparison needs both models scored on the same studies."
        )
    disagree = merged["label_a"].astype(int) != merged["label_b"].astype(int)
    if disagree.any():
        raise ValueError(
            f"{int(disagree.sum())} of the {len(merged)} studies carry different labels in the tables of "
            f"{name_a} and {name_b}, e.g. {merged.loc[disagree, 'study_path'].iloc[0]}."
        )
    merged = merged.sort_values("study_path", ignore_index=True)
    labels = merged["label_a"].to_numpy().astype(int)
    scores_a = merged["probability_a"].to_numpy(dtype=float)
    scores_b = merged["probability_b"].to_numpy(dtype=float)
    point_a = study_metrics(labels, scores_a, threshold)
    point_b = study_metrics(labels, scores_b, threshold)
    delong = delong_test(labels, scores_a, scores_b, confidence=confidence)
    predicted_a, predicted_b = (scores_a > threshold).astype(float), (scores_b > threshold).astype(float)
    low, high = percentile_bootstrap(
        (labels.astype(float), scores_a, scores_b, predicted_a, predicted_b),
        _paired_differences,
        paired=True,
        n_resamples=n_resamples,
        confidence=confidence,
        seed=seed,
    )
    return Comparison(
        name_a=name_a,
        name_b=name_b,
        studies=len(merged),
        auroc_a=point_a["auroc"],
        auroc_b=point_b["auroc"],
        auroc_diff=point_a["auroc"] - point_b["auroc"],
        auroc_low=float(low[0]),
        auroc_high=float(high[0]),
        delong_p=delong["p_value"],
        kappa_a=point_a["kappa"],
        kappa_b=point_b["kappa"],
        kappa_diff=point_a["kappa"] - point_b["kappa"],
        kappa_low=float(low[1]),
        kappa_high=float(high[1]),
        confidence=confidence,
    )


def table_interval(comparisons: list, caller: str) -> str:
    """The interval heading of a table of comparisons (``95% interval``), after checking that
    there is at least one comparison and that all share one confidence level."""
    if not comparisons:
        raise ValueError(f"{caller} needs at least one comparison.")
    levels = {c.confidence for c in comparisons}
    if len(levels) > 1:
        raise ValueError(f"The comparisons use different confidence levels {sorted(levels)}; a table needs one level.")
    return f"{_percent(levels.pop())} interval"


def difference_text(difference: float, low: float, high: float) -> str:
    """A difference with its interval in a table cell: ``+0.022 (−0.004 to +0.047)``, the interval
    held together by non-breaking spaces, so that a narrow cell breaks only before the bracket."""
    return f"{_signed(difference)} ({_signed(low)}\u00a0to\u00a0{_signed(high)})"


def comparison_name(name_a: str, name_b: str) -> str:
    """The first column of a table of comparisons: ``A vs B``."""
    return f"{name_a} vs {name_b}"


def comparison_table(comparisons: list[Comparison]) -> pd.DataFrame:
    """Paired comparisons for reading, the verdicts first: one row each, with the comparison, the
    AUROC verdict, the AUROC difference with its interval and the kappa verdict.  Four columns,
    so that a phone shows the verdict beside the name; :func:`comparison_details` holds the rest."""
    return verdict_table(comparisons, "AUROC difference", "comparison_table")


def verdict_table(comparisons, difference: str, caller: str) -> pd.DataFrame:
    """The four columns of a comparison table (of two runs or of two configurations): the
    comparison, its AUROC verdict, the ``difference`` column with its interval, the kappa verdict."""
    interval = table_interval(comparisons, caller)
    return pd.DataFrame(
        [
            {
                "Comparison": comparison_name(c.name_a, c.name_b),
                "Verdict (AUROC)": c.verdict,
                f"{difference} ({interval})": difference_text(c.auroc_diff, c.auroc_low, c.auroc_high),
                "Verdict (kappa)": c.kappa_verdict,
            }
            for c in comparisons
        ]
    )


def comparison_details(comparisons: list[Comparison]) -> pd.DataFrame:
    """The details of :func:`comparison_table`, one row per comparison in the same order: the
    studies compared, DeLong's p-value of the AUROC difference and the kappa difference with its
    interval."""
    interval = table_interval(comparisons, "comparison_details")
    return pd.DataFrame(
        [
            {
                "Comparison": comparison_name(c.name_a, c.name_b),
                "Studies": int(c.studies),
                "DeLong p": _p_text(c.delong_p),
                f"Kappa difference ({interval})": difference_text(c.kappa_diff, c.kappa_low, c.kappa_high),
            }
            for c in comparisons
        ]
    )


def seed_spread(values, confidence: float = 0.95) -> dict:
    """Mean and sample standard deviation of a metric over repeated runs (e.g. training seeds),
    with the chi-square interval of the standard deviation (which assumes normal values)."""
    values = np.asarray(values, dtype=float).ravel()
    if len(values) < 2:
        raise ValueError(f"A standard deviation needs at least two values; got {len(values)}.")
    if not np.isfinite(values).all():
        raise ValueError("The values contain NaN or infinite entries; pass one finite metric per run.")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must lie between 0 and 1, got {confidence}")
    n = len(values)
    sd = float(values.std(ddof=1))
    tail = (1 - confidence) / 2
    return {
        "n": n,
        "mean": float(values.mean()),
        "sd": sd,
        "sd_low": float(sd * np.sqrt((n - 1) / stats.chi2.ppf(1 - tail, n - 1))),
        "sd_high": float(sd * np.sqrt((n - 1) / stats.chi2.ppf(tail, n - 1))),
        "confidence": confidence,
    }


# --- operating point and calibration ----------------------------------------------------------

THRESHOLD_RULES = ("prevalence", "youden", "kappa")
# The rule the thesis uses: see :func:`choose_threshold`.
THRESHOLD_RULE = "prevalence"
# A run calls "far" from the prevalence a share of abnormal calls more than this many
# percentage points away from it (see :func:`calls_against_prevalence`).
FAR_FROM_PREVALENCE = 0.15
# A run has collapsed when fewer than this share of its test studies fall on one side.
COLLAPSED_MARGIN = 0.05
CALIBRATION_BINS = 10


def choose_threshold(studies: pd.DataFrame, criterion: str = THRESHOLD_RULE) -> float:
    """A decision threshold chosen on *validation* studies (never on the test set), for the rule
    ``probability > threshold``.

    The candidates are the points of the study-level ROC curve (scikit-learn's ``roc_curve``,
    every distinct probability); each is returned as the midpoint between its probability and
    the next lower one, so that ``probability > threshold`` calls abnormal the same studies as
    the curve's ``probability >= point``.  ``criterion``:

    - ``prevalence`` (the thesis's rule): the point whose share of studies called abnormal is
      closest to the share of abnormal studies among them.  The decisions then have the
      prevalence the data have, whatever the model's calibration, so that Cohen's kappa, which
      rewards agreement beyond the agreement of the two marginal shares, measures the ranking
      of the studies and not where the probabilities happen to lie.  It is a quantile of the
      validation probabilities, hence stable on a small validation subset, where the arg-max of
      a jagged empirical curve is not.
    - ``youden``: the point that maximises Youden's J, sensitivity + specificity - 1.
    - ``kappa``: the point that maximises Cohen's kappa.

    Ties go to the higher threshold (fewer abnormal calls).
    """
    if criterion not in THRESHOLD_RULES:
        raise ValueError(f"criterion must be one of {THRESHOLD_RULES}, got {criterion!r}")
    labels = studies["label"].to_numpy().astype(int)
    probability = studies["probability"].to_numpy(dtype=float)
    if len(np.unique(labels)) < 2:
        raise ValueError("A threshold is chosen on studies of both classes; these have one.")
    fpr, tpr, points = skm.roc_curve(labels, probability, drop_intermediate=False)
    positives, negatives = int(labels.sum()), int(len(labels) - labels.sum())
    tp, fp = tpr * positives, fpr * negatives
    called = (tp + fp) / len(labels)
    if criterion == "prevalence":
        score = -np.abs(called - positives / len(labels))
    elif criterion == "youden":
        score = tpr - fpr
    else:
        tn, fn = negatives - fp, positives - tp
        score = np.nan_to_num(_kappa_counts(tp, tn, fp, fn), nan=-1.0)
    best = int(np.argmax(np.round(score, 12)))
    if best == 0:  # nothing called abnormal (roc_curve's first point lies above every probability)
        return 1.0
    lower = points[best + 1] if best + 1 < len(points) else 0.0
    return float((points[best] + lower) / 2)


def _difference_verdict(low: float, high: float) -> str:
    if low > 0:
        return "higher"
    if high < 0:
        return "lower"
    return "undetermined"


def operating_point(
    validation: pd.DataFrame,
    test: pd.DataFrame,
    *,
    criterion: str = THRESHOLD_RULE,
    default: float = 0.5,
    n_resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> dict:
    """Cohen's kappa on the ``test`` studies at the ``default`` threshold and at the threshold
    chosen on the ``validation`` studies by ``criterion`` (:func:`choose_threshold`).

    Returns the ``threshold``, ``kappa_default`` and ``kappa_chosen``, their difference
    ``kappa_diff`` (chosen - default) with a paired percentile bootstrap interval over the test
    studies (``kappa_low``, ``kappa_high``) and its ``verdict`` (``higher``, ``lower`` or
    ``undetermined``: whether that interval excludes zero), the shares of test studies called
    abnormal at either threshold (``called_default``, ``called_chosen``), the test
    ``prevalence``, the ``flag`` of the calls at the default threshold
    (:func:`calls_against_prevalence`) and the sensitivity and specificity at either threshold.
    """
    threshold = choose_threshold(validation, criterion)
    labels = test["label"].to_numpy().astype(float)
    probability = test["probability"].to_numpy(dtype=float)
    at_default = study_metrics(labels, probability, default)
    at_chosen = study_metrics(labels, probability, threshold)
    called_default = (probability > default).astype(float)
    called_chosen = (probability > threshold).astype(float)

    def difference(labels, chosen, fixed, axis=-1):
        return _kappa(labels, chosen, axis) - _kappa(labels, fixed, axis)

    if np.array_equal(called_chosen, called_default):
        low = high = 0.0  # the same decisions: no difference to estimate
    else:
        low, high = percentile_bootstrap(
            (labels, called_chosen, called_default),
            difference,
            paired=True,
            n_resamples=n_resamples,
            confidence=confidence,
            seed=seed,
        )
    low, high = float(low), float(high)
    return {
        "criterion": criterion,
        "threshold": threshold,
        "default": float(default),
        "kappa_default": at_default["kappa"],
        "kappa_chosen": at_chosen["kappa"],
        "kappa_diff": float(at_chosen["kappa"] - at_default["kappa"]),
        "kappa_low": low,
        "kappa_high": high,
        "verdict": _difference_verdict(low, high),
        "called_default": float(called_default.mean()),
        "called_chosen": float(called_chosen.mean()),
        "prevalence": float(labels.mean()),
        "flag": calls_against_prevalence(test, threshold=default)["flag"],
        "sensitivity_default": at_default["sensitivity"],
        "specificity_default": at_default["specificity"],
        "sensitivity_chosen": at_chosen["sensitivity"],
        "specificity_chosen": at_chosen["specificity"],
        "validation_studies": int(len(validation)),
    }


def _bin_index(probability, n_bins: int):
    """The equal-width bin of each probability, as ``sklearn.calibration.calibration_curve``
    with ``strategy="uniform"`` assigns them (bins closed on the right but the first)."""
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    return np.searchsorted(edges[1:-1], probability)


def reliability_curve(studies: pd.DataFrame, n_bins: int = CALIBRATION_BINS) -> pd.DataFrame:
    """The reliability curve of study probabilities: ``n_bins`` equal-width bins of the predicted
    probability, and for each bin with studies its edges (``low``, ``high``), the mean predicted
    probability (``predicted``), the share of abnormal studies (``observed``) and the number of
    ``studies``.  ``predicted`` and ``observed`` are scikit-learn's ``calibration_curve``."""
    from sklearn.calibration import calibration_curve

    labels = studies["label"].to_numpy().astype(int)
    probability = studies["probability"].to_numpy(dtype=float)
    observed, predicted = calibration_curve(labels, probability, n_bins=n_bins, strategy="uniform")
    bins = _bin_index(probability, n_bins)
    counts = np.bincount(bins, minlength=n_bins)
    present = np.flatnonzero(counts)
    return pd.DataFrame(
        {
            "low": present / n_bins,
            "high": (present + 1) / n_bins,
            "predicted": predicted,
            "observed": observed,
            "studies": counts[present],
        }
    )


def expected_calibration_error(labels, probabilities, n_bins: int = CALIBRATION_BINS) -> float:
    """Expected calibration error of the probability of *abnormal*: ``n_bins`` equal-width bins
    of the predicted probability (those of :func:`reliability_curve`), and the mean over studies
    of the gap between their bin's mean predicted probability and its share of abnormal
    studies, ``sum_b (n_b / n) |predicted_b - observed_b|``."""
    labels = np.asarray(labels, dtype=float)
    probabilities = np.asarray(probabilities, dtype=float)
    bins = _bin_index(probabilities, n_bins)
    counts = np.bincount(bins, minlength=n_bins)
    predicted = np.bincount(bins, weights=probabilities, minlength=n_bins)
    observed = np.bincount(bins, weights=labels, minlength=n_bins)
    return float(np.abs(predicted - observed).sum() / counts.sum())


def _overconfidence(labels, probabilities, axis=-1):
    """Mean confidence minus accuracy of the decisions at 0.5 (vectorised over resamples)."""
    correct = np.where(probabilities > 0.5, labels, 1 - labels)
    confidence = np.where(probabilities > 0.5, probabilities, 1 - probabilities)
    return (confidence - correct).mean(axis=axis)


def calibration(
    studies: pd.DataFrame,
    *,
    n_bins: int = CALIBRATION_BINS,
    n_resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> dict:
    """How well the study probabilities are calibrated.

    ``brier``: scikit-learn's Brier score (the mean squared difference between probability and
    label; 0.25 for a constant 0.5).  ``ece``: :func:`expected_calibration_error` with ``n_bins``
    equal-width bins.  ``overconfidence``: the mean over studies of the confidence of the
    decision at 0.5 (the probability of the class chosen) minus whether it was right, zero in
    expectation for calibrated probabilities; positive when the probabilities are more extreme
    than the outcomes (over-confident), negative when less (under-confident).  With it, its
    percentile bootstrap interval over studies (``overconfidence_low``/``_high``) and the
    ``reading``: ``over`` or ``under`` when the interval excludes zero, else ``undetermined``.
    ``mean_probability`` and ``prevalence`` compare the calibration in the large.
    """
    labels = studies["label"].to_numpy().astype(float)
    probability = studies["probability"].to_numpy(dtype=float)
    low, high = percentile_bootstrap(
        (labels, probability),
        _overconfidence,
        paired=True,
        n_resamples=n_resamples,
        confidence=confidence,
        seed=seed,
    )
    low, high = float(low), float(high)
    return {
        "brier": float(skm.brier_score_loss(labels.astype(int), probability)),
        "ece": expected_calibration_error(labels, probability, n_bins),
        "bins": int(n_bins),
        "overconfidence": float(_overconfidence(labels, probability)),
        "overconfidence_low": low,
        "overconfidence_high": high,
        "reading": "over" if low > 0 else "under" if high < 0 else "undetermined",
        "mean_probability": float(probability.mean()),
        "prevalence": float(labels.mean()),
    }


def calls_against_prevalence(
    studies: pd.DataFrame,
    *,
    threshold: float = 0.5,
    far: float = FAR_FROM_PREVALENCE,
    margin: float = COLLAPSED_MARGIN,
) -> dict:
    """The share of ``studies`` called abnormal at ``threshold`` against their prevalence.

    ``flag`` is ``collapsed`` when the probabilities are (nearly) constant or fewer than
    ``margin`` of the studies fall on one side of the threshold, ``far`` when the share called
    abnormal lies more than ``far`` (15 percentage points) from the prevalence, else ``none``.
    A fixed distance and not a binomial interval of the prevalence: even a calibrated model
    does not call exactly the prevalence abnormal at 0.5 (the share depends on how its
    probabilities spread around 0.5), so an interval that narrows with the number of studies
    would flag every run of a large test set and none of a small one; 15 points, a third of
    MURA's share of abnormal studies, is a departure that changes kappa whatever the ranking.
    """
    labels = studies["label"].to_numpy().astype(float)
    probability = studies["probability"].to_numpy(dtype=float)
    called = float((probability > threshold).mean())
    prevalence = float(labels.mean())
    if probability.max() - probability.min() < 1e-6 or not margin <= called <= 1 - margin:
        flag = "collapsed"
    elif abs(called - prevalence) > far:
        flag = "far"
    else:
        flag = "none"
    return {"called": called, "prevalence": prevalence, "difference": called - prevalence, "flag": flag}


def calls_table(
    studies: dict[object, pd.DataFrame], validation: dict[object, pd.DataFrame] | None = None, **options
) -> pd.DataFrame:
    """One row per named set of test study predictions: the share ``Called abnormal`` at 0.5 (a
    percentage) and its ``Flag`` (:func:`calls_against_prevalence`: ``far``, ``collapsed`` or
    blank); with ``validation`` (the same names' validation study predictions), also Cohen's
    kappa on the test studies at 0.5 and at the threshold chosen on the validation studies
    (``Kappa at chosen threshold``, :func:`choose_threshold` with the thesis's rule)."""
    rows = {}
    for name, frame in studies.items():
        calls = calls_against_prevalence(frame, **options)
        row = {"Called abnormal": f"{calls['called']:.0%}", "Flag": "" if calls["flag"] == "none" else calls["flag"]}
        if validation is not None:
            threshold = choose_threshold(validation[name])
            row["Kappa at 0.5"] = study_metrics(frame["label"], frame["probability"], options.get("threshold", 0.5))[
                "kappa"
            ]
            row["Kappa at chosen threshold"] = study_metrics(frame["label"], frame["probability"], threshold)["kappa"]
        rows[name] = row
    return pd.DataFrame.from_dict(rows, orient="index")


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


def export_submission(
    studies: pd.DataFrame, path: str | os.PathLike, *, threshold: float = 0.5, split: str = "valid"
) -> Path:
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


PUBLISHED_GROUP = "MURA hidden test set (Rajpurkar et al., 2017)"
DATA_GROUPS = {
    "mura": "this build: MURA-v1.1 validation split",
    "synthetic": "this build: synthetic radiographs (a different data set)",
}


def kappa_beside_paper(table: pd.DataFrame, label: str = "this model", *, data_source: str = "mura") -> pd.DataFrame:
    """This run's kappa per study type beside the paper's radiologists and model, the study types
    named as a reader names them (``elbow``, ..., ``overall``).

    The columns form two labelled groups: the published figures, and this build's kappa
    titled with the data it was measured on (``data_source``: ``"mura"`` or ``"synthetic"``),
    so that a kappa measured on synthetic images never reads as a column of the paper's.  Where
    ``table`` has ``kappa_low`` and ``kappa_high`` (:func:`metrics_table`), this build's group
    also has their ``95% interval`` (the paper gives none).
    """
    if data_source not in DATA_GROUPS:
        raise ValueError(f"data_source must be one of {tuple(DATA_GROUPS)}, got {data_source!r}")
    ours = table["kappa"].rename(label).reindex(PAPER_KAPPA.index).to_frame()
    if {"kappa_low", "kappa_high"} <= set(table.columns):
        bounds = table[["kappa_low", "kappa_high"]].reindex(PAPER_KAPPA.index)
        ours["95% interval"] = [
            "n/a" if pd.isna(low) or pd.isna(high) else f"{low:.3f} to {high:.3f}".replace("-", MINUS)
            for low, high in zip(bounds["kappa_low"], bounds["kappa_high"])
        ]
    published = PAPER_KAPPA.copy()
    published.columns = pd.MultiIndex.from_product([[PUBLISHED_GROUP], published.columns])
    ours.columns = pd.MultiIndex.from_product([[DATA_GROUPS[data_source]], ours.columns])
    joined = published.join(ours, how="left")
    joined.index = pd.Index([study_type_name(name) for name in joined.index], name="study type")
    return joined
