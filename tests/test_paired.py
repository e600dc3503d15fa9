"""Paired comparisons of two models scored on the same studies: DeLong's test, the paired
bootstrap, their reading (verdicts, sentences, table, forest plot) and the spread over seeds."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from scipy import stats
from sklearn import metrics as skm

from mura_lib import evaluation
from mura_thesis import figures
from mura_thesis.figures import FIGURE_WIDTH

from .conftest import REPO


def _correlated(n=400, seed=0, strength_a=1.2, strength_b=1.0, shared=1.0, own=0.5):
    """Labels and two models' scores that share most of their noise (as two networks trained on
    the same images do), as probabilities."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, n)
    common = rng.normal(size=n)
    logit_a = strength_a * labels + shared * common + own * rng.normal(size=n)
    logit_b = strength_b * labels + shared * common + own * rng.normal(size=n)
    return labels, 1 / (1 + np.exp(-(logit_a - 0.6))), 1 / (1 + np.exp(-(logit_b - 0.5)))


def _table(labels, probabilities, prefix="valid/XR_WRIST/patient"):
    return pd.DataFrame(
        {
            "study_path": [f"{prefix}{i:05d}/study1_{'positive' if l else 'negative'}" for i, l in enumerate(labels)],
            "study_type": "XR_WRIST",
            "label": labels,
            "views": 2,
            "probability": probabilities,
        }
    )


def _placement_variance(labels, a, b):
    """The variance of the AUROC difference from DeLong's placement values, computed directly from
    all (abnormal, normal) pairs: slow, but independent of the midrank algorithm."""
    components = []
    for scores in (a, b):
        x, y = scores[labels == 1][:, None], scores[labels == 0][None, :]
        kernel = (x > y) + 0.5 * (x == y)
        components.append((kernel.mean(axis=1), kernel.mean(axis=0)))
    m, n = (labels == 1).sum(), (labels == 0).sum()
    covariance = np.cov(components[0][0], components[1][0]) / m + np.cov(components[0][1], components[1][1]) / n
    return covariance[0, 0] + covariance[1, 1] - 2 * covariance[0, 1]


@pytest.mark.parametrize("decimals", [None, 1])
def test_delong_matches_scikit_learn_and_placement_values(decimals):
    labels, a, b = _correlated(n=300, seed=1)
    if decimals is not None:  # many ties
        a, b = np.round(a, decimals), np.round(b, decimals)
    result = evaluation.delong_test(labels, a, b)
    assert result["auroc_a"] == pytest.approx(skm.roc_auc_score(labels, a), abs=1e-12)
    assert result["auroc_b"] == pytest.approx(skm.roc_auc_score(labels, b), abs=1e-12)
    assert result["difference"] == pytest.approx(result["auroc_a"] - result["auroc_b"], abs=1e-12)
    assert result["se"] ** 2 == pytest.approx(_placement_variance(labels, a, b), rel=1e-9)
    assert result["z"] == pytest.approx(result["difference"] / result["se"])
    assert result["p_value"] == pytest.approx(2 * stats.norm.sf(abs(result["z"])))
    assert result["low"] == pytest.approx(result["difference"] - 1.959964 * result["se"], abs=1e-6)
    assert result["high"] == pytest.approx(result["difference"] + 1.959964 * result["se"], abs=1e-6)


# pROC's `roc.test(roc1, roc2)` (DeLong, two-sided) on its aSAH data, as its own test suite
# (tests/testthat/test-roc.test.R) expects them: Z, p and the 95% interval of the difference.
PROC_REFERENCE = [
    ("wfns", "s100b", 2.20898359144091, 0.0271757822291882, (0.0104061769564846, 0.174214419249478)),
    ("wfns", "ndka", 2.79777591868904, 0.00514557970691098, (0.0634011709339876, 0.3600405634833566)),
    ("ndka", "s100b", -1.39077002573558, 0.164295175223054, (-0.2876917446341914, 0.0488706064228094)),
]


@pytest.mark.parametrize("a, b, z, p, interval", PROC_REFERENCE, ids=[f"{a}-{b}" for a, b, *_ in PROC_REFERENCE])
def test_delong_matches_proc_on_its_reference_data(a, b, z, p, interval):
    data = pd.read_csv(REPO / "tests" / "data" / "asah.csv")
    assert len(data) == 113 and (data["outcome"] == "Poor").sum() == 41
    result = evaluation.delong_test((data["outcome"] == "Poor").astype(int), data[a], data[b])
    # WFNS is a grade from 1 to 5: most of its values are tied, which the midrank algorithm must
    # handle as pROC does.
    assert result["z"] == pytest.approx(z, rel=1e-9)
    assert result["p_value"] == pytest.approx(p, rel=1e-9)
    assert (result["low"], result["high"]) == pytest.approx(interval, rel=1e-9)
    assert result["se"] == pytest.approx(result["difference"] / z, rel=1e-9)


def test_delong_standard_error_agrees_with_paired_bootstrap():
    labels, a, b = _correlated(n=400, seed=2)
    delong = evaluation.delong_test(labels, a, b)

    def difference(labels, a, b, axis=-1):
        return evaluation._auroc(labels, a, axis) - evaluation._auroc(labels, b, axis)

    boot = stats.bootstrap(
        (labels.astype(float), a, b),
        difference,
        paired=True,
        vectorized=True,
        n_resamples=2000,
        random_state=np.random.default_rng(0),
    )
    assert delong["se"] == pytest.approx(boot.standard_error, rel=0.15)
    # compare_paired's percentile interval is about as wide as DeLong's normal interval.
    comparison = evaluation.compare_paired(_table(labels, a), _table(labels, b), n_resamples=2000)
    assert comparison.auroc_high - comparison.auroc_low == pytest.approx(delong["high"] - delong["low"], rel=0.15)


def test_delong_on_identical_scores_finds_no_difference():
    labels, a, _ = _correlated(n=200, seed=3)
    result = evaluation.delong_test(labels, a, a.copy())
    assert result["difference"] == 0
    assert result["se"] == 0
    assert result["p_value"] == 1
    assert result["low"] == result["high"] == 0


def test_delong_detects_a_strong_difference():
    labels, a, b = _correlated(n=400, seed=4, strength_a=3.0, strength_b=0.5)
    result = evaluation.delong_test(labels, a, b)
    assert result["p_value"] < 0.001
    assert 0 < result["low"] < result["difference"] < result["high"]
    # Swapping the models flips the sign and keeps the p-value.
    swapped = evaluation.delong_test(labels, b, a)
    assert swapped["difference"] == pytest.approx(-result["difference"])
    assert swapped["p_value"] == pytest.approx(result["p_value"])


def test_delong_rejects_unusable_input():
    with pytest.raises(ValueError, match="abnormal and normal"):
        evaluation.delong_test([1, 1, 1], [0.1, 0.2, 0.3], [0.3, 0.2, 0.1])
    with pytest.raises(ValueError, match="one value per study"):
        evaluation.delong_test([0, 1, 1], [0.1, 0.2], [0.3, 0.2, 0.1])
    with pytest.raises(ValueError, match="NaN"):
        evaluation.delong_test([0, 1], [0.1, np.nan], [0.3, 0.2])


def test_compare_paired_matches_scikit_learn_and_aligns_by_study():
    labels, a, b = _correlated(n=300, seed=5)
    first, second = _table(labels, a), _table(labels, b)
    shuffled = second.sample(frac=1, random_state=0)  # the same studies in another order
    comparison = evaluation.compare_paired(first, shuffled, n_resamples=300, name_a="DenseNet-169", name_b="ResNet-50")
    auroc_a, auroc_b = skm.roc_auc_score(labels, a), skm.roc_auc_score(labels, b)
    kappa_a = skm.cohen_kappa_score(labels, (a > 0.5).astype(int))
    kappa_b = skm.cohen_kappa_score(labels, (b > 0.5).astype(int))
    assert comparison.studies == 300
    assert (comparison.auroc_a, comparison.auroc_b) == pytest.approx((auroc_a, auroc_b))
    assert comparison.auroc_diff == pytest.approx(auroc_a - auroc_b)
    assert comparison.kappa_diff == pytest.approx(kappa_a - kappa_b)
    assert comparison.auroc_low < comparison.auroc_diff < comparison.auroc_high
    assert comparison.kappa_low < comparison.kappa_diff < comparison.kappa_high
    assert comparison.delong_p == pytest.approx(evaluation.delong_test(labels, a, b)["p_value"])
    # Another threshold changes kappa only.
    strict = evaluation.compare_paired(first, second, n_resamples=300, threshold=0.7)
    assert strict.kappa_a == pytest.approx(skm.cohen_kappa_score(labels, (a > 0.7).astype(int)))
    assert strict.auroc_diff == pytest.approx(comparison.auroc_diff)
    # The same seed gives the same intervals.
    again = evaluation.compare_paired(first, shuffled, n_resamples=300, name_a="DenseNet-169", name_b="ResNet-50")
    assert again == comparison
    stored = comparison.to_dict()
    assert stored["name_a"] == "DenseNet-169" and stored["verdict"] == comparison.verdict
    assert stored["kappa_verdict"] == comparison.kappa_verdict


def test_compare_paired_rejects_different_studies_or_labels():
    labels, a, b = _correlated(n=100, seed=6)
    first, second = _table(labels, a), _table(labels, b)
    with pytest.raises(ValueError, match="A has 100 studies and B has 90, of which 90 are in both"):
        evaluation.compare_paired(first, second.iloc[:90])
    renamed = second.assign(study_path=second["study_path"].str.replace("patient00000", "patient99999"))
    with pytest.raises(ValueError, match="of which 99 are in both"):
        evaluation.compare_paired(first, renamed)
    relabelled = second.assign(label=np.where(np.arange(100) < 3, 1 - labels, labels))
    with pytest.raises(ValueError, match="3 of the 100 studies carry different labels"):
        evaluation.compare_paired(first, relabelled)
    with pytest.raises(ValueError, match="more than once"):
        evaluation.compare_paired(first, pd.concat([second, second.iloc[:1]]))
    with pytest.raises(ValueError, match="lacks the columns"):
        evaluation.compare_paired(first, second.drop(columns="probability"))


def test_pairing_detects_what_overlapping_marginal_intervals_hide():
    # Two models that share nearly all their noise, A slightly better than B.
    labels, a, b = _correlated(n=400, seed=7, strength_a=1.15, strength_b=1.0, shared=1.0, own=0.15)
    comparison = evaluation.compare_paired(_table(labels, a), _table(labels, b))
    marginal_a = evaluation.bootstrap_interval(labels, a, "auroc")
    marginal_b = evaluation.bootstrap_interval(labels, b, "auroc")
    # Judged by overlap, the marginal intervals suggest no difference ...
    assert marginal_a[0] < marginal_b[1]
    # ... while the paired interval of the difference excludes 0 and is far narrower than either.
    assert comparison.verdict == "higher"
    assert comparison.auroc_low > 0
    paired_width = comparison.auroc_high - comparison.auroc_low
    assert paired_width < 0.5 * min(marginal_a[1] - marginal_a[0], marginal_b[1] - marginal_b[0])


def _comparison(low, high, kappa_low=-0.01, kappa_high=0.05, p=0.09, **names):
    return evaluation.Comparison(
        **names,
        studies=1199,
        auroc_a=0.812,
        auroc_b=0.790,
        auroc_diff=0.022,
        auroc_low=low,
        auroc_high=high,
        delong_p=p,
        kappa_a=0.61,
        kappa_b=0.6,
        kappa_diff=0.01,
        kappa_low=kappa_low,
        kappa_high=kappa_high,
    )


def test_verdicts_follow_the_intervals():
    assert _comparison(0.004, 0.047).verdict == "higher"
    assert _comparison(-0.047, -0.004).verdict == "lower"
    assert _comparison(-0.004, 0.047).verdict == "undetermined"
    assert _comparison(0.0, 0.047).verdict == "undetermined"
    assert _comparison(0.01, 0.02, kappa_low=0.01, kappa_high=0.1).kappa_verdict == "higher"
    assert _comparison(0.01, 0.02, kappa_low=-0.1, kappa_high=-0.01).kappa_verdict == "lower"
    assert _comparison(0.01, 0.02).kappa_verdict == "undetermined"
    with pytest.raises(AttributeError):
        _comparison(0.01, 0.02).auroc_low = 0.5  # frozen


def test_sentences_read_plainly_with_minus_signs():
    assert _comparison(-0.004, 0.047).sentence() == (
        "AUROC 0.812 vs 0.790, difference +0.022 (95% paired interval \u22120.004 to +0.047, DeLong p = 0.09): "
        "undetermined"
    )
    named = _comparison(0.004, 0.047, p=0.0004, name_a="DenseNet-169", name_b="ResNet-50")
    assert named.sentence().endswith("DeLong p < 0.001): DenseNet-169 higher")
    kappa = named.sentence("kappa")
    assert kappa.startswith(
        "Cohen's kappa 0.610 vs 0.600, difference +0.010 (95% paired interval \u22120.010 to +0.050)"
    )
    assert "DeLong" not in kappa
    for text in (named.sentence(), kappa):
        assert "-0" not in text  # negative numbers use the typographic minus
    with pytest.raises(ValueError, match="metric"):
        named.sentence("f1")


def test_comparison_table_is_readable():
    comparisons = [
        _comparison(-0.004, 0.047, name_a="DenseNet-169", name_b="ResNet-50"),
        _comparison(0.004, 0.047, p=0.0004, name_a="DenseNet-169", name_b="ensemble"),
    ]
    table = evaluation.comparison_table(comparisons)
    # The verdict comes right after the name, and the table stays narrow enough for a phone.
    assert list(table.columns) == [
        "Comparison",
        "Verdict (AUROC)",
        "AUROC difference (95% interval)",
        "Verdict (kappa)",
    ]
    first = table.iloc[0]
    assert first["Comparison"] == "DenseNet-169 vs ResNet-50"
    # the interval is held together by non-breaking spaces: a narrow cell breaks only before it
    assert first["AUROC difference (95% interval)"] == "+0.022 (\u22120.004\u00a0to\u00a0+0.047)"
    assert list(table["Verdict (AUROC)"]) == ["undetermined", "higher"]
    assert list(table["Verdict (kappa)"]) == [c.kappa_verdict for c in comparisons]
    details = evaluation.comparison_details(comparisons)
    assert list(details.columns) == ["Comparison", "Studies", "DeLong p", "Kappa difference (95% interval)"]
    assert list(details["Comparison"]) == list(table["Comparison"])
    assert details.iloc[0]["Studies"] == 1199 and details["Studies"].dtype.kind == "i"
    assert details.iloc[0]["DeLong p"] == "0.09"
    assert details.iloc[1]["DeLong p"] == "< 0.001"
    assert details.iloc[0]["Kappa difference (95% interval)"].startswith("+0.010 (")
    assert "-" not in "".join(table.iloc[:, 2]) + "".join(details.iloc[:, 3])
    for make in (evaluation.comparison_table, evaluation.comparison_details):
        with pytest.raises(ValueError, match="at least one"):
            make([])


def test_seed_spread_matches_numpy_and_covers_the_true_sd():
    values = [0.861, 0.874, 0.858, 0.869, 0.866]
    spread = evaluation.seed_spread(values)
    assert spread["n"] == 5
    assert spread["mean"] == pytest.approx(np.mean(values))
    assert spread["sd"] == pytest.approx(np.std(values, ddof=1))
    assert spread["sd_low"] < spread["sd"] < spread["sd_high"]
    # The chi-square interval covers the true SD of normal samples about 95% of the time.
    rng = np.random.default_rng(0)
    samples = rng.normal(0.85, 0.01, size=(2000, 5))
    covered = [s["sd_low"] <= 0.01 <= s["sd_high"] for s in map(evaluation.seed_spread, samples)]
    assert np.mean(covered) == pytest.approx(0.95, abs=0.02)
    wider = evaluation.seed_spread(values, confidence=0.99)
    assert wider["sd_low"] < spread["sd_low"] and wider["sd_high"] > spread["sd_high"]
    with pytest.raises(ValueError, match="at least two"):
        evaluation.seed_spread([0.86])


@pytest.mark.parametrize("metric", ["auroc", "kappa"])
def test_forest_plot_has_one_row_per_comparison(metric):
    labels, a, b = _correlated(n=200, seed=8)
    _, c, _ = _correlated(n=200, seed=9)
    tables = {"DenseNet-169": _table(labels, a), "ResNet-50": _table(labels, b), "ensemble": _table(labels, c)}
    comparisons = [
        evaluation.compare_paired(tables[x], tables[y], n_resamples=200, name_a=x, name_b=y)
        for x, y in [("DenseNet-169", "ResNet-50"), ("DenseNet-169", "ensemble"), ("ResNet-50", "ensemble")]
    ]
    fig = figures.paired_differences(comparisons, metric=metric, title="Paired differences")
    try:
        assert isinstance(fig, plt.Figure)
        ax = fig.axes[0]
        assert [t.get_text() for t in ax.get_yticklabels()] == [
            "DenseNet-169 vs ResNet-50",
            "DenseNet-169 vs ensemble",
            "ResNet-50 vs ensemble",
        ]
        quantity = "study-level AUROC" if metric == "auroc" else "Cohen's kappa"
        assert ax.get_xlabel() == f"Difference in {quantity} (A \u2212 B)"
        assert ax.get_legend() is None
        assert fig.get_figwidth() == pytest.approx(FIGURE_WIDTH)
        ((markers, _, (bars,)),) = ax.containers  # one errorbar: points and horizontal intervals
        assert markers.get_xydata()[:, 0] == pytest.approx([getattr(c, f"{metric}_diff") for c in comparisons])
        intervals = np.array([segment[:, 0] for segment in bars.get_segments()])
        expected = [(getattr(c, f"{metric}_low"), getattr(c, f"{metric}_high")) for c in comparisons]
        assert intervals == pytest.approx(np.array(expected))
        assert ax.yaxis_inverted()
    finally:
        plt.close(fig)


def test_glue_comparisons_glues_the_verdicts_and_their_details(monkeypatch):
    import mura_thesis as book

    glued = {}
    monkeypatch.setattr(book, "glue", lambda name, value, display=False: glued.__setitem__(name, value))
    book.glue_comparisons("tab-x", [_comparison(-0.004, 0.047, name_a="a", name_b="b")])
    assert sorted(glued) == ["tab-x", "tab-x-details"]
    assert list(glued["tab-x"].data.columns)[:2] == ["Comparison", "Verdict (AUROC)"]
    assert "DeLong p" in glued["tab-x-details"].data.columns
    for table in glued.values():  # cells may wrap on a page: a phone shows more columns
        assert 'class="dataframe thesis-table thesis-wrap"' in table.to_html()
