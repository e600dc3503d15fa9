import numpy as np
import pandas as pd
import pytest
from sklearn import metrics as skm

from mura_lib import evaluation
from mura_lib.inputs import paper_sample_weights


@pytest.fixture
def scores():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 120)
    probabilities = np.clip(rng.normal(0.35 + 0.3 * labels, 0.2), 0, 1)
    return labels, probabilities


def test_metrics_match_known_values():
    labels = [0, 0, 0, 0, 1, 1, 1, 1]
    probabilities = [0.1, 0.2, 0.6, 0.3, 0.7, 0.8, 0.4, 0.9]
    result = evaluation.study_metrics(labels, probabilities)
    # 3 of 4 abnormal and 3 of 4 normal right; kappa = (0.75 - 0.5) / (1 - 0.5).
    assert result["sensitivity"] == pytest.approx(0.75)
    assert result["specificity"] == pytest.approx(0.75)
    assert result["accuracy"] == pytest.approx(0.75)
    assert result["kappa"] == pytest.approx(0.5)
    # 15 of the 16 (abnormal, normal) pairs are ordered correctly.
    assert result["auroc"] == pytest.approx(15 / 16)


def test_vectorised_statistics_agree_with_scikit_learn(scores):
    labels, probabilities = scores
    predicted = (probabilities > 0.5).astype(int)
    assert evaluation._auroc(labels, probabilities) == pytest.approx(skm.roc_auc_score(labels, probabilities))
    assert evaluation._kappa(labels, predicted) == pytest.approx(skm.cohen_kappa_score(labels, predicted))
    assert evaluation._rate("f1")(labels, predicted) == pytest.approx(skm.f1_score(labels, predicted))
    # Ties: scikit-learn counts them as half.
    tied = np.round(probabilities, 1)
    assert evaluation._auroc(labels, tied) == pytest.approx(skm.roc_auc_score(labels, tied))


def test_bootstrap_interval_contains_estimate_and_narrows_with_data(scores):
    labels, probabilities = scores
    low, high = evaluation.bootstrap_interval(labels, probabilities, "auroc", n_resamples=400)
    estimate = skm.roc_auc_score(labels, probabilities)
    assert low < estimate < high
    wide = evaluation.bootstrap_interval(labels[:30], probabilities[:30], "auroc", n_resamples=400)
    assert (wide[1] - wide[0]) > (high - low)
    assert evaluation.bootstrap_interval(labels, probabilities, "auroc", n_resamples=400, seed=0) == (low, high)


def _predictions():
    return pd.DataFrame(
        {
            "relpath": [f"s{s}/image{v}.png" for s, v in [(1, 1), (1, 2), (1, 3), (2, 1), (2, 2)]],
            "study_path": ["valid/XR_HAND/patient1/study1_positive"] * 3
            + ["valid/XR_WRIST/patient2/study1_negative"] * 2,
            "study_type": ["XR_HAND"] * 3 + ["XR_WRIST"] * 2,
            "label": [1, 1, 1, 0, 0],
            "probability": [0.2, 0.9, 0.7, 0.1, 0.6],
        }
    )


def test_aggregation_rules():
    predictions = _predictions()
    mean = evaluation.aggregate_studies(predictions, "mean").set_index("study_path")["probability"]
    assert mean.iloc[0] == pytest.approx(0.6)
    assert mean.iloc[1] == pytest.approx(0.35)
    assert evaluation.aggregate_studies(predictions, "max")["probability"].tolist() == pytest.approx([0.9, 0.6])
    assert evaluation.aggregate_studies(predictions, "vote")["probability"].tolist() == pytest.approx([2 / 3, 0.5])
    assert evaluation.aggregate_studies(predictions)["views"].tolist() == [3, 2]
    with pytest.raises(ValueError, match="rule must be"):
        evaluation.aggregate_studies(predictions, "mode")


def test_aggregation_rejects_conflicting_labels():
    predictions = _predictions()
    predictions.loc[0, "label"] = 0
    with pytest.raises(ValueError, match="different labels"):
        evaluation.aggregate_studies(predictions)


def test_paper_class_weights():
    images = pd.DataFrame({"study_type": ["XR_HAND"] * 4 + ["XR_WRIST"] * 2, "label": [1, 0, 0, 0, 1, 0]})
    weights = paper_sample_weights(images)
    # Hand: 3 normal, 1 abnormal -> abnormal weighs 3/4, normal 1/4; wrist is balanced.
    assert weights.tolist() == pytest.approx([0.75, 0.25, 0.25, 0.25, 0.5, 0.5])
    hand = images["study_type"] == "XR_HAND"
    assert weights[hand & (images["label"] == 1)].sum() == pytest.approx(weights[hand & (images["label"] == 0)].sum())


def test_ensemble_is_mean_of_runs():
    first = _predictions()
    second = first.assign(probability=1 - first["probability"])
    assert evaluation.ensemble([first, second])["probability"].tolist() == pytest.approx([0.5] * 5)
    with pytest.raises(ValueError, match="same images"):
        evaluation.ensemble([first, second.iloc[:3]])


def test_submission_round_trip_matches_official_kappa(tmp_path, scores):
    labels, probabilities = scores
    types = np.array(["XR_HAND", "XR_WRIST", "XR_ELBOW"])[np.arange(len(labels)) % 3]
    studies = pd.DataFrame(
        {
            "study_path": [
                f"valid/{t}/patient{11185 + i}/study1_{'positive' if l else 'negative'}"
                for i, (t, l) in enumerate(zip(types, labels))
            ],
            "study_type": types,
            "label": labels,
            "probability": probabilities,
        }
    )
    submission = evaluation.export_submission(studies, tmp_path / "predictions.csv")
    first_line = submission.read_text().splitlines()[0]
    assert first_line.startswith("MURA-v1.1/valid/XR_HAND/patient11185/study1_") and first_line[-2:] in (",0", ",1")
    truth = tmp_path / "valid_labeled_studies.csv"
    truth.write_text("".join(f"MURA-v1.1/{p}/,{l}\n" for p, l in zip(studies["study_path"], labels)))
    scored = evaluation.score_submission(submission, truth)
    predicted = (probabilities > 0.5).astype(int)
    assert scored.loc["overall", "kappa"] == pytest.approx(skm.cohen_kappa_score(labels, predicted))
    hand = types == "XR_HAND"
    assert scored.loc["XR_HAND", "kappa"] == pytest.approx(skm.cohen_kappa_score(labels[hand], predicted[hand]))
    assert scored.loc["overall", "kappa_low"] < scored.loc["overall", "kappa"] < scored.loc["overall", "kappa_high"]


def test_scorer_rejects_incomplete_submission(tmp_path):
    (tmp_path / "truth.csv").write_text(
        "MURA-v1.1/valid/XR_HAND/patient1/study1_positive/,1\nMURA-v1.1/valid/XR_HAND/patient2/study1_negative/,0\n"
    )
    (tmp_path / "sub.csv").write_text("MURA-v1.1/valid/XR_HAND/patient1/study1_positive/,1\n")
    with pytest.raises(ValueError, match="lacks 1 studies"):
        evaluation.score_submission(tmp_path / "sub.csv", tmp_path / "truth.csv")


def test_threshold_is_chosen_from_given_studies():
    studies = pd.DataFrame({"label": [0, 0, 1, 1], "probability": [0.1, 0.3, 0.35, 0.8]})
    for criterion in evaluation.THRESHOLD_RULES:
        threshold = evaluation.choose_threshold(studies, criterion)
        assert 0.3 < threshold < 0.35
        assert (studies["probability"] > threshold).astype(int).tolist() == [0, 0, 1, 1]
    with pytest.raises(ValueError, match="criterion"):
        evaluation.choose_threshold(studies, "f1")
    with pytest.raises(ValueError, match="both classes"):
        evaluation.choose_threshold(studies.assign(label=1))


def _validation():
    """Ten validation studies, four abnormal, in descending order of probability:
    A A N N | N A N A N N.  Calling the top four abnormal matches the prevalence (threshold
    midway between 0.6 and 0.3); calling the top two maximises Youden's J (0.5 - 0 against
    0.75 - 3/6 and 1 - 4/6 further down) and kappa (0.545 against 0.167 and 0.286)."""
    return pd.DataFrame(
        {
            "label": [1, 1, 0, 0, 0, 1, 0, 1, 0, 0],
            "probability": [0.9, 0.8, 0.7, 0.6, 0.3, 0.25, 0.2, 0.15, 0.1, 0.05],
        }
    )


@pytest.mark.parametrize("criterion, expected", [("prevalence", 0.45), ("youden", 0.75), ("kappa", 0.75)])
def test_threshold_rules_on_a_known_case(criterion, expected):
    studies = _validation().sample(frac=1.0, random_state=0)  # the order of the rows does not matter
    assert evaluation.choose_threshold(studies, criterion) == pytest.approx(expected)
    assert evaluation.THRESHOLD_RULE == "prevalence"


def test_prevalence_rule_with_tied_probabilities_calls_the_nearest_share():
    # Prevalence 0.5; the ties allow 1, 3 or 4 of 4 studies above a threshold, none of them 2.
    # 1 and 3 are equally near; the tie goes to the higher threshold, midway between 0.9 and 0.4.
    studies = pd.DataFrame({"label": [0, 1, 0, 1], "probability": [0.2, 0.4, 0.4, 0.9]})
    assert evaluation.choose_threshold(studies) == pytest.approx(0.65)


def _miscalibrated(repeats: int = 5):
    """A model that ranks perfectly but calls every study abnormal at 0.5."""
    validation = pd.DataFrame({"label": [0, 0, 1, 1], "probability": [0.6, 0.7, 0.8, 0.9]})
    test = pd.DataFrame(
        {"label": [0, 0, 0, 1, 1, 1] * repeats, "probability": [0.55, 0.6, 0.7, 0.8, 0.85, 0.95] * repeats}
    )
    return validation, test


def test_kappa_at_the_default_and_the_chosen_threshold():
    validation, test = _miscalibrated()
    point = evaluation.operating_point(validation, test, n_resamples=200, seed=0)
    assert point["threshold"] == pytest.approx(0.75)
    # At 0.5 every study is called abnormal: agreement no better than chance.  At 0.75 the
    # calls are the labels.
    assert point["kappa_default"] == pytest.approx(0.0)
    assert point["kappa_chosen"] == pytest.approx(1.0)
    assert point["kappa_diff"] == pytest.approx(1.0)
    assert point["called_default"] == 1.0 and point["called_chosen"] == 0.5 and point["prevalence"] == 0.5
    assert point["flag"] == "collapsed"
    assert point["sensitivity_default"] == 1.0 and point["specificity_default"] == 0.0
    assert point["kappa_low"] > 0 and point["verdict"] == "higher"


def test_the_same_decisions_at_both_thresholds_make_no_difference():
    validation = pd.DataFrame({"label": [0, 0, 1, 1], "probability": [0.2, 0.45, 0.55, 0.9]})
    test = pd.DataFrame({"label": [0, 1, 0, 1, 1, 0], "probability": [0.1, 0.3, 0.35, 0.7, 0.8, 0.9]})
    point = evaluation.operating_point(validation, test, n_resamples=100)
    assert point["threshold"] == pytest.approx(0.5)
    assert point["kappa_diff"] == 0.0 and point["verdict"] == "undetermined"
    expected = skm.cohen_kappa_score(test["label"], (test["probability"] > 0.5).astype(int))
    assert point["kappa_default"] == pytest.approx(expected)


def _binned():
    # Bins of width 0.1: (0.1, 0.2] holds 0.12 and 0.15 (one abnormal), (0.6, 0.7] holds 0.62,
    # 0.65 and 0.68 (two abnormal).
    return pd.DataFrame({"label": [0, 1, 1, 0, 1], "probability": [0.12, 0.15, 0.62, 0.68, 0.65]})


def test_brier_score_and_ece_against_hand_computed_values():
    studies = _binned()
    result = evaluation.calibration(studies, n_resamples=100)
    brier = (0.12**2 + 0.85**2 + 0.38**2 + 0.68**2 + 0.35**2) / 5
    ece = (2 * abs(0.135 - 0.5) + 3 * abs(0.65 - 2 / 3)) / 5
    assert result["brier"] == pytest.approx(brier)
    assert result["ece"] == pytest.approx(ece)
    assert evaluation.expected_calibration_error(studies["label"], studies["probability"]) == pytest.approx(ece)
    assert result["mean_probability"] == pytest.approx(0.444) and result["prevalence"] == pytest.approx(0.6)
    # A probability on a bin edge belongs to the bin below it, as in calibration_curve.
    assert evaluation.expected_calibration_error([1, 0], [0.1, 0.2]) == pytest.approx((0.9 + 0.2) / 2)


def test_reliability_curve_is_scikit_learns_with_the_bin_counts():
    curve = evaluation.reliability_curve(_binned())
    assert curve["studies"].tolist() == [2, 3]
    # A probability on an edge (0.2) in the bin below, as calibration_curve counts it.
    edge = evaluation.reliability_curve(pd.DataFrame({"label": [0, 1, 1], "probability": [0.2, 0.25, 0.9]}))
    assert edge["studies"].tolist() == [1, 1, 1] and edge["low"].tolist() == pytest.approx([0.1, 0.2, 0.8])
    assert curve["low"].tolist() == pytest.approx([0.1, 0.6]) and curve["high"].tolist() == pytest.approx([0.2, 0.7])
    assert curve["predicted"].tolist() == pytest.approx([0.135, 0.65])
    assert curve["observed"].tolist() == pytest.approx([0.5, 2 / 3])


def test_overconfidence_reads_over_and_under():
    # Confidence of each decision at 0.5 minus whether it was right: 0.9 - 1, 0.8 - 0, 0.8 - 1,
    # 0.7 - 0; mean 0.3.
    over = pd.DataFrame({"label": [1, 0, 0, 1], "probability": [0.9, 0.8, 0.2, 0.3]})
    assert evaluation.calibration(over, n_resamples=50)["overconfidence"] == pytest.approx(0.3)
    # Every decision right with a confidence of 0.6 to 0.65: under-confident.
    under = pd.DataFrame({"label": [1, 1, 0, 0] * 5, "probability": [0.6, 0.65, 0.35, 0.4] * 5})
    result = evaluation.calibration(under, n_resamples=200)
    assert result["overconfidence"] == pytest.approx(-0.375)
    assert result["overconfidence_high"] < 0 and result["reading"] == "under"
    overconfident = pd.DataFrame({"label": [1, 0] * 10, "probability": [0.99, 0.98] * 10})
    assert evaluation.calibration(overconfident, n_resamples=200)["reading"] == "over"


@pytest.mark.parametrize(
    "probabilities, flag",
    [
        ([0.2] * 4 + [0.6] * 6, "none"),  # 60% called abnormal, prevalence 50%: 10 points
        ([0.2] * 3 + [0.6] * 7, "far"),  # 70%: 20 points
        ([0.2] * 7 + [0.6] * 3, "far"),  # 30%: 20 points below
        ([0.6] * 10, "collapsed"),  # every study called abnormal
        ([0.4] * 10, "collapsed"),  # one probability
    ],
)
def test_calls_far_from_the_prevalence_are_flagged(probabilities, flag):
    studies = pd.DataFrame({"label": [0, 1] * 5, "probability": probabilities})
    calls = evaluation.calls_against_prevalence(studies)
    assert calls["flag"] == flag
    assert calls["prevalence"] == 0.5
    assert calls["called"] == pytest.approx(np.mean(np.array(probabilities) > 0.5))


def test_calls_table_gives_the_share_the_flag_and_kappa_at_the_chosen_threshold():
    validation, test = _miscalibrated(repeats=1)
    fine = test.assign(probability=[0.1, 0.2, 0.3, 0.7, 0.8, 0.9])
    table = evaluation.calls_table({0: test, 1: fine}, validation={0: validation, 1: validation})
    assert table["Called abnormal"].tolist() == ["100%", "50%"]
    assert table["Flag"].tolist() == ["collapsed", ""]
    # Both at the validation threshold 0.75: the first model's calls become the labels; the
    # second calls two of three abnormal studies (kappa (5/6 - 1/2) / (1 - 1/2) = 2/3).
    assert table["Kappa at chosen threshold"].tolist() == pytest.approx([1.0, 2 / 3])
    assert table["Kappa at 0.5"].tolist() == pytest.approx([0.0, 1.0])
