"""The data chapter's tables, figures and description, from a loaded dataset.

Every function takes a :class:`mura_lib.dataset.MuraDataset` (or a table derived from one) and
returns what the chapter shows: a DataFrame for a table (the chapter formats it with
:func:`mura_lib.tables.format_table`), a matplotlib Figure, a sentence, or a dict of the facts that
the chapter's text quotes, keyed by the glue name without its ``data-`` prefix.

For a synthetic dataset :func:`synthetic_description` describes, from the generator's recorded
truth, how the radiographs were made: the findings and their conspicuity, the lead markers, and why
the test split has the size it has.
"""

from __future__ import annotations

import os

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from PIL import Image

from . import plots, synthetic
from .dataset import STUDY_TYPES, MuraDataset
from .preprocess import load_grayscale
from .synthetic.findings import FINDINGS

TYPE_NAMES = {t: t.removeprefix("XR_").lower() for t in STUDY_TYPES}
LABEL_NAMES = {0: "normal", 1: "abnormal"}
ASSUMED_AUROC = 0.85  # the AUROC at which the split-size reasoning quotes confidence intervals


def source_description(data_source: str) -> str:
    """What the loaded dataset is, as a phrase for the chapter's first paragraph."""
    if data_source == "mura":
        return "a copy of the real MURA-v1.1 dataset"
    return (
        "a synthetic dataset that reproduces MURA-v1.1's folder layout, CSV files, study types and "
        "label proportions, but whose radiographs are generated images rather than real ones"
    )


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


def examples_figure(dataset: MuraDataset, seed: int = 0) -> plt.Figure:
    """For each label (rows) and study type (columns), the first view of one random study, as stored."""
    images = dataset.images
    first_views = images.loc[images["view"] == images.groupby("study_path")["view"].transform("min")]
    pictures, titles = [], []
    for label in (0, 1):
        for study_type in STUDY_TYPES:
            candidates = first_views.loc[(first_views["study_type"] == study_type) & (first_views["label"] == label)]
            if candidates.empty:
                continue
            row = candidates.sample(1, random_state=seed).iloc[0]
            pictures.append(load_grayscale(row["path"]))
            # Two short lines: "shoulder, abnormal" on one line overlaps its neighbours.
            titles.append(f"{TYPE_NAMES[study_type]}\n{LABEL_NAMES[label]}")
    return plots.image_grid(pictures, titles, columns=len(STUDY_TYPES), cell=1.0)


def example_study(dataset: MuraDataset, seed: int = 0) -> pd.Series:
    """One random abnormal study with at least three views (or as many as the largest study has)."""
    studies = dataset.studies
    many_views = studies["views"] >= min(3, studies["views"].max())
    candidates = studies.loc[(studies["label"] == 1) & many_views]
    if candidates.empty:
        raise ValueError(f"{dataset.root} has no abnormal study to show: the dataset needs at least one")
    return candidates.sample(1, random_state=seed).iloc[0]


def study_figure(dataset: MuraDataset, study_path: str) -> plt.Figure:
    """Every view of one study, side by side, in view order."""
    rows = dataset.images.loc[dataset.images["study_path"] == study_path].sort_values("view")
    if rows.empty:
        raise ValueError(f"{dataset.root} has no study {study_path!r}: pass a study_path of dataset.studies")
    return plots.image_grid(
        [load_grayscale(path) for path in rows["path"]],
        [f"view {view}" for view in rows["view"]],
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
    return counts


def counts_figure(dataset: MuraDataset) -> plt.Figure:
    """Normal and abnormal studies per study type, one panel per split."""
    studies = _named(dataset.studies)
    fig, axes = plt.subplots(1, 2, figsize=(plots.FIGURE_WIDTH, 3.2), sharey=True)
    for ax, split in zip(axes, ("train", "valid")):
        part = studies.loc[studies["split"] == split]
        order = sorted(TYPE_NAMES.values())
        sns.countplot(part, y="type", hue="label", hue_order=list(LABEL_NAMES.values()), order=order, ax=ax)
        ax.set_title(f"{split} split")
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
    return studies.assign(label=studies["label"].map(LABEL_NAMES)).pivot_table(
        index="views", columns=["split", "label"], values="study_path", aggfunc="count", fill_value=0
    )


def view_facts(dataset: MuraDataset) -> dict:
    """The mean and the largest number of views per study."""
    views = dataset.studies["views"]
    return {"mean-views": float(views.mean()), "max-views": int(views.max())}


def image_sizes(dataset: MuraDataset, sample: int, seed: int = 0) -> pd.DataFrame:
    """Stored width, height and PIL mode of a random sample of at most ``sample`` images, read from
    the file headers, with the ``longest`` and ``shortest`` side."""
    chosen = dataset.images.sample(min(sample, len(dataset.images)), random_state=seed)
    records = []
    for path in chosen["path"]:
        with Image.open(path) as handle:
            records.append({"width": handle.size[0], "height": handle.size[1], "mode": handle.mode})
    sizes = pd.DataFrame(records, columns=["width", "height", "mode"])
    sizes["longest"] = sizes[["width", "height"]].max(axis=1)
    sizes["shortest"] = sizes[["width", "height"]].min(axis=1)
    return sizes


def size_facts(sizes: pd.DataFrame) -> dict:
    """What the chapter says of the sampled image sizes (``sizes`` from :func:`image_sizes`)."""
    modes = sizes["mode"].value_counts()
    return {
        "size-sample": len(sizes),
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
    table = _per_patient(dataset).pivot_table(
        index="studies", columns="split", values="types", aggfunc="count", fill_value=0
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
    """How many files the reader left out, and sentences on why and on the CSV quirks it tolerated."""
    exclusions = dataset.exclusion_counts()
    if len(exclusions):
        reasons = "; ".join(f"{count:,d} files as {reason}" for reason, count in exclusions.items())
        excluded_text = f"It left out {int(exclusions.sum()):,d} files in all: {reasons}."
    else:
        excluded_text = "In this copy of the data it found nothing to leave out."
    if dataset.csv_quirks:
        quirks = "; ".join(dataset.csv_quirks)
        quirks_text = f"It also tolerated these departures from the documented CSV format: {quirks}."
    else:
        quirks_text = "The CSV files followed the documented format exactly."
    return {"excluded": int(exclusions.sum()), "excluded-text": excluded_text, "quirks-text": quirks_text}


def undecodable_sentence(undecodable: pd.DataFrame) -> str:
    """The end of the sentence on images that could not be decoded (``undecodable`` from
    :func:`mura_lib.preprocess.exclusions`)."""
    if len(undecodable):
        return f"{len(undecodable):,d} images, listed below with the reason."
    return "in this copy every listed image could be decoded."


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


def marker_paragraph(image_truth: pd.DataFrame, image_size: int) -> str:
    """How often lead markers appear, that they are independent of the label, and how large they are."""
    marker_share = image_truth.groupby("label")["marker"].mean()
    boxes = image_truth.loc[image_truth["marker"]]
    box_side = np.sqrt((boxes["marker_x1"] - boxes["marker_x0"]) * (boxes["marker_y1"] - boxes["marker_y0"]))
    return (
        f"Lead markers appear on {image_truth['marker'].mean():.0%} of the images: an *L* or *R*, on some films "
        f"with a technologist's initials or a square lead frame, burnt into one of the corners of the "
        f"collimated field, a little inside its edge. They are drawn independently of the label: "
        f"{marker_share.get(0, np.nan):.0%} of the normal and {marker_share.get(1, np.nan):.0%} of the abnormal "
        f"images carry one. A marker covers a box of about {box_side.median():.0f} pixels square (median) of the "
        f"stored {image_size}-pixel images. The generator records each marker's box, and can draw any "
        f"image again without its marker, identical in every other pixel, so that a later chapter can test "
        f"whether a network has learned to look at the markers rather than at the bones."
    )


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


def split_paragraph(truth: pd.DataFrame, spec: dict) -> str:
    """The sizes of the synthetic splits, and why the test split is larger than MURA's proportion."""
    test = truth.loc[truth["split"] == "valid"]
    test_width = auroc_halfwidth(int(test["label"].sum()), int((test["label"] == 0).sum()))
    if spec["valid_scale"] > spec["scale"]:
        proportional = proportional_test_counts(spec["scale"])
        proportional_width = auroc_halfwidth(proportional[1], proportional[0])
        reason = (
            f"The test split is larger than MURA's proportion because its size sets how small a difference "
            f"between two networks it can resolve, and the following chapters compare networks that differ by a "
            f"few AUROC points. At MURA's proportion it would have only {sum(proportional.values()):,d} studies, "
            f"and the 95% confidence interval of an AUROC near {ASSUMED_AUROC} would reach about "
            f"±{proportional_width:.3f} either side {{cite}}`hanley1982auroc`; with {len(test):,d} test studies it "
            f"reaches about ±{test_width:.3f}."
        )
    else:
        reason = (
            f"The test split keeps MURA's proportion; with {len(test):,d} test studies the 95% confidence interval "
            f"of an AUROC near {ASSUMED_AUROC} reaches about ±{test_width:.3f} either side {{cite}}`hanley1982auroc`."
        )
    return (
        f"The training split has {int((truth['split'] == 'train').sum()):,d} studies, {spec['scale']:.0%} of "
        f"MURA's, and the test split (MURA's `valid` split) has {len(test):,d}, {spec['valid_scale']:.0%} of "
        f"MURA's, drawn from random numbers of their own so that the training images do not depend on the "
        f"size of the test split. {reason} On the real data MURA's own `valid` split is used unchanged."
    )


FINDING_CAPTION = (
    "Findings of the abnormal studies in the synthetic dataset: studies per split, the share of all abnormal "
    "studies, the share of the studies' views that show the finding, and the median conspicuity of the views "
    "that show it."
)
NOT_SYNTHETIC = (
    "This section describes how the synthetic stand-in for MURA is generated; this build uses the real "
    "MURA-v1.1 radiographs and MURA's own split, so it does not apply here."
)


def synthetic_description(data_root: str | os.PathLike, data_source: str = "synthetic") -> str:
    """How the synthetic radiographs are made, as MyST Markdown with a numbered findings table
    (``tab-data-synthetic-findings``), computed from the generator's recorded truth; for real MURA
    (``data_source="mura"``, or no truth file) a sentence that the section does not apply."""
    truth = synthetic.study_truth(data_root) if data_source != "mura" else None
    if truth is None:
        return NOT_SYNTHETIC
    spec = synthetic.dataset_spec(data_root)
    image_truth = synthetic.image_truth(data_root)
    table = finding_table(truth, image_truth).to_markdown(
        index=False, colalign=["left"] + ["right"] * 5, disable_numparse=True
    )
    return f"""\
Every synthetic radiograph is drawn by a procedural model of the upper limb. Bones, joints and soft
tissue are laid out in centimetres, posed for the projection (the first view of a study is usually
anteroposterior, the second lateral, the third oblique) and projected onto a film whose field of
view, rotation and side (left or right) depend on the study type. Exposure, contrast, detector blur,
noise, the collimated field and burnt-in lead markers vary from image to image independently of the
label. A normal study shows no finding. Each abnormal study is given one of {len(FINDINGS)} kinds of finding,
at random with equal probability: a fracture line, orthopaedic hardware, a cast, a focal bone lesion
or degenerative joint change. Hardware and casts are on the limb and show in every view; a fracture,
a lesion or a narrowed joint shows in a random subset of the study's views, at least one, as a
projection can hide it. {{numref}}`tab-data-synthetic-findings` counts the findings of this dataset.

:::{{table}} {FINDING_CAPTION}
:name: tab-data-synthetic-findings

{table}
:::

How strongly a finding is drawn varies, and the generator records it as a *conspicuity* between 0
and 1: where the finding's random draws fall within their ranges, averaged. For a fracture these are
the width of the lucent line (as a share of the film) and the depth of bone it removes; for a lesion
its radius (as a share of the film) and its depth; for degenerative change the narrowing of the
joint space, the extra density of the bone ends and the size of the osteophytes; for a cast its
thickness and density. Hardware is metal that burns out to white and is always drawn at full
strength (conspicuity 1). Fractures, lesions and degenerative change are a few pixels across at the
stored size, so they blur away when images are reduced, whereas hardware and casts stay conspicuous.

{marker_paragraph(image_truth, spec["image_size"])}

{split_paragraph(truth, spec)}
"""
