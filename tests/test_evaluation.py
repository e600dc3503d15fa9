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
    for criterion in ("kappa", "youden"):
        threshold = evaluation.choose_threshold(studies, criterion)
        assert 0.3 < threshold < 0.35
        assert (studies["probability"] > threshold).astype(int).tolist() == [0, 0, 1, 1]
    with pytest.raises(ValueError, match="criterion"):
        evaluation.choose_threshold(studies, "f1")
