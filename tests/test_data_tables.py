from __future__ import annotations

from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd
import pytest
from PIL import Image

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from mura_lib.dataset import STUDY_TYPES, MuraDataset, load_mura  # noqa: E402
from mura_lib.synthetic import (  # noqa: E402
    FINDINGS,
    SyntheticSpec,
    dataset_spec,
    image_truth,
    plan_studies,
    study_truth,
)
from mura_thesis import data_tables  # noqa: E402


@pytest.fixture(scope="module")
def dataset(synthetic_root) -> MuraDataset:
    return load_mura(synthetic_root)


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def _study_labels(dataset: MuraDataset) -> dict[str, int]:
    """Each study's label read from its folder name (``study1_positive``), not from the loaded table."""
    return {path: int(path.endswith("positive")) for path in dataset.images["study_path"].unique()}


def test_overview_counts_match_the_files(dataset, synthetic_root):
    facts = data_tables.overview(dataset)
    pngs = [p for p in synthetic_root.rglob("*.png") if not p.name.startswith("._")]
    labels = _study_labels(dataset)
    assert facts["images"] == len(pngs)
    assert facts["studies"] == len(labels)
    assert facts["patients"] == len({p.parent.parent.name for p in pngs})
    assert facts["train-studies"] + facts["valid-studies"] == facts["studies"]
    assert facts["train-studies"] == sum(path.startswith("train/") for path in labels)
    assert facts["abnormal-share"] == pytest.approx(sum(labels.values()) / len(labels))


def test_counts_table_counts_studies_and_images_per_type_split_and_label(dataset):
    table = data_tables.counts_table(dataset)
    labels = _study_labels(dataset)
    assert list(table.index) == sorted(data_tables.TYPE_NAMES.values()) + ["total"]
    assert table.columns.names == ["", "split", "label"]
    assert table.loc["total", "studies"].sum() == len(labels)
    assert table.loc["total", "images"].sum() == len(dataset.images)
    hand = [p for p, label in labels.items() if p.startswith("train/XR_HAND/") and label == 1]
    assert table.loc["hand", ("studies", "training", "abnormal")] == len(hand)
    hand_images = dataset.images["relpath"].str.startswith("train/XR_HAND/") & dataset.images["study_path"].isin(hand)
    assert table.loc["hand", ("images", "training", "abnormal")] == hand_images.sum()


def test_counts_figure_has_one_panel_per_split_with_bars_per_type(dataset):
    fig = data_tables.counts_figure(dataset)
    axes = fig.get_axes()
    assert [ax.get_title() for ax in axes] == ["training split", "test split"]
    assert [t.get_text() for t in axes[0].get_yticklabels()] == sorted(data_tables.TYPE_NAMES.values())
    # One legend for the figure, below the panels, none over the bars.
    assert axes[0].get_legend() is None and axes[1].get_legend() is None
    (legend,) = fig.legends
    assert [t.get_text() for t in legend.get_texts()] == ["normal", "abnormal"]
    fig.canvas.draw()
    box = legend.get_window_extent()
    assert all(box.y1 <= ax.get_window_extent().y0 for ax in axes)
    studies = dataset.studies
    train_counts = sorted(studies.loc[studies["split"] == "train"].groupby(["study_type", "label"]).size())
    bars = sorted(int(p.get_width()) for p in axes[0].patches if p.get_width() > 0)
    assert bars == train_counts


def test_examples_figure_shows_one_study_per_type_and_label(dataset):
    fig = data_tables.examples_figure(dataset, seed=0)
    titles = [ax.get_title() for ax in fig.get_axes() if ax.images]
    assert len(titles) == 2 * len(STUDY_TYPES)
    assert titles[0] == f"{data_tables.TYPE_NAMES[STUDY_TYPES[0]]}\nnormal"
    assert titles[-1] == f"{data_tables.TYPE_NAMES[STUDY_TYPES[-1]]}\nabnormal"


def test_example_study_and_its_views(dataset):
    study = data_tables.example_study(dataset, seed=0)
    assert study["label"] == 1 and study["views"] >= min(3, dataset.studies["views"].max())
    fig = data_tables.study_figure(dataset, study["study_path"])
    shown = [ax for ax in fig.get_axes() if ax.images]
    assert [ax.get_title() for ax in shown] == [f"view {v}" for v in range(1, study["views"] + 1)]
    first = dataset.images.loc[(dataset.images["study_path"] == study["study_path"]) & (dataset.images["view"] == 1)]
    with Image.open(first["path"].iloc[0]) as handle:
        assert shown[0].images[0].get_array().shape == handle.convert("L").size[::-1]
    with pytest.raises(ValueError, match="no study"):
        data_tables.study_figure(dataset, "train/XR_HAND/patient0/study9_negative")


def test_views_table_and_facts(dataset):
    table = data_tables.views_table(dataset)
    views = dataset.images.groupby("study_path").size()
    assert table.to_numpy().sum() == len(views)
    assert sorted(table.index) == sorted(views.unique())
    facts = data_tables.view_facts(dataset)
    assert facts == {"mean-views": pytest.approx(views.mean()), "max-views": views.max()}


def test_image_sizes_facts_and_figure(dataset):
    sizes = data_tables.image_sizes(dataset, sample=30, seed=0)
    assert len(sizes) == 30 and list(sizes.columns) == ["width", "height", "mode", "longest", "shortest"]
    assert (sizes["longest"] >= sizes["shortest"]).all()
    facts = data_tables.size_facts(sizes)
    assert facts["size-sample"] == 30
    assert facts["size-portrait"] == pytest.approx(np.mean([h > w for w, h in zip(sizes["width"], sizes["height"])]))
    # The generator stores every image with its longest side at the dataset's image size.
    image_size = dataset_spec(dataset.root)["image_size"]
    assert facts["size-longest-max"] == facts["size-longest-median"] == image_size
    assert facts["size-shortest-min"] <= facts["size-shortest-max"] <= image_size
    assert facts["size-one"] == "no"  # the generator keeps each radiograph's aspect ratio
    # The generator records which images it stored as RGB; the rest are greyscale.
    every = data_tables.size_facts(data_tables.image_sizes(dataset, sample=10**6))
    assert every["size-sample"] == len(dataset.images)
    rgb = int(image_truth(dataset.root)["rgb"].sum())
    assert rgb > 0
    assert sorted(every["size-modes"].split(", ")) == sorted(
        [f"{rgb} in mode RGB", f"{len(dataset.images) - rgb} in mode L"]
    )
    fig = data_tables.sizes_figure(sizes)
    (ax,) = fig.get_axes()
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("width (pixels)", "height (pixels)")
    assert len(ax.collections[0].get_offsets()) == 30


def test_patients_table_and_facts_on_a_hand_built_dataset():
    rows = [  # patient, split, study type, study number, views
        ("p1", "train", "XR_HAND", 1, 2),
        ("p1", "train", "XR_WRIST", 1, 1),
        ("p2", "train", "XR_HAND", 1, 3),
        ("p2", "train", "XR_HAND", 2, 1),
        ("p3", "valid", "XR_ELBOW", 1, 2),
        ("p1", "valid", "XR_ELBOW", 1, 1),
    ]
    images = []
    for patient, split, study_type, number, views in rows:
        study_path = f"{split}/{study_type}/{patient}/study{number}_negative"
        for view in range(1, views + 1):
            relpath = f"{study_path}/image{view}.png"
            images.append(
                {
                    "path": f"/x/{relpath}",
                    "relpath": relpath,
                    "split": split,
                    "study_type": study_type,
                    "patient": patient,
                    "study": f"study{number}_negative",
                    "study_path": study_path,
                    "view": view,
                    "label": 0,
                }
            )
    dataset = MuraDataset(root=Path("/x"), images=pd.DataFrame(images))
    table = data_tables.patients_table(dataset)
    assert table.index.name == "studies per patient"
    # p1 has 3 studies (its first split is train), p2 has 2 (train), p3 has 1 (valid).
    assert table.to_dict() == {"training": {1: 0, 2: 1, 3: 1}, "test": {1: 1, 2: 0, 3: 0}}
    facts = data_tables.patient_facts(dataset)
    assert facts == {"multi-study": 2, "multi-type": 1, "multi-type-share": pytest.approx(1 / 3), "both-splits": 1}
    assert data_tables.exclusion_facts(dataset) == {"excluded": 0, "excluded-reasons": "none", "quirks": "none"}
    dataset.csv_quirks = ["a header row in train_labeled_studies.csv", "Windows line endings"]
    assert data_tables.exclusion_facts(dataset)["quirks"] == (
        "a header row in train_labeled_studies.csv; Windows line endings"
    )


def test_exclusion_facts_count_the_sidecar_files(dataset, synthetic_root):
    sidecars = len(list(synthetic_root.rglob("._*")))
    assert sidecars > 0
    facts = data_tables.exclusion_facts(dataset)
    assert facts["excluded"] == len(dataset.exclusions) >= sidecars
    counts = dataset.exclusion_counts()
    assert facts["excluded-reasons"] == "; ".join(f"{reason}: {count:,d}" for reason, count in counts.items())
    assert "sidecar" in facts["excluded-reasons"]


def test_undecodable_table():
    none = pd.DataFrame({"relpath": pd.Series(dtype=str), "reason": pd.Series(dtype=str)})
    assert data_tables.undecodable_table(none) is None
    two = pd.DataFrame({"relpath": ["a.png", "b.png"], "reason": ["truncated", "not an image"], "error": ["", ""]})
    assert data_tables.undecodable_table(two).to_dict("list") == {
        "image": ["a.png", "b.png"],
        "reason": ["truncated", "not an image"],
    }


def test_finding_table_and_marker_paragraph_on_hand_built_truth():
    truth = pd.DataFrame(
        {
            "split": ["train", "train", "valid", "train"],
            "label": [1, 1, 1, 0],
            "finding": ["fracture", "cast", "fracture", ""],
            "views": [2, 2, 4, 3],
        }
    )
    images = pd.DataFrame(
        {
            "finding": ["fracture", "", "cast", "cast", "fracture", "", "", "", "", "", "", ""],
            "conspicuity": [0.2, np.nan, 1.0, 1.0, 0.4, *[np.nan] * 7],
            "label": [1] * 8 + [0] * 4,
            "marker": [True, False] * 4 + [True, True, False, False],
            "marker_x0": [0] * 12,
            "marker_y0": [0] * 12,
            "marker_x1": [4] * 12,
            "marker_y1": [9] * 12,
        }
    )
    table = data_tables.finding_table(truth, images).set_index("finding")
    assert list(table.index) == list(FINDINGS)
    assert table.loc["fracture", "train studies"] == 1 and table.loc["fracture", "test studies"] == 1
    assert table.loc["fracture", "share of abnormal studies"] == "66.7%"
    assert table.loc["fracture", "views showing it"] == "33%"  # 2 of 6 views
    assert table.loc["fracture", "median conspicuity"] == "0.30"
    assert table.loc["cast", "views showing it"] == "100%"
    assert table.loc["lesion"].tolist() == [0, 0, "0.0%", "n/a", "n/a"]
    markers = data_tables.marker_facts(images)
    assert markers["marker-share"] == 0.5
    assert markers["marker-share-normal"] == markers["marker-share-abnormal"] == 0.5
    assert round(markers["marker-side"]) == 6


def test_auroc_halfwidth_matches_a_simulation():
    # Exponential scores, for which the Hanley-McNeil standard error is derived: abnormal scores with
    # mean m beat normal ones with mean 1 with probability m / (1 + m) = 0.85.
    rng = np.random.default_rng(0)
    n, auroc, reps = 40, 0.85, 3000
    normal = rng.exponential(1.0, (reps, n, 1))
    abnormal = rng.exponential(auroc / (1 - auroc), (reps, 1, n))
    empirical = (abnormal > normal).mean(axis=(1, 2))
    assert empirical.mean() == pytest.approx(auroc, abs=0.01)
    assert data_tables.auroc_halfwidth(n, n, auroc) == pytest.approx(1.96 * empirical.std(), rel=0.1)
    assert data_tables.auroc_halfwidth(4 * n, 4 * n) < data_tables.auroc_halfwidth(n, n)


def test_proportional_test_counts_are_what_the_generator_makes(synthetic_root):
    # The fixture's valid split is at the training split's scale: exactly MURA's proportion.
    spec = dataset_spec(synthetic_root)
    assert spec["valid_scale"] == spec["scale"]
    test = study_truth(synthetic_root).query("split == 'valid'")
    assert data_tables.proportional_test_counts(spec["scale"]) == {
        0: int((test["label"] == 0).sum()),
        1: int(test["label"].sum()),
    }
    # At a tiny scale every study type keeps at least one study of each label, as in the generator's plan.
    for scale in (0.001, 0.05):
        planned = plan_studies(SyntheticSpec(scale=scale)).query("split == 'valid'")
        assert data_tables.proportional_test_counts(scale) == planned.groupby("label").size().to_dict()


def test_split_facts_say_why_the_test_split_is_larger(synthetic_root):
    truth = study_truth(synthetic_root)
    spec = dataset_spec(synthetic_root)
    same = data_tables.split_facts(truth, spec)
    assert same["test-larger"] == "no" and same["test-studies"] == int((truth["split"] == "valid").sum())
    larger = data_tables.split_facts(truth, {**spec, "valid_scale": 10 * spec["scale"]})
    proportional = sum(data_tables.proportional_test_counts(spec["scale"]).values())
    assert larger["test-larger"] == "yes" and larger["proportional-studies"] == proportional
    assert larger["test-scale"] == 10 * spec["scale"]


def test_synthetic_facts(synthetic_root):
    facts = data_tables.synthetic_facts(synthetic_root)
    truth = study_truth(synthetic_root)
    assert facts["synthetic"] == "yes" and facts["finding-kinds"] == len(FINDINGS)
    assert facts.items() >= data_tables.marker_facts(image_truth(synthetic_root)).items()
    assert facts.items() >= data_tables.split_facts(truth, dataset_spec(synthetic_root)).items()
    assert data_tables.synthetic_facts(synthetic_root, "mura") == {"synthetic": "no"}


def test_size_facts_say_when_every_image_has_one_size():
    sizes = pd.DataFrame({"width": [64, 64], "height": [64, 64], "mode": ["L", "L"]})
    sizes["longest"], sizes["shortest"] = 64, 64
    facts = data_tables.size_facts(sizes)
    assert (facts["size-one"], facts["size-width"], facts["size-height"]) == ("yes", 64, 64)
    sizes.loc[1, "height"] = 60
    assert data_tables.size_facts(sizes)["size-one"] == "no"
