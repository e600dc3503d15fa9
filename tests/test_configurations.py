"""Comparisons of two configurations, each trained with several seeds, on the same studies: the
two-level bootstrap, its corrections for few seeds, Holm's step-down procedure and the table."""

import json
import time
from dataclasses import fields

import numpy as np
import pandas as pd
import pytest
from sklearn import metrics as skm

from mura_lib import configurations as cf
from mura_lib.configurations import (
    ConfigurationComparison,
    compare_configurations,
    configuration_details,
    configuration_table,
    holm,
)
from mura_lib.evaluation import MINUS, _auroc, _kappa


def _simulate(rng, k_a, k_b, n, mu_a=1.65, mu_b=1.65, sigma_seed=0.2, tau=0.5, prevalence=0.45):
    """Labels and the probabilities of the runs of two arms (A's first) on one set of studies, as
    in ``benchmarks/coverage_configurations.py``: a latent difficulty shared by every run, a
    seed's effect on the separation and a run's own noise per study."""
    labels = (rng.random(n) < prevalence).astype(int)
    shared = rng.normal(size=n)
    separation = np.r_[np.full(k_a, mu_a), np.full(k_b, mu_b)] + sigma_seed * rng.normal(size=k_a + k_b)
    scores = separation[:, None] * labels + shared + tau * rng.normal(size=(k_a + k_b, n))
    return labels, 1 / (1 + np.exp(-(scores - 0.8)))


def _table(labels, probabilities):
    return pd.DataFrame(
        {
            "study_path": [f"valid/XR_WRIST/patient{i:05d}/study1" for i in range(len(labels))],
            "study_type": "XR_WRIST",
            "label": labels,
            "views": 2,
            "probability": probabilities,
        }
    )


def _arms(k_a=3, k_b=3, n=400, seed=0, **kwargs):
    """Two dicts of study tables (seed -> table), seeds 10, 11, ... for A and 20, 21, ... for B."""
    labels, probabilities = _simulate(np.random.default_rng(seed), k_a, k_b, n, **kwargs)
    a = {10 + i: _table(labels, probabilities[i]) for i in range(k_a)}
    b = {20 + i: _table(labels, probabilities[k_a + i]) for i in range(k_b)}
    return a, b


# --- the vectorised metrics --------------------------------------------------------------------


@pytest.mark.parametrize("decimals", [None, 1])
def test_counted_metrics_equal_the_ranked_ones_on_explicit_resamples(decimals):
    rng = np.random.default_rng(3)
    labels, probabilities = _simulate(rng, 2, 2, 250)
    if decimals is not None:  # many ties
        probabilities = np.round(probabilities, decimals)
    picks = rng.integers(0, 250, size=(40, 250))
    counts = np.stack([np.bincount(p, minlength=250) for p in picks])
    predicted = (probabilities > 0.5).astype(float)
    expected_auroc = _auroc(labels[picks][None].astype(float), probabilities[:, picks])
    expected_kappa = _kappa(
        np.broadcast_to(labels[picks].astype(float), predicted[:, picks].shape), predicted[:, picks]
    )
    np.testing.assert_allclose(cf._auroc_counts(labels, probabilities, counts), expected_auroc, rtol=0, atol=1e-12)
    np.testing.assert_allclose(cf._kappa_counts(labels, predicted, counts), expected_kappa, rtol=0, atol=1e-12)


def test_resample_counts_draw_every_study_equally_often():
    counts = cf._resample_counts(np.random.default_rng(0), 50, 4000)
    assert counts.shape == (4000, 50) and (counts.sum(axis=1) == 50).all()
    np.testing.assert_allclose(counts.mean(axis=0), 1, atol=0.06)
    np.testing.assert_allclose(counts.var(axis=0), 1 - 1 / 50, atol=0.1)  # multinomial


def test_full_size_comparison_runs_well_under_a_second():
    a, b = _arms(5, 5, n=900)
    timings = []
    for _ in range(3):
        start = time.perf_counter()
        compare_configurations(a, b, n_resamples=1000)
        timings.append(time.perf_counter() - start)
    assert min(timings) < 1.0, timings  # about 0.15 s; ranking every resample anew takes over 2 s


# --- input validation --------------------------------------------------------------------------


def test_rejects_unusable_input():
    a, b = _arms(2, 2, n=60)
    with pytest.raises(ValueError, match="at least one seed"):
        compare_configurations({}, b)
    with pytest.raises(ValueError, match="at least one seed"):
        compare_configurations(a, [])
    with pytest.raises(ValueError, match="lacks the columns"):
        compare_configurations({**a, 10: a[10].drop(columns="probability")}, b)
    with pytest.raises(ValueError, match="more than once"):
        compare_configurations({**a, 10: pd.concat([a[10], a[10].iloc[:1]])}, b)
    with pytest.raises(ValueError, match="same studies"):
        compare_configurations(a, {**b, 21: b[21].iloc[1:]})
    renamed = b[21].assign(study_path=b[21]["study_path"].str.replace("study1", "study2"))
    with pytest.raises(ValueError, match="same studies"):
        compare_configurations(a, {**b, 21: renamed})
    flipped = b[20].copy()
    flipped.loc[3, "label"] = 1 - flipped.loc[3, "label"]
    with pytest.raises(ValueError, match="different labels"):
        compare_configurations(a, {**b, 20: flipped})
    with pytest.raises(ValueError, match="NaN"):
        compare_configurations(a, {**b, 20: b[20].assign(probability=np.nan)})
    with pytest.raises(ValueError, match="integers"):
        compare_configurations({"seed 1": a[10]}, b)
    with pytest.raises(ValueError, match="abnormal and normal"):
        compare_configurations({1: a[10].assign(label=1)}, {2: b[20].assign(label=1)})
    with pytest.raises(ValueError, match="confidence"):
        compare_configurations(a, b, confidence=95)


def test_runs_are_matched_by_study_not_by_row_order():
    a, b = _arms(2, 3, n=120)
    shuffled = {seed: frame.sample(frac=1, random_state=seed) for seed, frame in b.items()}
    assert compare_configurations(a, b) == compare_configurations(a, shuffled)


# --- point estimates and verdicts ----------------------------------------------------------------


@pytest.mark.parametrize("decimals", [None, 1])
def test_point_estimates_are_means_of_scikit_learn_per_seed(decimals):
    a, b = _arms(3, 2, n=300, seed=4)
    if decimals is not None:
        a = {s: t.assign(probability=t["probability"].round(decimals)) for s, t in a.items()}
    result = compare_configurations(a, b, threshold=0.4)

    def mean_over_seeds(arm, score):
        return np.mean([score(t["label"], t["probability"]) for t in arm.values()])

    def kappa(labels, probabilities):
        return skm.cohen_kappa_score(labels, (probabilities > 0.4).astype(int))

    assert result.auroc_a == pytest.approx(mean_over_seeds(a, skm.roc_auc_score), abs=1e-12)
    assert result.auroc_b == pytest.approx(mean_over_seeds(b, skm.roc_auc_score), abs=1e-12)
    assert result.kappa_a == pytest.approx(mean_over_seeds(a, kappa), abs=1e-12)
    assert result.kappa_b == pytest.approx(mean_over_seeds(b, kappa), abs=1e-12)
    assert result.auroc_diff == pytest.approx(result.auroc_a - result.auroc_b)
    assert result.kappa_diff == pytest.approx(result.kappa_a - result.kappa_b)
    assert (result.seeds_a, result.seeds_b, result.studies) == ((10, 11, 12), (20, 21), 300)
    assert result.auroc_low < result.auroc_diff < result.auroc_high
    assert result.kappa_low < result.kappa_diff < result.kappa_high


def test_identical_arms_differ_by_nothing():
    a, _ = _arms(3, 1, n=300)
    result = compare_configurations(a, dict(a))
    assert result.auroc_diff == 0 and result.kappa_diff == 0
    assert result.auroc_low < 0 < result.auroc_high and result.kappa_low < 0 < result.kappa_high
    assert result.auroc_p > 0.5 and result.kappa_p > 0.5
    assert result.p_seed_beats == 0.5
    assert result.verdict == result.kappa_verdict == "undetermined"


def test_a_large_true_effect_is_found_with_its_sign():
    a, b = _arms(3, 3, n=600, mu_a=2.6, mu_b=1.2, sigma_seed=0.1)
    better = compare_configurations(a, b, name_a="strong", name_b="weak")
    assert better.auroc_diff > 0.1 and better.auroc_low > 0
    assert (better.verdict, better.kappa_verdict) == ("higher", "higher")
    assert better.auroc_p == pytest.approx(1 / 1001) and better.kappa_p < 0.05
    assert better.p_seed_beats == 1
    worse = compare_configurations(b, a)
    assert worse.auroc_diff == pytest.approx(-better.auroc_diff)
    assert (worse.verdict, worse.kappa_verdict) == ("lower", "lower")
    assert worse.p_seed_beats == 0


def test_results_are_deterministic_in_the_seed():
    a, b = _arms(3, 3, n=300)
    first, again = compare_configurations(a, b, seed=5), compare_configurations(a, b, seed=5)
    assert first == again
    np.testing.assert_array_equal(first.draws["auroc"], again.draws["auroc"])
    other = compare_configurations(a, b, seed=6)
    assert other.auroc_diff == first.auroc_diff and other.auroc_low != first.auroc_low


def test_p_seed_beats_counts_every_pair_with_ties_half():
    a, b = _arms(3, 2, n=300, seed=2, sigma_seed=0.4)
    b[22] = a[11].copy()  # a tie: the same run in both arms
    result = compare_configurations(a, b)
    auroc_a = [skm.roc_auc_score(t["label"], t["probability"]) for t in a.values()]
    auroc_b = [skm.roc_auc_score(t["label"], t["probability"]) for t in b.values()]
    wins = sum(1.0 if x > y else 0.5 if x == y else 0.0 for x in auroc_a for y in auroc_b)
    assert 0 < result.p_seed_beats < 1
    assert result.p_seed_beats == pytest.approx(wins / 9)
    assert wins % 1 == 0.5  # the tie did count half


def test_one_seed_gives_a_study_level_interval_but_no_verdict():
    a, b = _arms(1, 3, n=600, mu_a=2.6, mu_b=1.2)
    result = compare_configurations(a, b)
    assert not result.seed_level
    assert result.auroc_low > 0 and result.kappa_low > 0  # the studies alone say A is higher...
    assert result.verdict == result.kappa_verdict == "undetermined"  # ...but the seeds cannot be judged
    # the interval is the study-level bootstrap of the difference of the arms' means
    labels = a[10]["label"].to_numpy()
    runs = np.vstack([t["probability"].to_numpy() for t in (*a.values(), *b.values())])
    counts = cf._resample_counts(np.random.default_rng(0), 600, 1000)
    resampled = cf._auroc_counts(labels, runs, counts)
    studies_only = np.round(resampled[0] - resampled[1:].mean(axis=0), cf.DRAW_DECIMALS)
    assert (result.auroc_low, result.auroc_high) == pytest.approx(cf._percentile_interval(studies_only, 0.95))
    assert compare_configurations(b, a).seed_level is False


def test_corrections_widen_the_plain_two_level_bootstrap():
    a, b = _arms(2, 2, n=400)
    labels = a[10]["label"].to_numpy()
    runs = np.vstack([t["probability"].to_numpy() for t in (*a.values(), *b.values())])
    rng = np.random.default_rng(0)
    metrics = cf._run_metrics(labels, runs, cf._resample_counts(rng, 400, 2000), 0.5)
    draws = cf._comparison_draws(metrics, 2, rng, 2000, cf.CORRECTIONS)
    spread = {c: np.std(draws[c]["auroc"]) for c in cf.CORRECTIONS}
    assert spread["plain"] < spread["rescaled"] < spread["pooled"]
    # the plain draws are the mean AUROC of the drawn seeds on the drawn studies, A minus B
    point, resampled = metrics["auroc"]
    rng = np.random.default_rng(0)
    cf._resample_counts(rng, 400, 2000)
    picks_a, picks_b = rng.integers(0, 2, (2000, 2)), rng.integers(0, 2, (2000, 2))
    columns = np.arange(2000)[:, None]
    direct = resampled[picks_a, columns].mean(axis=1) - resampled[2 + picks_b, columns].mean(axis=1)
    np.testing.assert_allclose(draws["plain"]["auroc"], direct, atol=1e-12)


# --- coverage ------------------------------------------------------------------------------------


def test_coverage_of_the_corrected_interval_is_near_nominal():
    """150 simulated comparisons (2 seeds per arm, 300 studies, 200 resamples, no true effect).
    Over six generator seeds the corrected (pooled) interval covered 0.953 to 0.980 of them, the
    plain two-level bootstrap 0.69 to 0.82 and the rescaled one without the t-widening 0.85 to
    0.90; the band 0.92 to 0.99 holds the first and fails the other two."""
    rng = np.random.default_rng(0)
    covered = {c: 0 for c in cf.CORRECTIONS}
    width = {c: 0.0 for c in cf.CORRECTIONS}
    for _ in range(150):
        labels, probabilities = _simulate(rng, 2, 2, 300, sigma_seed=0.3)
        metrics = cf._run_metrics(labels, probabilities, cf._resample_counts(rng, 300, 200), 0.5)
        draws = cf._comparison_draws(metrics, 2, rng, 200, cf.CORRECTIONS)
        for correction in cf.CORRECTIONS:
            low, high = cf._percentile_interval(draws[correction]["auroc"], 0.95)
            covered[correction] += low <= 0 <= high
            width[correction] += high - low
    coverage = {c: covered[c] / 150 for c in cf.CORRECTIONS}
    assert 0.92 <= coverage[cf.CORRECTION] <= 0.99, coverage
    assert coverage["plain"] < 0.88 and coverage["rescaled"] < 0.92, coverage
    assert width["plain"] < width["rescaled"] < width["pooled"] < width["welch"]


# --- Holm's step-down procedure -------------------------------------------------------------------


def _with_p(p: float, name: str, sign: int = 1, seed_level: bool = True, resamples: int = 4000):
    """A comparison read from a dict whose bootstrap differences have exactly the share p/2 on the
    far side of 0 (two-sided p-value p)."""
    far = round(p / 2 * resamples)
    draws = sign * np.r_[-np.linspace(0.001, 0.01, far), np.linspace(0.001, 0.05, resamples - far)]
    low, high = cf._percentile_interval(np.sort(draws), 0.95)
    values = dict(
        name_a=name,
        name_b="baseline",
        seeds_a=[1, 2, 3],
        seeds_b=[1, 2, 3],
        studies=900,
        auroc_a=0.85 + sign * 0.02,
        auroc_b=0.85,
        auroc_diff=sign * 0.02,
        auroc_low=low,
        auroc_high=high,
        auroc_p=p,
        kappa_a=0.5,
        kappa_b=0.5,
        kappa_diff=0.0,
        kappa_low=-0.05,
        kappa_high=0.05,
        kappa_p=1.0,
        p_seed_beats=0.7,
        seed_level=seed_level,
    )
    kappa = np.linspace(-0.05, 0.05, resamples)
    return ConfigurationComparison.from_dict({**values, "auroc_draws": draws.tolist(), "kappa_draws": kappa.tolist()})


def test_holm_rejects_what_the_textbook_example_rejects():
    """p = 0.01, 0.04, 0.03, 0.005 at alpha 0.05: Holm's adjusted p-values are 0.03, 0.06, 0.06
    and 0.02, so exactly the first and the last are rejected.  The second (p = 0.04 < 0.05) would
    be rejected on its own; it is undetermined because the stepping stopped at p = 0.03."""
    family = [_with_p(p, f"model {i}") for i, p in enumerate([0.01, 0.04, 0.03, 0.005])]
    assert [c.auroc_p for c in family] == [0.01, 0.04, 0.03, 0.005]
    assert [c.verdict for c in family] == ["higher"] * 4  # unadjusted, all intervals exclude 0
    adjusted = holm(family, alpha=0.05)
    assert [c.verdict for c in adjusted] == ["higher", "undetermined", "undetermined", "higher"]
    assert [c.family for c in adjusted] == [4] * 4
    assert [c.auroc_level for c in adjusted] == pytest.approx([1 - 0.05 / 3, 1 - 0.05, 1 - 0.05 / 2, 1 - 0.05 / 4])
    assert [c.auroc_reached for c in adjusted] == [True, False, True, True]
    assert adjusted[1].auroc_adj_low > 0  # its own interval excludes 0: the step-down stopped it
    assert adjusted[2].auroc_adj_low < 0 < adjusted[2].auroc_adj_high
    assert adjusted[0].auroc_adj_low == pytest.approx(adjusted[0].interval("auroc", 1 - 0.05 / 3)[0])
    assert [c.kappa_verdict for c in adjusted] == ["undetermined"] * 4
    assert [c.name_a for c in adjusted] == [c.name_a for c in family]  # input order kept


def test_holm_steps_down_in_both_directions_and_stops_at_the_first_acceptance():
    family = [_with_p(0.001, "a", sign=-1), _with_p(0.004, "b"), _with_p(0.3, "c"), _with_p(0.002, "d", sign=-1)]
    assert [c.verdict for c in holm(family, alpha=0.05)] == ["lower", "higher", "undetermined", "lower"]
    # with the smallest p-value not rejected (0.02 > 0.05 / 4), nothing is, not even p = 0.04
    family = [_with_p(0.04, "a"), _with_p(0.02, "b"), _with_p(0.03, "c")]
    family.append(_with_p(0.0004, "e", seed_level=False))  # never decided; sorted last with p = 1
    adjusted = holm(family, alpha=0.05)
    assert [c.verdict for c in adjusted] == ["undetermined"] * 4
    assert [c.auroc_reached for c in adjusted] == [False, True, False, False]
    assert adjusted[-1].auroc_level == pytest.approx(0.95)  # last in the order
    # a family of one is the comparison itself
    alone = holm([_with_p(0.04, "a")])[0]
    assert (alone.verdict, alone.auroc_level, alone.family) == ("higher", pytest.approx(0.95), 1)


def test_holm_on_real_comparisons_works_after_a_round_trip_through_json():
    comparisons = [compare_configurations(*_arms(3, 3, n=300, seed=s, mu_a=1.65 + 0.3 * s)) for s in range(3)]
    read_back = [ConfigurationComparison.from_dict(json.loads(json.dumps(c.to_dict()))) for c in comparisons]
    assert holm(read_back) == holm(comparisons)
    levels = sorted(c.auroc_level for c in holm(comparisons))
    assert levels == pytest.approx([0.95, 1 - 0.05 / 2, 1 - 0.05 / 3])
    with pytest.raises(ValueError, match="at least one"):
        holm([])
    made_by_hand = ConfigurationComparison(**{f.name: getattr(comparisons[0], f.name) for f in fields(comparisons[0])})
    with pytest.raises(ValueError, match="bootstrap differences"):
        holm([made_by_hand])


# --- storage and reading -------------------------------------------------------------------------


def test_to_dict_and_from_dict_round_trip():
    result = compare_configurations(*_arms(3, 2, n=300), name_a="DenseNet", name_b="ResNet")
    values = result.to_dict()
    text = json.dumps(values)
    assert {"verdict", "kappa_verdict", "auroc_draws", "kappa_draws"} <= set(values)
    assert values["verdict"] == result.verdict and len(values["auroc_draws"]) == 1000
    read = ConfigurationComparison.from_dict(json.loads(text))
    assert read == result and read.seeds_a == (10, 11, 12)
    np.testing.assert_array_equal(read.draws["kappa"], result.draws["kappa"])
    assert read.interval("auroc", 0.95) == (result.auroc_low, result.auroc_high)
    assert ConfigurationComparison.from_dict({**values, "verdict": "nonsense"}) == result
    with pytest.raises(ValueError, match="no fields"):
        ConfigurationComparison.from_dict({**values, "colour": "red"})


def test_configuration_table_is_readable():
    strong, weak = _arms(3, 2, n=600, mu_a=2.6, mu_b=1.2, sigma_seed=0.1)
    comparisons = [
        compare_configurations(strong, weak, name_a="DenseNet-169", name_b="ResNet-50"),
        compare_configurations(weak, strong, name_a="ResNet-50", name_b="DenseNet-169"),
    ]
    table = configuration_table(comparisons)
    # The verdict comes right after the name, and the table stays narrow enough for a phone.
    assert list(table.columns) == [
        "Comparison",
        "Verdict (AUROC)",
        "Mean AUROC difference (95% interval)",
        "Verdict (kappa)",
    ]
    first, second = table.iloc[0], table.iloc[1]
    assert (first["Comparison"], second["Comparison"]) == ("DenseNet-169 vs ResNet-50", "ResNet-50 vs DenseNet-169")
    assert (first["Verdict (AUROC)"], second["Verdict (AUROC)"]) == ("higher", "lower")
    assert list(table["Verdict (kappa)"]) == [c.kappa_verdict for c in comparisons]
    c = comparisons[1]
    expected = (
        f"{MINUS}{abs(c.auroc_diff):.3f} ({MINUS}{abs(c.auroc_low):.3f}\u00a0to\u00a0{MINUS}{abs(c.auroc_high):.3f})"
    )
    assert second["Mean AUROC difference (95% interval)"] == expected
    assert "-" not in "".join(table["Mean AUROC difference (95% interval)"])
    details = configuration_details(comparisons)
    assert list(details.columns) == [
        "Comparison",
        "Seeds",
        "Studies",
        "P(seed of A beats B)",
        "Mean kappa difference (95% interval)",
    ]
    assert list(details["Comparison"]) == list(table["Comparison"])
    assert list(details["Seeds"]) == ["3 / 2", "2 / 3"]
    assert list(details["Studies"]) == [600, 600]
    assert list(details["P(seed of A beats B)"]) == ["100%", "0%"]
    assert details.iloc[0]["Mean kappa difference (95% interval)"].startswith("+")
    for make in (configuration_table, configuration_details):
        with pytest.raises(ValueError, match="at least one"):
            make([])


def test_intervals_never_leave_the_range_a_difference_can_take():
    """Two seeds per arm give the t factor 2 degrees of freedom: heavy tails, which would put
    interval ends beyond +-1 for AUROC without the bound."""
    rng = np.random.default_rng(3)
    labels = np.arange(40) % 2

    def arm(separations):
        return {
            seed: pd.DataFrame(
                {
                    "study_path": [f"s{i}" for i in range(40)],
                    "label": labels,
                    "probability": 1 / (1 + np.exp(-(separation * (labels - 0.5) + rng.normal(0, 1, 40)))),
                }
            )
            for seed, separation in enumerate(separations)
        }

    comparison = compare_configurations(arm([0.2, 6.0]), arm([3.0, 0.1]), n_resamples=400, seed=0)
    assert -1 <= comparison.auroc_low <= comparison.auroc_high <= 1
    assert -2 <= comparison.kappa_low <= comparison.kappa_high <= 2
    assert np.abs(comparison.draws["auroc"]).max() <= 1
