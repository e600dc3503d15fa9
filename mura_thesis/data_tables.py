"""The data chapter's tables, figures and description, from a loaded dataset.

Every function takes a :class:`mura_lib.dataset.MuraDataset` (or a table derived from one) and
returns what the chapter shows: a DataFrame for a table (the chapter formats it with
:func:`mura_thesis.tables.format_table`), a matplotlib Figure, a sentence, or a dict of the facts that
the chapter's text quotes, keyed by the glue name without its ``data-`` prefix.

For a synthetic dataset :func:`synthetic_facts` gives, from the generator's recorded
truth, how the radiographs were made: the findings and their conspicuity, the lead markers, and why
the test split has the size it has.

Images that the preprocessing cache left out (zero-byte, truncated, too large, unreadable:
:func:`mura_lib.preprocess.exclusions`) are passed as ``excluded`` and never opened again; every
image that is opened goes through the project's one reader, :func:`mura_lib.preprocess.open_image`.
"""

from __future__ import annotations

import os

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from mura_lib import synthetic
from mura_lib.dataset import STUDY_TYPES, MuraDataset
from mura_lib.preprocess import DECODE_ERRORS, exclusion_reason, load_grayscale, read_header
from mura_lib.synthetic.findings import FINDINGS

from . import figures

TYPE_NAMES = {t: t.removeprefix("XR_").lower() for t in STUDY_TYPES}
LABEL_NAMES = {0: "normal", 1: "abnormal"}
# The splits as the thesis names them: MURA's ``valid`` split is this thesis' test set.
SPLIT_NAMES = {"train": "training", "valid": "test"}


def _split_names(splits: pd.Series) -> pd.Series:
    """The splits named as the thesis names them, in reading order (training first)."""
    return pd.Categorical(splits.map(SPLIT_NAMES), categories=list(SPLIT_NAMES.values()), ordered=True)


ASSUMED_AUROC = 0.85  # the AUROC at which the split-size reasoning quotes confidence intervals


def overview(dataset: MuraDataset) -> dict:
    """Images, studies, patients, studies per split and the share of abnormal studies."""
    images, studies = dataset.images, dataset.studies
    return {
        "images": len(images),
        "studies": len(studies),
        "patients": images["patient"].nunique(),
        "train-studies": int((studies["split"] == "train").sum()),
        "valid-studies": int((studies["split"] == "valid").sum()),
        "abnormal-share": float(studies["label"].mean()),
    }


def _usable(dataset: MuraDataset, excluded) -> pd.DataFrame:
    """The dataset's images less those in ``excluded`` (relative paths the cache left out)."""
    images = dataset.images
    return images.loc[~images["relpath"].isin(list(excluded))]


def _decoded(path: str, reader):
    """``reader(path)``, or a clear error for an image the cache did not leave out but that cannot be
    read now (changed or damaged since the cache was built)."""
    try:
        return reader(path)
    except DECODE_ERRORS as error:
        raise ValueError(
            f"{path} cannot be read ({exclusion_reason(path, error)}: {error}), yet the image cache did not "
            "leave it out: it changed since the cache was built. Build again, so that the cache sees it."
        ) from error


def examples_figure(dataset: MuraDataset, seed: int = 0, *, excluded=()) -> plt.Figure:
    """For each label (rows) and study type (columns), the first view of one random study, as stored
    (images in ``excluded`` left out)."""
    images = _usable(dataset, excluded)
    first_views = images.loc[images["view"] == images.groupby("study_path")["view"].transform("min")]
    pictures, titles = [], []
    for label in (0, 1):
        for study_type in STUDY_TYPES:
            candidates = first_views.loc[(first_views["study_type"] == study_type) & (first_views["label"] == label)]
            if candidates.empty:
                continue
            row = candidates.sample(1, random_state=seed).iloc[0]
            pictures.append(_decoded(row["path"], load_grayscale))
            # Two short lines: "shoulder, abnormal" on one line overlaps its neighbours.
            titles.append(f"{TYPE_NAMES[study_type]}\n{LABEL_NAMES[label]}")
    return figures.image_grid(pictures, titles, columns=len(STUDY_TYPES), cell=1.0)


def example_study(dataset: MuraDataset, seed: int = 0, *, excluded=()) -> pd.Series:
    """One random abnormal study with at least three views (or as many as the largest study has),
    preferably one with no image in ``excluded``."""
    studies = dataset.studies
    many_views = studies["views"] >= min(3, studies["views"].max())
    candidates = studies.loc[(studies["label"] == 1) & many_views]
    whole = ~candidates["study_path"].isin(
        dataset.images.loc[dataset.images["relpath"].isin(list(excluded)), "study_path"]
    )
    if whole.any():
        candidates = candidates.loc[whole]
    if candidates.empty:
        raise ValueError(f"{dataset.root} has no abnormal study to show: the dataset needs at least one")
    return candidates.sample(1, random_state=seed).iloc[0]


def study_figure(dataset: MuraDataset, study_path: str, *, excluded=()) -> plt.Figure:
    """Every view of one study, side by side, in view order; a view in ``excluded`` is a blank
    square titled "left out"."""
    rows = dataset.images.loc[dataset.images["study_path"] == study_path].sort_values("view")
    if rows.empty:
        raise ValueError(f"{dataset.root} has no study {study_path!r}: pass a study_path of dataset.studies")
    left_out = rows["relpath"].isin(list(excluded)).to_numpy()
    return figures.image_grid(
        [
            np.zeros((8, 8), dtype=np.uint8) if out else _decoded(path, load_grayscale)
            for path, out in zip(rows["path"], left_out)
        ],
        [f"view {view}" + (" (left out)" if out else "") for view, out in zip(rows["view"], left_out)],
        columns=len(rows),
        cell=1.6,
    )


def _named(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with study types and labels as words (``type`` and ``label``)."""
    return frame.assign(type=frame["study_type"].map(TYPE_NAMES), label=frame["label"].map(LABEL_NAMES))


def counts_table(dataset: MuraDataset) -> pd.DataFrame:
    """Studies and images by study type (rows, with a total) and by split and label (columns)."""
    by = {"index": "type", "columns": ["split", "label"], "aggfunc": "count", "fill_value": 0}
    study_counts = _named(dataset.studies).pivot_table(values="study_path", **by)
    image_counts = _named(dataset.images).pivot_table(values="relpath", **by)
    counts = pd.concat({"studies": study_counts, "images": image_counts}, axis=1)
    counts.loc["total"] = counts.sum()
    counts.columns.names = ["", "split", "label"]
    counts = counts.rename(columns=SPLIT_NAMES, level="split")
    return counts


def counts_figure(dataset: MuraDataset) -> plt.Figure:
    """Normal and abnormal studies per study type, one panel per split."""
    studies = _named(dataset.studies)
    fig, axes = plt.subplots(1, 2, figsize=(figures.FIGURE_WIDTH, 3.2), sharey=True)
    for ax, split in zip(axes, ("train", "valid")):
        part = studies.loc[studies["split"] == split]
        order = sorted(TYPE_NAMES.values())
        sns.countplot(part, y="type", hue="label", hue_order=list(LABEL_NAMES.values()), order=order, ax=ax)
        ax.set_title(f"{SPLIT_NAMES[split]} split")
        ax.set_xlabel("studies")
        ax.set_ylabel("")
        handles, labels = ax.get_legend_handles_labels()
        ax.get_legend().remove()
    # One legend for both panels, below them, where it covers no bar.
    fig.legend(handles, labels, loc="lower center", ncol=2, frameon=False)
    fig.tight_layout(rect=(0, 0.08, 1, 1))
    return fig


def views_table(dataset: MuraDataset) -> pd.DataFrame:
    """Studies by number of views (rows), split and label (columns)."""
    studies = dataset.studies
    named = studies.assign(label=studies["label"].map(LABEL_NAMES), split=_split_names(studies["split"]))
    return named.pivot_table(
        index="views", columns=["split", "label"], values="study_path", aggfunc="count", fill_value=0, observed=False
    )


def view_facts(dataset: MuraDataset) -> dict:
    """The mean and the largest number of views per study."""
    views = dataset.studies["views"]
    return {"mean-views": float(views.mean()), "max-views": int(views.max())}


def image_sizes(dataset: MuraDataset, sample: int, seed: int = 0, *, excluded=()) -> pd.DataFrame:
    """Stored width, height and PIL mode of a random sample of at most ``sample`` images (drawn from
    those not in ``excluded``), read from the file headers, with the ``longest`` and ``shortest`` side."""
    images = _usable(dataset, excluded)
    chosen = images.sample(min(sample, len(images)), random_state=seed)
    records = []
    for path in chosen["path"]:
        width, height, mode = _decoded(path, read_header)
        records.append({"width": width, "height": height, "mode": mode})
    sizes = pd.DataFrame(records, columns=["width", "height", "mode"])
    sizes["longest"] = sizes[["width", "height"]].max(axis=1)
    sizes["shortest"] = sizes[["width", "height"]].min(axis=1)
    return sizes


def size_facts(sizes: pd.DataFrame) -> dict:
    """What the chapter says of the sampled image sizes (``sizes`` from :func:`image_sizes`)."""
    modes = sizes["mode"].value_counts()
    one_size = len(sizes) > 0 and sizes["width"].nunique() == 1 and sizes["height"].nunique() == 1
    return {
        "size-sample": len(sizes),
        # "yes" when every sampled image has the same width and height (then those two).
        "size-one": "yes" if one_size else "no",
        "size-width": int(sizes["width"].median()),
        "size-height": int(sizes["height"].median()),
        "size-longest-median": float(sizes["longest"].median()),
        "size-longest-max": int(sizes["longest"].max()),
        "size-shortest-min": int(sizes["shortest"].min()),
        "size-shortest-max": int(sizes["shortest"].max()),
        "size-portrait": float((sizes["height"] > sizes["width"]).mean()),
        "size-modes": ", ".join(f"{count} in mode {mode}" for mode, count in modes.items()),
    }


def sizes_figure(sizes: pd.DataFrame) -> plt.Figure:
    """Width against height of the sampled images."""
    fig, ax = plt.subplots(figsize=(4.4, 4.0))
    ax.scatter(sizes["width"], sizes["height"], s=8, alpha=0.5)
    ax.set_xlabel("width (pixels)")
    ax.set_ylabel("height (pixels)")
    ax.set_aspect("equal")
    fig.tight_layout()
    return fig


def _per_patient(dataset: MuraDataset) -> pd.DataFrame:
    return dataset.studies.groupby("patient").agg(
        studies=("study_path", "size"), types=("study_type", "nunique"), split=("split", "first")
    )


def patients_table(dataset: MuraDataset) -> pd.DataFrame:
    """Patients by the number of studies they contribute (rows), per split (columns)."""
    patients = _per_patient(dataset)
    table = patients.assign(split=_split_names(patients["split"])).pivot_table(
        index="studies", columns="split", values="types", aggfunc="count", fill_value=0, observed=False
    )
    table.index.name = "studies per patient"
    return table


def patient_facts(dataset: MuraDataset) -> dict:
    """Patients with more than one study, with studies of more than one type, and in both splits."""
    per_patient = _per_patient(dataset)
    return {
        "multi-study": int((per_patient["studies"] > 1).sum()),
        "multi-type": int((per_patient["types"] > 1).sum()),
        "multi-type-share": float((per_patient["types"] > 1).mean()),
        "both-splits": int((dataset.studies.groupby("patient")["split"].nunique() > 1).sum()),
    }


def exclusion_facts(dataset: MuraDataset) -> dict:
    """How many files the reader left out (``excluded``), by reason (``excluded-reasons``:
    ``"macOS '._' sidecar file (not an image): 9"``, ``none``), and the CSV quirks it tolerated
    (``quirks``: a list, ``none``)."""
    exclusions = dataset.exclusion_counts()
    reasons = "; ".join(f"{reason}: {count:,d}" for reason, count in exclusions.items())
    return {
        "excluded": int(exclusions.sum()),
        "excluded-reasons": reasons or "none",
        "quirks": "; ".join(dataset.csv_quirks) or "none",
    }


def undecodable_table(undecodable: pd.DataFrame) -> pd.DataFrame | None:
    """The undecodable images and why, or None when there are none."""
    if not len(undecodable):
        return None
    return undecodable[["relpath", "reason"]].rename(columns={"relpath": "image"})


def finding_table(truth: pd.DataFrame, image_truth: pd.DataFrame) -> pd.DataFrame:
    """Per kind of finding: abnormal studies per split, their share of all abnormal studies, the share of
    their views that show the finding and the median conspicuity of those views (as formatted text; "n/a"
    where a finding does not occur or no view shows it).

    ``truth`` and ``image_truth`` are :func:`mura_lib.synthetic.study_truth` and
    :func:`mura_lib.synthetic.image_truth` of one dataset."""
    shown = image_truth.loc[image_truth["finding"] != ""]
    abnormal = truth.loc[truth["label"] == 1]
    rows = []
    for finding in FINDINGS:
        of_type = abnormal.loc[abnormal["finding"] == finding]
        views = shown.loc[shown["finding"] == finding]
        rows.append(
            {
                "finding": finding,
                "train studies": int((of_type["split"] == "train").sum()),
                "test studies": int((of_type["split"] == "valid").sum()),
                "share of abnormal studies": f"{len(of_type) / len(abnormal):.1%}",
                "views showing it": f"{len(views) / of_type['views'].sum():.0%}" if len(of_type) else "n/a",
                "median conspicuity": f"{views['conspicuity'].median():.2f}" if len(views) else "n/a",
            }
        )
    return pd.DataFrame(rows)


def marker_facts(image_truth: pd.DataFrame) -> dict:
    """How often lead markers appear (``marker-share``), in normal and abnormal images (they are
    drawn independently of the label), and the median side of their boxes in pixels."""
    marker_share = image_truth.groupby("label")["marker"].mean()
    boxes = image_truth.loc[image_truth["marker"]]
    box_side = np.sqrt((boxes["marker_x1"] - boxes["marker_x0"]) * (boxes["marker_y1"] - boxes["marker_y0"]))
    return {
        "marker-share": float(image_truth["marker"].mean()),
        "marker-share-normal": float(marker_share.get(0, np.nan)),
        "marker-share-abnormal": float(marker_share.get(1, np.nan)),
        "marker-side": float(box_side.median()) if len(boxes) else float("nan"),
    }


def auroc_halfwidth(n_abnormal: int, n_normal: int, auroc: float = ASSUMED_AUROC) -> float:
    """Half-width of a 95% interval of an AUROC from the standard error of Hanley and McNeil (1982)."""
    q1, q2 = auroc / (2 - auroc), 2 * auroc**2 / (1 + auroc)
    variance = auroc * (1 - auroc) + (n_abnormal - 1) * (q1 - auroc**2) + (n_normal - 1) * (q2 - auroc**2)
    return float(1.96 * np.sqrt(variance / (n_abnormal * n_normal)))


def proportional_test_counts(scale: float) -> dict[int, int]:
    """Normal (0) and abnormal (1) studies of a test split at MURA's proportion: MURA's ``valid`` counts
    per study type times ``scale``, at least one each, as the generator rounds them."""
    mura_valid = synthetic.MURA_STUDY_COUNTS["valid"].values()
    return {label: sum(max(1, round(counts[label] * scale)) for counts in mura_valid) for label in (0, 1)}


def split_facts(truth: pd.DataFrame, spec: dict) -> dict:
    """The sizes of the synthetic splits against MURA's, and the half-width of a 95% interval of an
    AUROC near ``ASSUMED_AUROC`` with this test split and with one at MURA's proportion
    (``test-larger``: ``yes`` when the test split was drawn larger than MURA's proportion)."""
    test = truth.loc[truth["split"] == "valid"]
    proportional = proportional_test_counts(spec["scale"])
    return {
        "train-studies": int((truth["split"] == "train").sum()),
        "train-scale": spec["scale"],
        "test-studies": len(test),
        "test-scale": spec["valid_scale"],
        "test-width": auroc_halfwidth(int(test["label"].sum()), int((test["label"] == 0).sum())),
        "test-larger": "yes" if spec["valid_scale"] > spec["scale"] else "no",
        "proportional-studies": sum(proportional.values()),
        "proportional-width": auroc_halfwidth(proportional[1], proportional[0]),
        "assumed-auroc": ASSUMED_AUROC,
    }


def synthetic_facts(data_root: str | os.PathLike, data_source: str = "synthetic") -> dict:
    """What the chapter says of how the synthetic data were made: the kinds of finding, the
    markers (:func:`marker_facts`), the splits (:func:`split_facts`) and the image size; with
    ``synthetic`` (``yes``/``no``: a real MURA copy has no ground truth).  The findings table is
    :func:`finding_table`."""
    truth = synthetic.study_truth(data_root) if data_source != "mura" else None
    if truth is None:
        return {"synthetic": "no"}
    spec = synthetic.dataset_spec(data_root)
    image_truth = synthetic.image_truth(data_root)
    return (
        {"synthetic": "yes", "finding-kinds": len(FINDINGS), "image-size": spec["image_size"]}
        | marker_facts(image_truth)
        | split_facts(truth, spec)
    )
