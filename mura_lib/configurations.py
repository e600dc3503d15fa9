"""Comparisons of two *configurations* (arms), each trained with several seeds and scored on the
same test studies.

A single training run per arm mixes the effect of the configuration with the luck of its seed:
on MURA a run's AUROC moves from seed to seed about as much as the effects measured.
Bouthillier et al. (2021, "Accounting for variance in machine learning benchmarks") show that
both sources, the sample of test studies and the training seed, have to enter the interval of a
comparison; Agarwal et al. (2021, "Deep reinforcement learning at the edge of the statistical
precipice") bootstrap over runs and warn that the few-run regime needs explicit care.

:func:`compare_configurations` estimates the difference of the configurations' mean AUROC and
mean Cohen's kappa (the mean over seeds of the study-level metric) with a two-level bootstrap
(Efron & Tibshirani, 1993): each resample draws test studies with replacement once, the same
studies for every run of both arms (paired across arms), and, independently within each arm,
that arm's seeds with replacement.  With few seeds the plain seed bootstrap is too narrow (a
bootstrap of the mean of k values has (k - 1)/k of the usual variance, and its spread ignores
that the seed variance itself is estimated from k - 1 degrees of freedom), so two corrections
are applied, measured by ``benchmarks/coverage_configurations.py``:

* each arm's seed deviations from the arm mean are stretched by sqrt(k / (k - 1)) before the seeds
  are drawn, which makes the bootstrap variance of the seed level unbiased;
* the seed part of each resample is multiplied by sqrt(nu / chi2_nu), chi2_nu a chi-square draw
  of its own, with nu = k_A + k_B - 2 the degrees of freedom of the seed variance pooled over the
  two arms.  A normal seed part becomes a Student t with nu degrees of freedom: the t-quantile
  widening for an estimated variance, built into the draws, so that one set of draws gives the
  interval at every level (as Holm's procedure needs) and a p-value that agrees with them.

Welch-Satterthwaite degrees of freedom (which allow different seed variances in the two arms)
cover as well but give intervals almost twice as wide with two seeds per arm; the pooled ones
assume that the two configurations' AUROCs scatter over seeds alike, as similar networks trained
on the same images do.

:func:`holm` applies Holm's (1979, "A simple sequentially rejective multiple test procedure")
step-down procedure to a family of comparisons, per metric; :func:`configuration_table` lays a
family out for reading, verdicts first, and :func:`configuration_details` gives the rest.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace

import numpy as np
import pandas as pd
from scipy import stats

from .evaluation import (
    STUDY_TABLE_COLUMNS,
    _auroc,
    _kappa,
    check_study_table,
    comparison_name,
    difference_text,
    table_interval,
    verdict_table,
)

METRICS = ("auroc", "kappa")
DIFFERENCE_BOUNDS = {"auroc": 1.0, "kappa": 2.0}  # the largest possible |A - B| of each metric
CORRECTIONS = ("plain", "rescaled", "welch", "pooled")
CORRECTION = "pooled"  # the one compare_configurations uses (see benchmarks/coverage_configurations.py)
DRAW_DECIMALS = 6  # the stored bootstrap differences are rounded to this many decimals


# --- every run's metrics on every resample of studies ---------------------------------------


def _resample_counts(rng: np.random.Generator, n_studies: int, n_resamples: int) -> np.ndarray:
    """How often each study is drawn in each resample (``n_resamples`` x ``n_studies``): a
    resample of studies with replacement, as counts."""
    picks = rng.integers(0, n_studies, size=(n_resamples, n_studies))
    offsets = (np.arange(n_resamples) * n_studies)[:, None]
    return np.bincount((picks + offsets).ravel(), minlength=n_resamples * n_studies).reshape(n_resamples, n_studies)


def _auroc_counts(labels: np.ndarray, scores: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """The AUROC of every run (rows of ``scores``) on every resample (rows of ``counts``).

    The same value as ``evaluation._auroc`` on the resampled studies, ties counting half, but
    computed from the counts: each run's studies are sorted once, and the weighted number of
    normal studies below (and tied with) each abnormal one comes from a cumulative sum, instead of
    ranking every resample anew (``_auroc`` takes about 2 s for 10 runs x 1000 resamples x 900
    studies, this about 0.05 s)."""
    labels = np.asarray(labels).astype(bool)
    scores = np.atleast_2d(np.asarray(scores, dtype=float))
    n = len(labels)
    # Integer counts; int32 is exact while 2 n^2 (the largest weighted pair count) fits.
    table = np.ascontiguousarray(np.asarray(counts).T, dtype=np.int32 if n < 30_000 else np.int64)
    positives = labels.astype(np.int64) @ table
    negatives = table.sum(axis=0, dtype=np.int64) - positives
    result = np.empty((len(scores), table.shape[1]))
    for row, run in enumerate(scores):
        order = np.argsort(run, kind="stable")
        ordered, abnormal = run[order], labels[order]
        starts_group = np.r_[True, ordered[1:] != ordered[:-1]]
        group = np.cumsum(starts_group) - 1
        group_start = np.flatnonzero(starts_group)
        group_end = np.r_[group_start[1:], n]
        weights = table[order]  # studies in score order x resamples
        normal_below = np.zeros((n + 1, weights.shape[1]), dtype=weights.dtype)
        np.cumsum(weights * ~abnormal[:, None], axis=0, out=normal_below[1:])
        where = np.flatnonzero(abnormal)
        # normal studies below an abnormal one, plus half of those tied with it, times two
        twice = normal_below[group_start[group[where]]] + normal_below[group_end[group[where]]]
        pairs = (weights[where] * twice).sum(axis=0, dtype=np.int64)
        with np.errstate(invalid="ignore", divide="ignore"):
            result[row] = 0.5 * pairs / (positives * negatives)
    return result


def _kappa_counts(labels: np.ndarray, predicted: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Cohen's kappa of every run's decisions (rows of ``predicted``, 0 or 1) on every resample
    (rows of ``counts``): ``evaluation._kappa`` on the resampled studies, from weighted counts."""
    labels = np.asarray(labels, dtype=float)
    predicted = np.atleast_2d(np.asarray(predicted, dtype=float))
    counts = np.asarray(counts, dtype=float)
    tp = counts @ (labels * predicted).T
    fp = counts @ ((1 - labels) * predicted).T
    fn = counts @ (labels * (1 - predicted)).T
    n = counts.sum(axis=1)[:, None]
    tn = n - tp - fp - fn
    observed = (tp + tn) / n
    expected = ((tp + fp) * (tp + fn) + (tn + fn) * (tn + fp)) / n**2
    with np.errstate(invalid="ignore", divide="ignore"):
        return ((observed - expected) / (1 - expected)).T


def _run_metrics(labels, probabilities, counts, threshold: float) -> dict:
    """Per metric: each run's value on the test studies (``runs``) and on every resample of
    them (``runs`` x ``resamples``)."""
    labels = np.asarray(labels, dtype=float)
    probabilities = np.atleast_2d(np.asarray(probabilities, dtype=float))
    predicted = (probabilities > threshold).astype(float)
    return {
        "auroc": (_auroc(labels, probabilities), _auroc_counts(labels, probabilities, counts)),
        "kappa": (
            _kappa(np.broadcast_to(labels, predicted.shape), predicted),
            _kappa_counts(labels, predicted, counts),
        ),
    }


# --- the two-level bootstrap ----------------------------------------------------------------


def _welch_df(point_a: np.ndarray, point_b: np.ndarray) -> float:
    """Welch-Satterthwaite degrees of freedom of the variance of a difference of two means of
    seeds; ``inf`` when neither arm's seeds vary."""
    share_a = np.var(point_a, ddof=1) / len(point_a)
    share_b = np.var(point_b, ddof=1) / len(point_b)
    denominator = share_a**2 / (len(point_a) - 1) + share_b**2 / (len(point_b) - 1)
    if not np.isfinite(denominator) or denominator <= 0:
        return float("inf")
    return float((share_a + share_b) ** 2 / denominator)


def _two_level_draws(
    resampled_a: np.ndarray,
    resampled_b: np.ndarray,
    picks_a: np.ndarray,
    picks_b: np.ndarray,
    chi_square: np.ndarray | None,
    *,
    correction: str = CORRECTION,
) -> np.ndarray:
    """The bootstrap differences (mean over A's drawn seeds minus mean over B's) from each run's
    metric on each resample of studies (``runs`` x ``resamples`` per arm), the seeds drawn in each
    resample (``resamples`` x ``k`` per arm, indices into the arm's runs) and the draws of
    ``chi2_nu / nu`` (one per resample; used by ``welch`` and ``pooled``).

    ``plain``: the two-level bootstrap as it is.  ``rescaled``: each arm's deviations from its
    mean on the resample stretched by sqrt(k / (k - 1)).  ``welch`` and ``pooled``: in addition,
    the seed part of each resample divided by sqrt(chi2_nu / nu), nu being Welch-Satterthwaite's
    or the pooled degrees of freedom.  With one seed in an arm the seed level is left out and
    only the studies are resampled."""
    if correction not in CORRECTIONS:
        raise ValueError(f"correction must be one of {CORRECTIONS}, got {correction!r}")
    mean_a, mean_b = resampled_a.mean(axis=0), resampled_b.mean(axis=0)
    studies = mean_a - mean_b
    if len(resampled_a) < 2 or len(resampled_b) < 2:
        return studies
    parts = []
    for resampled, mean, picks in ((resampled_a, mean_a, picks_a), (resampled_b, mean_b, picks_b)):
        k = len(resampled)
        deviations = (resampled - mean).T  # resamples x runs
        drawn = np.take_along_axis(deviations, picks, axis=1).mean(axis=1)
        parts.append(drawn if correction == "plain" else drawn * np.sqrt(k / (k - 1)))
    seeds = parts[0] - parts[1]
    if correction in ("welch", "pooled") and chi_square is not None:
        seeds = seeds / np.sqrt(chi_square)
    return studies + seeds


def _percentile_interval(draws: np.ndarray, level: float) -> tuple[float, float]:
    draws = draws[np.isfinite(draws)]
    if len(draws) == 0:
        return float("nan"), float("nan")
    low, high = np.quantile(draws, [(1 - level) / 2, (1 + level) / 2])
    return float(low), float(high)


def _bootstrap_p(draws: np.ndarray) -> float:
    """Two-sided bootstrap p-value of a difference of 0: twice the smaller share of resampled
    differences on either side of 0, at least 1 / (resamples + 1) and at most 1."""
    draws = draws[np.isfinite(draws)]
    if len(draws) == 0:
        return float("nan")
    p = 2 * min(np.mean(draws <= 0), np.mean(draws >= 0))
    return float(min(1.0, max(p, 1 / (len(draws) + 1))))


# --- the comparison ---------------------------------------------------------------------------


def _verdict(low: float, high: float, decided: bool) -> str:
    if decided and low > 0:
        return "higher"
    if decided and high < 0:
        return "lower"
    return "undetermined"


@dataclass(frozen=True, kw_only=True)
class ConfigurationComparison:
    """Configuration A against configuration B, each trained with several seeds and scored on the
    same studies: the mean over seeds of each arm's AUROC and kappa, the differences (a - b) with
    their two-level bootstrap intervals and p-values, and the probability that a seed of A beats
    a seed of B in AUROC.

    ``family``, ``*_level``, ``*_adj_low``/``*_adj_high`` and ``*_reached`` record a multiplicity
    adjustment (:func:`holm`): the level each verdict was decided at, the interval at that level,
    and whether the step-down reached the comparison.  Without adjustment they repeat the plain
    interval.  The bootstrap differences themselves (sorted, rounded) are kept outside the fields
    and travel in :meth:`to_dict`, so that :meth:`interval` and :func:`holm` work on comparisons
    read back with :meth:`from_dict`."""

    name_a: str = "A"
    name_b: str = "B"
    seeds_a: tuple
    seeds_b: tuple
    studies: int
    auroc_a: float
    auroc_b: float
    auroc_diff: float
    auroc_low: float
    auroc_high: float
    auroc_p: float
    kappa_a: float
    kappa_b: float
    kappa_diff: float
    kappa_low: float
    kappa_high: float
    kappa_p: float
    p_seed_beats: float
    seed_level: bool = True
    confidence: float = 0.95
    family: int = 1
    auroc_level: float | None = None
    kappa_level: float | None = None
    auroc_adj_low: float | None = None
    auroc_adj_high: float | None = None
    kappa_adj_low: float | None = None
    kappa_adj_high: float | None = None
    auroc_reached: bool = True
    kappa_reached: bool = True

    def __post_init__(self):
        object.__setattr__(self, "seeds_a", tuple(int(s) for s in self.seeds_a))
        object.__setattr__(self, "seeds_b", tuple(int(s) for s in self.seeds_b))
        for metric in METRICS:
            if getattr(self, f"{metric}_level") is None:
                object.__setattr__(self, f"{metric}_level", self.confidence)
            for end in ("low", "high"):
                if getattr(self, f"{metric}_adj_{end}") is None:
                    object.__setattr__(self, f"{metric}_adj_{end}", getattr(self, f"{metric}_{end}"))
        if not hasattr(self, "_draws"):
            object.__setattr__(self, "_draws", {})

    def _decided(self, metric: str) -> bool:
        return bool(self.seed_level and getattr(self, f"{metric}_reached"))

    @property
    def verdict(self) -> str:
        """``higher`` or ``lower`` when the (adjusted) interval of the AUROC difference lies above
        or below 0, else ``undetermined``; always ``undetermined`` without a seed level (one seed
        in an arm) or when Holm's step-down stopped before this comparison."""
        return _verdict(self.auroc_adj_low, self.auroc_adj_high, self._decided("auroc"))

    @property
    def kappa_verdict(self) -> str:
        """As ``verdict``, for the kappa difference."""
        return _verdict(self.kappa_adj_low, self.kappa_adj_high, self._decided("kappa"))

    @property
    def draws(self) -> dict:
        """The bootstrap differences per metric (sorted), or an empty dict when unknown."""
        return {metric: values.copy() for metric, values in self._draws.items()}

    def interval(self, metric: str, level: float) -> tuple[float, float]:
        """The percentile interval of the ``metric`` difference at confidence ``level``, from the
        stored bootstrap differences."""
        if metric not in METRICS:
            raise ValueError(f"metric must be one of {METRICS}, got {metric!r}")
        if not 0 < level < 1:
            raise ValueError(f"level must lie between 0 and 1, got {level}")
        if metric not in self._draws:
            raise ValueError(
                f"The comparison of {self.name_a} and {self.name_b} carries no bootstrap differences; "
                "make it with compare_configurations or read it with from_dict from a to_dict that has them."
            )
        return _percentile_interval(self._draws[metric], level)

    def to_dict(self) -> dict:
        """The fields, the verdicts and the bootstrap differences, ready for JSON."""
        values = asdict(self)
        values["seeds_a"], values["seeds_b"] = list(self.seeds_a), list(self.seeds_b)
        values = {key: (float(v) if isinstance(v, np.floating) else v) for key, v in values.items()}
        return {
            **values,
            "verdict": self.verdict,
            "kappa_verdict": self.kappa_verdict,
            **{f"{metric}_draws": self._draws[metric].tolist() for metric in METRICS if metric in self._draws},
        }

    @classmethod
    def from_dict(cls, values: dict) -> "ConfigurationComparison":
        """The comparison written by :meth:`to_dict`; the verdict keys are ignored (the verdicts
        follow from the fields)."""
        values = dict(values)
        values.pop("verdict", None)
        values.pop("kappa_verdict", None)
        draws = {metric: values.pop(f"{metric}_draws") for metric in METRICS if f"{metric}_draws" in values}
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"A configuration comparison has no fields {unknown}.")
        return _with_draws(cls(**values), draws)


def _with_draws(comparison: ConfigurationComparison, draws: dict) -> ConfigurationComparison:
    stored = {
        metric: np.sort(np.round(np.asarray(values, dtype=float), DRAW_DECIMALS)) for metric, values in draws.items()
    }
    object.__setattr__(comparison, "_draws", stored)
    return comparison


def _run_tables(runs: dict, name: str) -> dict:
    if not isinstance(runs, dict) or not runs:
        raise ValueError(
            f"{name} needs a dict mapping each training seed to its study table, with at least one seed; got {runs!r:.80}."
        )
    columns = list(STUDY_TABLE_COLUMNS)
    for seed, frame in runs.items():
        if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, (int, np.integer)):
            raise ValueError(f"The seeds of {name} must be integers; got {seed!r}.")
        if not isinstance(frame, pd.DataFrame):
            raise ValueError(f"The run of {name} with seed {seed} is not a study table (a DataFrame).")
        check_study_table(frame, f"{name} (seed {seed})")
        if not np.isfinite(frame["probability"].to_numpy(dtype=float)).all():
            raise ValueError(f"The study table of {name} (seed {seed}) holds NaN or infinite probabilities.")
    return {int(seed): frame[columns] for seed, frame in sorted(runs.items())}


def _aligned(a: dict, b: dict, name_a: str, name_b: str) -> tuple[list, np.ndarray, np.ndarray]:
    """The studies (sorted), their labels and every run's probabilities (A's runs, then B's), after
    checking that every run scored the same studies with the same labels."""
    runs = [(name_a, seed, frame) for seed, frame in a.items()] + [(name_b, seed, frame) for seed, frame in b.items()]
    first_name, first_seed, first = runs[0]
    reference = first.set_index("study_path").sort_index()
    studies = reference.index
    labels = reference["label"].astype(int)
    probabilities = []
    for name, seed, frame in runs:
        table = frame.set_index("study_path")
        if len(table) != len(studies) or not table.index.isin(studies).all():
            only_here = sorted(set(table.index) - set(studies))
            only_there = sorted(set(studies) - set(table.index))
            example = (
                f"e.g. {only_here[0]} only in {name} (seed {seed})"
                if only_here
                else f"e.g. {only_there[0]} only in {first_name} (seed {first_seed})"
            )
            raise ValueError(
                f"{first_name} (seed {first_seed}) has {len(studies)} studies and {name} (seed {seed}) has "
                f"{len(table)} ({example}); comparing configurations needs every run scored on the same studies."
            )
        table = table.loc[studies]
        disagree = table["label"].astype(int).to_numpy() != labels.to_numpy()
        if disagree.any():
            raise ValueError(
                f"{int(disagree.sum())} of the {len(studies)} studies carry different labels in the tables of "
                f"{first_name} (seed {first_seed}) and {name} (seed {seed}), e.g. {studies[disagree][0]}."
            )
        probabilities.append(table["probability"].to_numpy(dtype=float))
    values = labels.to_numpy()
    if not np.isin(values, (0, 1)).all():
        raise ValueError(f"labels must be 0 (normal) or 1 (abnormal); got the values {sorted(set(values.tolist()))}")
    if values.min() == values.max():
        raise ValueError(
            f"An AUROC needs abnormal and normal studies; all {len(values)} studies have label {values[0]}."
        )
    return list(studies), values, np.vstack(probabilities)


def _seed_beats(point_a: np.ndarray, point_b: np.ndarray) -> float:
    """The share of (seed of A, seed of B) pairs in which A's value is higher, ties counting half."""
    a, b = point_a[:, None], point_b[None, :]
    return float(np.mean((a > b) + 0.5 * (a == b)))


def _pooled_df(k_a: int, k_b: int) -> float:
    """Degrees of freedom of the seed variance pooled over both arms."""
    return float(k_a + k_b - 2)


def _comparison_draws(
    metrics: dict, k_a: int, rng: np.random.Generator, n_resamples: int, corrections=(CORRECTION,)
) -> dict:
    """Per correction and metric, the bootstrap differences; the seeds drawn and the chi-square
    draws (one standard set, rescaled to each correction's degrees of freedom) are shared by the
    metrics and the corrections."""
    k_b = len(metrics["auroc"][0]) - k_a
    picks_a = rng.integers(0, k_a, size=(n_resamples, k_a))
    picks_b = rng.integers(0, k_b, size=(n_resamples, k_b))
    seed_level = k_a > 1 and k_b > 1
    uniform = rng.random(n_resamples)
    draws = {correction: {} for correction in corrections}
    for metric in METRICS:
        point, resampled = metrics[metric]
        for correction in corrections:
            if not seed_level:
                df = float("inf")
            elif correction == "welch":
                df = _welch_df(point[:k_a], point[k_a:])
            else:
                df = _pooled_df(k_a, k_b)
            chi_square = np.ones(n_resamples) if not np.isfinite(df) else stats.chi2.ppf(uniform, df) / df
            # The t factor can stretch a draw past what a difference can be (two AUROCs differ by
            # at most 1, two kappas by at most 2): such draws are set at the bound, which moves no
            # interval that stays inside it and no coverage (the truth is inside it).
            draws[correction][metric] = np.clip(
                _two_level_draws(resampled[:k_a], resampled[k_a:], picks_a, picks_b, chi_square, correction=correction),
                -DIFFERENCE_BOUNDS[metric],
                DIFFERENCE_BOUNDS[metric],
            )
    return draws


def compare_configurations(
    a: dict[int, pd.DataFrame],
    b: dict[int, pd.DataFrame],
    *,
    n_resamples: int = 1000,
    seed: int = 0,
    confidence: float = 0.95,
    threshold: float = 0.5,
    name_a: str = "A",
    name_b: str = "B",
) -> ConfigurationComparison:
    """Compare two configurations, each trained with several seeds, on the same test studies.

    ``a`` and ``b`` map each training seed to that run's study table (``aggregate_studies``).
    The point estimates are the mean over an arm's seeds of the study-level AUROC (and of Cohen's
    kappa at ``probability > threshold``), A minus B.  The interval is the percentile interval of
    a two-level bootstrap (Bouthillier et al., 2021): studies drawn once per resample for every
    run of both arms, seeds drawn within each arm, with the corrections for few seeds described
    in the module docstring (deviations stretched by sqrt(k / (k - 1)), seed part scaled by
    sqrt(nu / chi2_nu) with nu = k_A + k_B - 2).  The p-value is the two-sided bootstrap
    p-value of the same draws.  ``p_seed_beats`` is the probability that a seed of A has a
    higher AUROC than a seed of B on the test studies, over all pairs, ties counting half
    (Agarwal et al., 2021, call it the probability of improvement).

    With one seed in either arm the seed level cannot be estimated: the interval then resamples
    studies only, ``seed_level`` is False and both verdicts are ``undetermined``.
    """
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must lie between 0 and 1, got {confidence}")
    if int(n_resamples) < 1:
        raise ValueError(f"n_resamples must be at least 1, got {n_resamples}")
    tables_a, tables_b = _run_tables(a, name_a), _run_tables(b, name_b)
    studies, labels, probabilities = _aligned(tables_a, tables_b, name_a, name_b)
    k_a, k_b = len(tables_a), len(tables_b)
    rng = np.random.default_rng(seed)
    counts = _resample_counts(rng, len(studies), int(n_resamples))
    metrics = _run_metrics(labels, probabilities, counts, threshold)
    draws = _comparison_draws(metrics, k_a, rng, int(n_resamples))[CORRECTION]
    values = {}
    for metric in METRICS:
        point = metrics[metric][0]
        mean_a, mean_b = float(np.mean(point[:k_a])), float(np.mean(point[k_a:]))
        rounded = np.round(draws[metric], DRAW_DECIMALS)
        low, high = _percentile_interval(rounded, confidence)
        values |= {
            f"{metric}_a": mean_a,
            f"{metric}_b": mean_b,
            f"{metric}_diff": mean_a - mean_b,
            f"{metric}_low": low,
            f"{metric}_high": high,
            f"{metric}_p": _bootstrap_p(rounded),
        }
    auroc = metrics["auroc"][0]
    comparison = ConfigurationComparison(
        name_a=name_a,
        name_b=name_b,
        seeds_a=tuple(tables_a),
        seeds_b=tuple(tables_b),
        studies=len(studies),
        p_seed_beats=_seed_beats(auroc[:k_a], auroc[k_a:]),
        seed_level=k_a > 1 and k_b > 1,
        confidence=confidence,
        **values,
    )
    return _with_draws(comparison, draws)


# --- multiplicity ------------------------------------------------------------------------------


def holm(comparisons: list[ConfigurationComparison], alpha: float | None = None) -> list[ConfigurationComparison]:
    """Holm's (1979) step-down procedure over a family of comparisons, per metric.

    The comparisons are sorted by the metric's p-value; the i-th smallest of m is decided at
    level 1 - alpha / (m - i + 1) by its percentile interval at that level (from the stored
    bootstrap differences), and the stepping stops at the first comparison whose interval
    contains 0: it and all later ones are ``undetermined``.  A comparison without a seed level
    is never decided, so it enters the family with p = 1 (last in the order).  Returns copies in
    the input order with ``family``, ``*_level``, ``*_adj_low``/``*_adj_high`` and ``*_reached``
    set.  ``alpha`` defaults to 1 - confidence of the comparisons.
    """
    if not comparisons:
        raise ValueError("holm needs at least one comparison.")
    if alpha is None:
        levels = {c.confidence for c in comparisons}
        if len(levels) > 1:
            raise ValueError(f"The comparisons use different confidence levels {sorted(levels)}; pass alpha.")
        alpha = 1 - levels.pop()
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must lie between 0 and 1, got {alpha}")
    m = len(comparisons)
    updates = [{"family": m} for _ in comparisons]
    for metric in METRICS:
        p_values = [
            getattr(c, f"{metric}_p") if c.seed_level and np.isfinite(getattr(c, f"{metric}_p")) else 1.0
            for c in comparisons
        ]
        order = sorted(range(m), key=lambda i: p_values[i])
        stopped = False
        for rank, i in enumerate(order):
            level = 1 - alpha / (m - rank)
            low, high = comparisons[i].interval(metric, level)
            updates[i] |= {
                f"{metric}_level": level,
                f"{metric}_adj_low": low,
                f"{metric}_adj_high": high,
                f"{metric}_reached": not stopped,
            }
            rejected = comparisons[i].seed_level and (low > 0 or high < 0)
            stopped = stopped or not rejected
    return [_with_draws(replace(c, **u), c._draws) for c, u in zip(comparisons, updates)]


# --- reading -----------------------------------------------------------------------------------


def _percentage(p: float) -> str:
    return "n/a" if not np.isfinite(p) else f"{100 * p:.0f}%"


def configuration_table(comparisons: list[ConfigurationComparison]) -> pd.DataFrame:
    """Configuration comparisons for reading, the verdicts first: one row each, with the
    comparison, the AUROC verdict (after any adjustment), the mean AUROC difference with its plain
    interval and the kappa verdict.  Four columns, so that a phone shows the verdict beside the
    name; :func:`configuration_details` holds the rest."""
    return verdict_table(comparisons, "Mean AUROC difference", "configuration_table")


def configuration_details(comparisons: list[ConfigurationComparison]) -> pd.DataFrame:
    """The details of :func:`configuration_table`, one row per comparison in the same order: the
    seeds of each arm, the test studies, the probability that a seed of A beats a seed of B in
    AUROC, and the mean kappa difference with its plain interval."""
    interval = table_interval(comparisons, "configuration_details")
    return pd.DataFrame(
        [
            {
                "Comparison": comparison_name(c.name_a, c.name_b),
                "Seeds": f"{len(c.seeds_a)} / {len(c.seeds_b)}",
                "Studies": int(c.studies),
                "P(seed of A beats B)": _percentage(c.p_seed_beats),
                f"Mean kappa difference ({interval})": difference_text(c.kappa_diff, c.kappa_low, c.kappa_high),
            }
            for c in comparisons
        ]
    )


__all__ = [
    "ConfigurationComparison",
    "compare_configurations",
    "configuration_details",
    "configuration_table",
    "holm",
]
