import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from mura_lib import analysis
from mura_lib.config import ExperimentConfig
from mura_lib.dataset import load_mura
from mura_lib.preprocess import build_cache
from mura_lib.runs import RunStore
from mura_lib.synthetic import image_truth, study_truth
from mura_lib.training import run_experiment
from mura_thesis import finding_tables, values

TINY = dict(image_size=32, depth=2, width=8, epochs=2, batch_size=16, seed=1)


@pytest.fixture(scope="module")
def truth(synthetic_root):
    return study_truth(synthetic_root)


def fabricated(truth, seed=0, shortcut=False):
    """Study predictions over every study of the truth table: noisy scores that rise with the label,
    or (``shortcut``) 1.0 for hardware and casts and the normal studies' scores for the rest."""
    rng = np.random.default_rng(seed)
    probability = rng.uniform(0, 0.6, len(truth)) + 0.3 * truth["label"].to_numpy()
    if shortcut:
        probability = rng.uniform(0, 0.5, len(truth))
        probability[(truth["hardware"] | truth["cast"]).to_numpy()] = 1.0
    return truth[["study_path", "study_type", "label", "views"]].assign(probability=probability)


def test_per_finding_auroc_matches_scikit_learn(truth):
    studies = fabricated(truth)
    table = analysis.detection_by_finding(studies, truth, n_resamples=200, seed=0)
    normal = studies["label"] == 0
    assert list(table[analysis.FINDING]) == [f for f in analysis.FINDINGS if (truth["finding"] == f).any()]
    for _, row in table.iterrows():
        chosen = normal | (truth["finding"] == row[analysis.FINDING]).to_numpy()
        part = studies.loc[chosen]
        assert row[analysis.AUROC] == pytest.approx(roc_auc_score(part["label"], part["probability"]), abs=1e-12)
        abnormal = part.loc[part["label"] == 1, "probability"]
        assert row[analysis.STUDIES] == len(abnormal)
        assert row[analysis.SENSITIVITY] == pytest.approx((abnormal > 0.5).mean())
        assert row[analysis.LOW] <= row[analysis.AUROC] <= row[analysis.HIGH]
    shown = finding_tables.readable(table)
    assert list(shown.columns) == [
        "Finding",
        "Abnormal studies",
        "AUROC against normal studies",
        "95% interval",
        "Sensitivity at 0.5",
    ]


def test_conspicuity_tertiles_split_the_subtle_findings(truth):
    studies = fabricated(truth, seed=3)
    table = analysis.detection_by_conspicuity(studies, truth, n_resamples=200, seed=0)
    subtle = truth.loc[truth["finding"].isin(analysis.SUBTLE_FINDINGS)]
    assert list(table[analysis.CONSPICUITY]) == list(analysis.CONSPICUITY_LEVELS)
    assert table[analysis.STUDIES].sum() == len(subtle)
    # Each tertile holds about a third of the studies and the thirds are ordered by conspicuity.
    assert table[analysis.STUDIES].max() - table[analysis.STUDIES].min() <= 2
    tertile = pd.qcut(subtle["conspicuity"], 3, labels=list(analysis.CONSPICUITY_LEVELS))
    normal = studies.loc[studies["label"] == 0, "probability"]
    for _, row in table.iterrows():
        abnormal = studies.set_index("study_path").loc[
            subtle.loc[tertile == row[analysis.CONSPICUITY], "study_path"], "probability"
        ]
        labels = np.r_[np.ones(len(abnormal)), np.zeros(len(normal))]
        expected = roc_auc_score(labels, np.r_[abnormal.to_numpy(), normal.to_numpy()])
        assert row[analysis.AUROC] == pytest.approx(expected, abs=1e-12)
    per_finding = analysis.detection_by_conspicuity(studies, truth, per_finding=True, n_resamples=200, seed=0)
    assert set(per_finding[analysis.FINDING]) <= set(analysis.SUBTLE_FINDINGS)


def test_shortcut_reliance_sees_a_network_that_only_finds_hardware_and_casts(truth):
    studies = fabricated(truth, shortcut=True)
    result = analysis.shortcut_reliance(studies, truth, n_resamples=500, seed=0)
    assert result["auroc_with"] == 1.0
    assert result["with"] == int((truth["hardware"] | truth["cast"]).sum())
    assert result["without"] + result["with"] == int(truth["label"].sum())
    assert result["gap"] > 0.3
    assert result["gap_low"] > 0
    assert result["low_without"] <= 0.5 <= result["high_without"]
    glued = values.shortcut_values(analysis.ShortcutEvidence(result))
    assert glued["sc-verdict"] == "higher" and glued["sc-reading"] == "shortcut" and glued["mk"] == "absent"
    # A network that scores every abnormal study alike shows no gap.
    even = fabricated(truth, seed=1)
    even.loc[even["label"] == 1, "probability"] = 0.9
    balanced = analysis.shortcut_reliance(even, truth, n_resamples=500, seed=0)
    assert balanced["gap"] == 0 and balanced["gap_low"] <= 0 <= balanced["gap_high"]


def test_finding_values_sort_findings_by_their_intervals():
    table = pd.DataFrame(
        {
            analysis.FINDING: ["fracture", "hardware", "lesion"],
            analysis.STUDIES: [9, 8, 1],
            analysis.AUROC: [0.55, 0.97, 0.6],
            analysis.LOW: [0.45, 0.93, np.nan],
            analysis.HIGH: [0.66, 0.99, np.nan],
            analysis.SENSITIVITY: [0.2, 0.9, 0.0],
        }
    )
    glued = values.finding_values(table)
    assert glued["findings"] == "measured"
    assert glued["findings-detected"] == "hardware (AUROC 0.970; 0.930 to 0.990)"
    assert glued["findings-undecided"] == "fractures (AUROC 0.550; 0.450 to 0.660)"
    assert glued["findings-too-few"] == "lesions" and glued["findings-any-below"] == "no"
    assert (glued["fracture"], glued["fracture-auroc"], glued["fracture-interval"]) == (
        "undecided",
        "0.550",
        "0.450 to 0.660",
    )
    assert glued["hardware"] == "detected" and glued["lesion"] == "too-few" and glued["cast"] == "absent"
    assert glued["sensitivity"] == "spread"
    assert (glued["sensitivity-subtle"], glued["sensitivity-conspicuous"]) == ("0.00 to 0.20", "0.90")


def test_no_truth_no_tables(truth):
    studies = fabricated(truth)
    assert analysis.detection_by_finding(studies, None) is None
    assert analysis.detection_by_conspicuity(studies, None) is None
    assert analysis.shortcut_reliance(studies, None) is None
    assert values.finding_values(None)["findings"] == "absent"
    assert values.conspicuity_values(None, None)["conspicuity"] == "absent"
    assert values.shortcut_values(analysis.ShortcutEvidence(None))["sc"] == "absent"


def test_predictions_from_another_dataset_are_refused(truth):
    studies = fabricated(truth)
    studies.loc[0, "study_path"] = "valid/XR_HAND/patient99999/study1_positive"
    with pytest.raises(ValueError, match="not in the ground truth"):
        analysis.detection_by_finding(studies, truth)


@pytest.fixture(scope="module")
def tiny_run(synthetic_root, tmp_path_factory):
    cache_dir = tmp_path_factory.mktemp("cache")
    store = RunStore(tmp_path_factory.mktemp("runs"))
    run = run_experiment(
        ExperimentConfig(**TINY), load_mura(synthetic_root), store=store, cache_dir=cache_dir, verbose="silent"
    )
    return run, cache_dir


def test_redrawn_films_reproduce_the_cache_and_the_stored_predictions(synthetic_root, tiny_run):
    run, cache_dir = tiny_run
    images = run.predictions.loc[run.predictions["subset"] == "test"]
    redrawn = analysis.render_preprocessed(
        synthetic_root, images["relpath"], run.config.image_size, run.config.policy, markers=True, workers=1
    )
    cache = build_cache(
        load_mura(synthetic_root), run.config.image_size, policy=run.config.policy, cache_dir=cache_dir, progress=False
    )
    np.testing.assert_array_equal(redrawn, cache.images[cache.rows_for(images["relpath"])])
    probability = analysis.predict_pixels(run, redrawn, images["label"])
    np.testing.assert_allclose(probability, images["probability"], atol=1e-5, rtol=0)


def test_marker_masking_on_a_trained_run(synthetic_root, tiny_run, tmp_path):
    run, _ = tiny_run
    comparison, summary, changes = analysis.marker_masking(
        run, synthetic_root, n_resamples=200, seed=0, cache_dir=tmp_path, workers=2
    )
    images = run.predictions.loc[run.predictions["subset"] == "test"]
    assert comparison.studies == images["study_path"].nunique() == summary["studies"]
    assert comparison.auroc_b == pytest.approx(run.metrics["auroc"])
    marked = image_truth(synthetic_root).set_index("relpath").loc[images["relpath"], "marker"].to_numpy()
    assert summary["marked_images"] == marked.sum() > 0
    assert (~marked).sum() > 0
    assert np.abs(changes.loc[~changes["marker"], "change"]).max() < 1e-5
    assert summary["unmarked_max_abs_change"] < 1e-5
    assert summary["marked_mean_abs_change"] == pytest.approx(np.abs(changes.loc[changes["marker"], "change"]).mean())
    assert 0 <= summary["flipped_share"] <= 1
    # Removing the markers changed the pixels the model saw, not only nothing.
    masked = analysis.render_preprocessed(
        synthetic_root, images["relpath"], run.config.image_size, run.config.policy, cache_dir=tmp_path
    )
    kept = analysis.render_preprocessed(
        synthetic_root, images["relpath"], run.config.image_size, run.config.policy, markers=True, workers=1
    )
    differs = (masked != kept).reshape(len(masked), -1).any(axis=1)
    assert differs[marked].all() and not differs[~marked].any()
    assert len(list((tmp_path / "redrawn").glob("*.npy"))) == 1  # the masked films, kept on disk and reused
    glued = values.shortcut_values(analysis.ShortcutEvidence(None, comparison, summary, changes))
    assert glued["mk"] == "measured" and glued["mk-marked"] == summary["marked_images"]
    assert glued["mk-noise"] in ("zero", "rounding") and glued["mk-verdict"] in ("higher", "lower", "undetermined")


def test_shortcut_values_follow_the_measurements(truth):
    from mura_lib.evaluation import compare_paired

    reliant = analysis.shortcut_reliance(fabricated(truth, shortcut=True), truth, n_resamples=300, seed=0)
    studies = fabricated(truth)
    same = compare_paired(studies, studies, n_resamples=200, seed=0)
    moved = compare_paired(
        studies.assign(probability=studies["probability"] * (studies["label"] == 0)), studies, n_resamples=200, seed=0
    )
    summary = {"marked_mean_abs_change": 0.004}
    shown = truth[["hardware", "cast", "marker"]].head(6)
    summary |= {"marked_images": 3, "images": 6, "marked_p95_abs_change": 0.01, "marked_mean_change": 0.001,
                "flipped": 0, "studies": 4, "flipped_share": 0.0, "unmarked_max_abs_change": 0.0}  # fmt: skip
    glued = values.shortcut_values(analysis.ShortcutEvidence(reliant, same, summary, None, shown))
    assert glued["shown-views"] == 6 and glued["shown-conspicuous"] == int((shown["hardware"] | shown["cast"]).sum())
    assert glued["sc-reading"] == "shortcut" and glued["mk-verdict"] == "undetermined" and glued["mk-noise"] == "zero"
    assert values.shortcut_values(analysis.ShortcutEvidence(reliant, moved, summary))["mk-verdict"] != "undetermined"


def test_conspicuity_gap_judges_the_thirds_by_the_interval_of_their_difference(truth):
    studies = fabricated(truth, seed=3)
    table = analysis.detection_by_conspicuity(studies, truth, n_resamples=200, seed=0)
    gap = analysis.conspicuity_gap(studies, truth, n_resamples=300, seed=0)
    pooled = table.set_index(analysis.CONSPICUITY)[analysis.AUROC]
    assert gap["gap"] == pytest.approx(pooled["high"] - pooled["low"], abs=1e-12)
    assert gap["low"] <= gap["gap"] <= gap["high"]
    assert analysis.conspicuity_gap(studies, None) is None


def test_conspicuity_is_cut_into_thirds_within_each_finding(truth):
    """A score that rises with conspicuity within one finding only is seen in that finding's thirds;
    the others show no gap."""
    studies = fabricated(truth, seed=3)
    lesions = (truth["finding"] == "lesion").to_numpy()
    studies.loc[lesions, "probability"] = truth.loc[lesions, "conspicuity"].to_numpy()
    other = (truth["finding"].isin(["fracture", "degenerative"])).to_numpy()
    studies.loc[other, "probability"] = 0.6
    table = analysis.detection_by_conspicuity(studies, truth, per_finding=True, n_resamples=200, seed=0)
    gaps = analysis.conspicuity_gaps(studies, truth, n_resamples=300, seed=0)
    assert set(gaps) == set(analysis.SUBTLE_FINDINGS)
    for finding, gap in gaps.items():
        rows = table.loc[table[analysis.FINDING] == finding].set_index(analysis.CONSPICUITY)[analysis.AUROC]
        if gap is None:
            assert rows.empty or len(rows) == 3
            continue
        assert gap["gap"] == pytest.approx(rows["high"] - rows["low"], abs=1e-12)
        alone = analysis.conspicuity_gap(studies, truth, findings=(finding,), n_resamples=300, seed=0)
        assert alone == gap
    assert gaps["lesion"]["gap"] > 0 and gaps["fracture"]["gap"] == 0
    glued = values.conspicuity_values(table, gaps)
    assert glued["conspicuity"] == "measured"
    if gaps["lesion"]["low"] > 0:
        assert glued["higher"].startswith("lesions (+") and glued["any-higher"] == "yes"
    assert "fractures (+0.000" in glued["undetermined"] and glued["any-lower"] == "no"
    assert values.conspicuity_values(None, None)["conspicuity"] == "absent"
    assert analysis.conspicuity_gaps(studies, None) is None


def test_conspicuity_values_sort_findings_by_the_interval_of_their_gap():
    table = pd.DataFrame({analysis.FINDING: ["lesion"]})
    gaps = {
        "fracture": {"gap": 0.02, "low": -0.1, "high": 0.14},
        "lesion": {"gap": 0.3, "low": 0.1, "high": 0.5},
        "degenerative": None,
    }
    glued = values.conspicuity_values(table, gaps)
    assert glued["higher"] == "lesions (+0.300; +0.100 to +0.500)" and glued["any-higher"] == "yes"
    assert glued["undetermined"] == "fractures (+0.020; −0.100 to +0.140)"
    assert glued["uncut"] == "degenerative change" and glued["any-lower"] == "no" and glued["lower"] == "none"
    assert values.conspicuity_values(table.iloc[0:0], {"lesion": None})["conspicuity"] == "too-few"


def test_detection_table_always_has_a_row_to_caption(truth):
    studies = fabricated(truth)
    table = analysis.detection_by_finding(studies, truth, n_resamples=50, seed=0)
    html = finding_tables.detection_table(table).to_html()
    for finding in table[analysis.FINDING]:
        assert f">{finding}<" in html
    assert "not recorded" in finding_tables.detection_table(None).to_html()
    empty = finding_tables.detection_table(table.iloc[0:0], drop=analysis.FINDING).to_html()
    assert "no abnormal test study" in empty


def test_conspicuity_table_for_reading_drops_the_finding_column(truth):
    studies = fabricated(truth)
    table = analysis.detection_by_conspicuity(studies, truth, n_resamples=50, seed=0)
    html = finding_tables.detection_table(table, drop=analysis.FINDING).to_html()
    assert "Conspicuity range" in html and ">Finding<" not in html
    assert "not recorded" in finding_tables.detection_table(None).to_html()


def test_shortcut_evidence_gathers_both_measurements_for_the_page(synthetic_root, tiny_run, tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure
    from pandas.io.formats.style import Styler

    run, _ = tiny_run
    images = run.predictions.loc[run.predictions["subset"] == "test"]
    views = images["relpath"].iloc[:4]
    evidence = analysis.shortcut_evidence(run, synthetic_root, views=views, n_resamples=200, seed=0, cache_dir=tmp_path)
    direct = analysis.shortcut_reliance(
        run.study_predictions("test"), study_truth(synthetic_root), n_resamples=200, seed=0
    )
    assert evidence.shortcut["gap"] == pytest.approx(direct["gap"]) and evidence.shortcut["with"] == direct["with"]
    assert evidence.comparison.name_a == "markers removed"
    assert evidence.comparison.auroc_b == pytest.approx(run.metrics["auroc"])
    assert len(evidence.changes) == len(images) and evidence.summary["images"] == len(images)
    truth = image_truth(synthetic_root).set_index("relpath")
    assert list(evidence.shown.index) == list(views) and list(evidence.shown.columns) == ["hardware", "cast", "marker"]
    assert evidence.shown["marker"].tolist() == truth.loc[views, "marker"].tolist()

    glued = values.shortcut_values(evidence)
    assert glued["sc"] == glued["mk"] == "measured" and glued["shown-views"] == 4
    assert glued["sc-with"] == direct["with"] and glued["sc-gap"] == values.signed(direct["gap"])
    table = finding_tables.shortcut_table(evidence)
    assert isinstance(table, Styler) and table.data["Studies"].tolist()[:2] == [direct["with"], direct["without"]]
    markers = finding_tables.marker_table(evidence)
    assert isinstance(markers, Styler) and "markers removed" in markers.to_html()
    figure = finding_tables.marker_figure(evidence)
    assert isinstance(figure, Figure) and len(figure.axes) == 2


def test_shortcut_evidence_without_ground_truth_omits_the_tables(mura_copy, tiny_run):
    from IPython.display import Markdown

    from mura_lib.synthetic.generator import TRUTH_FILENAME

    run, _ = tiny_run
    (mura_copy / TRUTH_FILENAME).unlink()
    evidence = analysis.shortcut_evidence(run, mura_copy, views=["x"], n_resamples=200, seed=0)
    assert evidence.shortcut is None and evidence.comparison is None and evidence.shown is None
    assert values.shortcut_values(evidence)["sc"] == values.shortcut_values(evidence)["mk"] == "absent"
    for shown in (
        finding_tables.shortcut_table(evidence),
        finding_tables.marker_table(evidence),
        finding_tables.marker_figure(evidence),
    ):
        assert isinstance(shown, Markdown) and shown.data == finding_tables.OMITTED
