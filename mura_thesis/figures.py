"""Figures of the thesis, each a function of data that returns a matplotlib Figure."""

from __future__ import annotations

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from sklearn import metrics as skm

FIGURE_WIDTH = 7.0  # inches: the width of the book's text column at 100 dpi


def set_style() -> None:
    """The book's figure style: seaborn's colour-blind palette, figures as wide as the text."""
    sns.set_theme(context="notebook", style="whitegrid", palette="colorblind")
    matplotlib.rcParams.update(
        {
            "figure.figsize": (FIGURE_WIDTH, 4.0),
            "figure.dpi": 100,
            "savefig.dpi": 100,
            "savefig.bbox": "tight",
            "axes.titlesize": "medium",
        }
    )


def _legend_below(fig: plt.Figure, handles, labels, *, columns: int | None = None) -> None:
    """One legend for the whole figure, outside and below the axes, so that it never covers data.

    The figure must use the constrained layout, which reserves the space the legend needs.
    """
    if not handles:
        return
    columns = columns or min(len(labels), 4)
    fig.legend(handles, labels, loc="outside lower center", ncols=columns, fontsize="small", frameon=False)


def _legend_rows(entries: int, columns: int) -> int:
    return int(np.ceil(entries / max(columns, 1)))


METRIC_WORDS = {
    "loss": "weighted cross-entropy",
    "auc": "image-level AUROC",
    "study_auroc": "study-level AUROC",
    "accuracy": "accuracy",
}
# The series of a metric in a training history: (column prefix, suffix, legend label, colour, line
# style, marker).  Colour and line style both tell the subset, so that neither alone carries it.
CURVE_SERIES = (
    ("", "", "training", "C0", "-", "o"),
    ("val_", "", "validation", "C1", "--", "s"),
    ("val_", "_smooth", "validation, smoothed", "C2", ":", None),
)
CLIP_QUANTILE = 0.95  # a panel whose largest value is far above this quantile stops near it


def metric_words(metric: str) -> str:
    """A history's metric name (``study_auroc``) as an axis label in words."""
    return METRIC_WORDS.get(metric, metric.replace("_", " "))


def robust_limits(values, quantile: float = CLIP_QUANTILE) -> tuple[float, float, bool]:
    """The y-range of a panel of curves: the values' range with a small margin, unless the largest
    value lies more than twice as far above the smallest as the ``quantile`` does (one spike that
    would compress every other curve): then the range stops a little above the quantile.  Returns
    ``(low, high, cut)``."""
    values = np.asarray(values, dtype=float)
    values = values[np.isfinite(values)]
    if len(values) == 0:
        return 0.0, 1.0, False
    low, top, high = float(values.min()), float(np.quantile(values, quantile)), float(values.max())
    cut = top > low and high - low > 2 * (top - low)
    upper = top + 0.15 * (top - low) if cut else high
    margin = 0.05 * (upper - low) or 0.05 * max(abs(low), 1.0)
    return low - margin, (upper if cut else high + margin), cut


def learning_curves(histories: dict[str, pd.DataFrame], metrics=("loss", "auc")) -> plt.Figure:
    """Training and validation curves per epoch.

    One run: one panel per metric.  Several runs: small multiples, one panel per run (and metric),
    titled with the run's name, sharing each metric's y-range, so that no two runs need telling
    apart by a colour.  In every panel the colour and the line style tell the subset (training,
    validation, and the validation series smoothed over epochs where the history records one,
    ``val_<metric>_smooth``); one legend below the panels says which.  A spike far above the rest
    of a metric's values (:func:`robust_limits`) no longer sets the range: the axis stops near the
    values' 95th percentile and each value above it is marked by a triangle at the top edge.
    """
    if not histories:
        raise ValueError("learning_curves needs at least one history.")
    runs = list(histories)
    if len(runs) == 1:
        panels = [(runs[0], metric) for metric in metrics]
        rows, columns = 1, len(metrics)
    elif len(metrics) == 1:
        panels = [(run, metrics[0]) for run in runs]
        columns = min(len(runs), 3)
        rows = int(np.ceil(len(runs) / columns))
    else:
        panels = [(run, metric) for run in runs for metric in metrics]
        rows, columns = len(runs), len(metrics)
    height = (3.0 if rows == 1 else 2.1 * rows) + 0.35
    fig, axes = plt.subplots(rows, columns, figsize=(FIGURE_WIDTH, height), squeeze=False, layout="constrained")
    limits = {}
    for metric in metrics:
        values = [
            histories[run][f"{prefix}{metric}{suffix}"].to_numpy(dtype=float)
            for run in runs
            for prefix, suffix, *_ in CURVE_SERIES
            if f"{prefix}{metric}{suffix}" in histories[run]
        ]
        limits[metric] = robust_limits(np.concatenate(values) if values else [])
    shown = {}
    for ax, (run, metric) in zip(axes.ravel(), panels):
        history = histories[run]
        epochs = history["epoch"].to_numpy() + 1
        low, high, cut = limits[metric]
        for prefix, suffix, label, colour, style, marker in CURVE_SERIES:
            column = f"{prefix}{metric}{suffix}"
            if column not in history:
                continue
            values = history[column].to_numpy(dtype=float)
            shown[label] = ax.plot(
                epochs, values, color=colour, linestyle=style, marker=marker, markersize=3.5, label=label
            )[0]
            above = values > high
            if cut and above.any():
                ax.plot(
                    epochs[above],
                    np.full(above.sum(), high),
                    linestyle="none",
                    marker="^",
                    markersize=6,
                    color=colour,
                    clip_on=False,
                )
        ax.set_ylim(low, high)
        size = "small" if len(runs) > 1 else None
        ax.set_xlabel("epoch", fontsize=size)
        ax.set_ylabel(metric_words(metric), fontsize=size)
        ax.xaxis.get_major_locator().set_params(integer=True)
        if len(runs) > 1:
            ax.set_title(run, fontsize="small", pad=8)
    for ax in axes.ravel()[len(panels) :]:
        fig.delaxes(ax)
    _legend_below(fig, list(shown.values()), list(shown), columns=len(shown))
    return fig


def roc_curves(studies: dict[str, pd.DataFrame], *, title: str | None = None, points: dict | None = None) -> plt.Figure:
    """Study-level ROC curves, one per named set of study predictions.

    ``points`` adds operating points (name -> (false positive rate, sensitivity)).  The legend
    sits below the axes, where it cannot cover a curve.
    """
    entries = len(studies) + len(points or {}) + 1
    fig, ax = plt.subplots(figsize=(4.6, 4.4 + 0.22 * _legend_rows(entries, 2)), layout="constrained")
    for name, frame in studies.items():
        fpr, tpr, _ = skm.roc_curve(frame["label"], frame["probability"])
        auc = skm.roc_auc_score(frame["label"], frame["probability"])
        ax.plot(fpr, tpr, label=f"{name} (AUROC {auc:.3f})", drawstyle="steps-post")
    for name, (x, y) in (points or {}).items():
        ax.plot([x], [y], marker="o", linestyle="none", label=name)
    ax.plot([0, 1], [0, 1], linestyle=":", color="grey", label="chance")
    ax.set_xlabel("false positive rate (1 - specificity)")
    ax.set_ylabel("true positive rate (sensitivity)")
    ax.set_xlim(-0.01, 1.01)
    ax.set_ylim(-0.01, 1.01)
    ax.set_aspect("equal")
    _legend_below(fig, *ax.get_legend_handles_labels(), columns=2)
    if title:
        ax.set_title(title)
    return fig


def reliability_diagram(curve: pd.DataFrame, *, label: str = "model") -> plt.Figure:
    """A reliability diagram from :func:`mura_lib.evaluation.reliability_curve`: above, the share
    of abnormal studies against the mean predicted probability in each bin, beside the diagonal
    of perfect calibration; below, how many studies each bin holds."""
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(5.0, 5.6), height_ratios=(3, 1.1), layout="constrained")
    top.plot([0, 1], [0, 1], linestyle=":", color="grey", label="perfect calibration")
    top.plot(curve["predicted"], curve["observed"], marker="o", label=label)
    top.set_xlabel("mean predicted probability of abnormal in the bin")
    top.set_ylabel("share of studies abnormal")
    widths = curve["high"] - curve["low"]
    bottom.bar(curve["low"], curve["studies"], width=widths, align="edge", edgecolor="white")
    bottom.set_xlabel("predicted probability of abnormal (bins)")
    bottom.set_ylabel("studies")
    for ax in (top, bottom):
        ax.set_xlim(-0.01, 1.01)
    top.set_ylim(-0.01, 1.01)
    _legend_below(fig, *top.get_legend_handles_labels(), columns=2)
    return fig


def confusion_matrix(studies: pd.DataFrame, threshold: float = 0.5) -> plt.Figure:
    predicted = (studies["probability"] > threshold).astype(int)
    matrix = skm.confusion_matrix(studies["label"], predicted, labels=[0, 1])
    fig, ax = plt.subplots(figsize=(3.6, 3.2))
    sns.heatmap(
        matrix,
        annot=True,
        fmt="d",
        cmap="Blues",
        cbar=False,
        ax=ax,
        xticklabels=["normal", "abnormal"],
        yticklabels=["normal", "abnormal"],
    )
    ax.set_xlabel("predicted")
    ax.set_ylabel("label")  # MURA's radiologists' labels, or the generator's on synthetic data
    fig.tight_layout()
    return fig


def _kappa_bars(ax: plt.Axes, table: pd.DataFrame, palette, intervals: dict | None = None) -> None:
    """Grouped bars (rows: study types, columns: raters), each with a tick at its value so that
    a kappa of 0 stays visible, and its value printed where the bar itself would not show;
    ``intervals`` (rater -> (lows, highs)) adds error bars to a rater's bars."""
    raters = list(table.columns)
    groups = np.arange(len(table))
    width = 0.8 / len(raters)
    for number, (rater, colour) in enumerate(zip(raters, palette)):
        x = groups - 0.4 + width * (number + 0.5)
        values = table[rater].to_numpy(dtype=float)
        heights = np.nan_to_num(values, nan=0.0)
        ax.bar(x, heights, width=width * 0.95, color=colour, edgecolor="black", linewidth=0.4, label=rater)
        shown = ~np.isnan(values)
        ax.plot(
            x[shown],
            values[shown],
            linestyle="none",
            marker="_",
            markersize=max(width * 40, 4),
            markeredgewidth=2,
            color="black",
        )
        if rater in (intervals or {}):
            low, high = (np.asarray(v, dtype=float) for v in intervals[rater])
            known = shown & np.isfinite(low) & np.isfinite(high)
            ax.errorbar(
                x[known],
                values[known],
                yerr=[values[known] - low[known], high[known] - values[known]],
                fmt="none",
                ecolor="black",
                elinewidth=0.9,
                capsize=2.5,
            )
        for position, value in zip(x, values):
            if np.isnan(value) or abs(value) < 0.05:
                ax.annotate(
                    "n/a" if np.isnan(value) else f"{value:.2f}",
                    (position, 0),
                    xytext=(0, 3),
                    textcoords="offset points",
                    ha="center",
                    va="bottom",
                    fontsize=6,
                    rotation=90,
                )
    ax.set_xticks(groups, [str(name) for name in table.index], rotation=30, ha="right")
    ax.axhline(0, color="black", linewidth=0.6)
    ax.set_xlabel("study type")
    ax.set_ylabel("Cohen's kappa")


def kappa_comparison(
    table: pd.DataFrame, *, data_source: str = "mura", intervals: pd.DataFrame | None = None
) -> plt.Figure:
    """Cohen's kappa per study type, from ``evaluation.kappa_beside_paper``.

    The table's columns are grouped (published raters, this build); its text columns (this
    build's interval) are not drawn.  ``intervals``, a table with ``kappa_low`` and
    ``kappa_high`` per study type (``evaluation.metrics_table``), adds this build's 95% intervals
    as error bars (the paper gives none).  On real MURA (``data_source="mura"``) all raters share
    one chart.  On any other data the published figures and this build's kappas are drawn in
    separate panels on one y-range, titled with their data sets: a kappa measured on synthetic
    images is no claim about radiologists.
    """
    if not isinstance(table.columns, pd.MultiIndex):
        raise ValueError("kappa_comparison expects the grouped table of evaluation.kappa_beside_paper.")
    table = table.select_dtypes("number")
    groups = list(dict.fromkeys(table.columns.get_level_values(0)))
    palette = sns.color_palette("colorblind", table.shape[1])
    errors = {}
    if intervals is not None:
        from mura_lib.evaluation import study_type_name

        bounds = intervals.rename(index=study_type_name).reindex(table.index)
        errors = {table.columns[-1][1]: (bounds["kappa_low"], bounds["kappa_high"])}
    values = [table.to_numpy(dtype=float)] + [np.asarray(v, dtype=float) for pair in errors.values() for v in pair]
    finite = np.concatenate([v.ravel() for v in values])
    finite = finite[np.isfinite(finite)]
    limits = (min(0.0, float(finite.min()) if len(finite) else 0.0) - 0.05, 1.05)
    if data_source == "mura":
        flat = table.droplevel(0, axis=1)
        fig, ax = plt.subplots(figsize=(FIGURE_WIDTH, 4.2), layout="constrained")
        _kappa_bars(ax, flat, palette, errors)
        ax.set_ylim(*limits)
        _legend_below(fig, *ax.get_legend_handles_labels(), columns=min(flat.shape[1], 5))
        return fig
    fig, axes = plt.subplots(
        len(groups), 1, figsize=(FIGURE_WIDTH, 3.3 * len(groups)), layout="constrained", squeeze=False
    )
    start = 0
    for ax, group in zip(axes[:, 0], groups):
        part = table[group]
        _kappa_bars(ax, part, palette[start : start + part.shape[1]], errors)
        ax.set_ylim(*limits)
        start += part.shape[1]
        ax.set_title(group)
        ax.legend(
            *ax.get_legend_handles_labels(),
            loc="upper left",
            bbox_to_anchor=(1.01, 1.0),
            fontsize="small",
            frameon=False,
        )
    return fig


def image_grid(images: list[np.ndarray], titles: list[str], *, columns: int, cell: float = 1.4) -> plt.Figure:
    rows = int(np.ceil(len(images) / columns))
    fig, axes = plt.subplots(rows, columns, figsize=(columns * cell, rows * cell * 1.1), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for ax, image, title in zip(axes.ravel(), images, titles):
        ax.imshow(image, cmap="gray", vmin=0, vmax=255)
        ax.set_title(title, fontsize="x-small")
    fig.tight_layout()
    return fig


def metric_against(
    results: pd.DataFrame, x: str, *, y: str = "auroc", hue: str | None = None, xlabel: str | None = None
) -> plt.Figure:
    """A metric with its bootstrap interval (columns ``y``, ``y_low``, ``y_high``) against ``x``."""
    groups = list(results.groupby(hue)) if hue else [(None, results)]
    height = 3.4 + (0.22 * _legend_rows(len(groups), 3) if hue else 0)
    fig, ax = plt.subplots(figsize=(FIGURE_WIDTH * 0.7, height), layout="constrained")
    for name, group in groups:
        group = group.sort_values(x)
        ax.errorbar(
            group[x],
            group[y],
            yerr=[group[y] - group[f"{y}_low"], group[f"{y}_high"] - group[y]],
            marker="o",
            capsize=3,
            label=name,
        )
    ax.set_xlabel(xlabel or x)
    ax.set_ylabel({"auroc": "study-level AUROC", "kappa": "Cohen's kappa"}.get(y, y))
    if hue:
        _legend_below(fig, *ax.get_legend_handles_labels(), columns=3)
    return fig


def paired_differences(comparisons, metric: str = "auroc", title: str | None = None) -> plt.Figure:
    """A forest plot of paired comparisons (``evaluation.Comparison``, or the comparisons of
    configurations over seeds of ``configurations.ConfigurationComparison``): per comparison, the
    difference A - B with its interval, one row each from top to bottom, and a line at 0."""
    if metric not in ("auroc", "kappa"):
        raise ValueError(f"metric must be 'auroc' or 'kappa', got {metric!r}")
    if not comparisons:
        raise ValueError("paired_differences needs at least one comparison.")
    differences = np.array([getattr(c, f"{metric}_diff") for c in comparisons])
    lows = np.array([getattr(c, f"{metric}_low") for c in comparisons])
    highs = np.array([getattr(c, f"{metric}_high") for c in comparisons])
    rows = np.arange(len(comparisons))
    fig, ax = plt.subplots(figsize=(FIGURE_WIDTH, 1.0 + 0.45 * len(comparisons)))
    ax.axvline(0, color="grey", linestyle="--", linewidth=1)
    ax.errorbar(differences, rows, xerr=[differences - lows, highs - differences], fmt="o", capsize=3, color="C0")
    ax.set_yticks(rows, [f"{c.name_a} vs {c.name_b}" for c in comparisons])
    ax.set_ylim(len(comparisons) - 0.5, -0.5)  # the first comparison on top
    ax.grid(False, axis="y")
    quantity = "study-level AUROC" if metric == "auroc" else "Cohen's kappa"
    # Comparisons of configurations (mura_lib.configurations) compare means over seeds.
    mean = "mean " if all(hasattr(c, "seeds_a") for c in comparisons) else ""
    ax.set_xlabel(f"Difference in {mean}{quantity} (A \u2212 B)")
    if title:
        ax.set_title(title)
    fig.tight_layout()
    return fig


def probability_changes(changes: pd.DataFrame) -> plt.Figure:
    """Histograms of the change in abnormality probability per image (column ``change``) when the
    lead markers are removed, for the images with a marker (column ``marker`` true) and without."""
    fig, axes = plt.subplots(1, 2, figsize=(FIGURE_WIDTH, 3.0), sharex=True)
    largest = float(np.abs(changes["change"]).max()) if len(changes) else 0.0
    limit = max(largest * 1.05, 0.01)
    bins = np.linspace(-limit, limit, 42)  # an odd number of bins: zero falls in the middle of one
    for ax, has_marker, title, colour in (
        (axes[0], True, "images with a marker", "C1"),
        (axes[1], False, "images without a marker", "C0"),
    ):
        part = changes.loc[changes["marker"] == has_marker, "change"]
        ax.hist(np.clip(part, -limit, limit), bins=bins, color=colour)
        ax.axvline(0, color="grey", linestyle="--", linewidth=1)
        ax.set_title(f"{title} ({len(part)})")
    axes[0].set_ylabel("Images")
    fig.supxlabel("Change in abnormality probability (markers removed \u2212 as recorded)", fontsize="medium")
    fig.tight_layout()
    return fig


def resize_policies(image: np.ndarray, size: int, policies=("pad", "stretch", "crop")) -> plt.Figure:
    """One greyscale image at its stored size beside each resize policy
    (:func:`mura_lib.preprocess.resize_image`) at ``size`` pixels, titled with the sizes."""
    from mura_lib.preprocess import resize_image

    panels = [image] + [resize_image(image, size, policy) for policy in policies]
    titles = [f"original {image.shape[1]}x{image.shape[0]}"] + [f"{policy}, {size}x{size}" for policy in policies]
    return image_grid(panels, titles, columns=len(panels), cell=1.7)


def augmented_copies(image: np.ndarray, size: int, seed: int, samples: int) -> plt.Figure:
    """A greyscale image padded to ``size`` pixels and ``samples`` random augmentations of it
    (:func:`mura_lib.models.augmentation` with ``seed``, in training mode), in one row."""
    import keras

    from mura_lib.models import augmentation
    from mura_lib.preprocess import resize_image

    resized = resize_image(image, size, "pad")
    batch = np.repeat(resized[None, :, :, None].astype("float32"), samples, axis=0)
    augmented = keras.ops.convert_to_numpy(augmentation(seed)(batch, training=True))[..., 0]
    return image_grid(
        [resized] + [np.clip(a, 0, 255) for a in augmented],
        ["input"] + [f"augmented {i + 1}" for i in range(samples)],
        columns=samples + 1,
        cell=1.0,
    )


GRAD_CAM_COLOURS = "jet"


def grad_cam_grid(views: pd.DataFrame, pixels: np.ndarray, maps: np.ndarray, boxes=None) -> plt.Figure:
    """Grad-CAM maps over their images, one column per view: on top the image (``pixels``, 0-255)
    titled with the view's ``group``, study type, study label and study ``probability``; below the
    same image under its map (``maps``, 0-1), with a colour bar that reads the map's scale.
    ``boxes``: per view, the finding's box in the input's pixels (``(x0, y0, x1, y1)``, see
    :func:`mura_lib.explain.box_in_input`) or None, drawn as a white dashed outline on both rows."""
    columns = max(len(views), 1)
    fig, axes = plt.subplots(2, columns, figsize=(columns * 1.5 + 0.9, 3.8), squeeze=False, layout="constrained")
    for ax in axes.ravel():
        ax.axis("off")
    label_names = {0: "normal", 1: "abnormal"}
    for i, (_, row) in enumerate(views.iterrows()):
        kind = row["study_type"].removeprefix("XR_").lower()
        axes[0, i].imshow(pixels[i, ..., 0], cmap="gray", vmin=0, vmax=255)
        axes[0, i].set_title(
            f"{row['group']}: {kind}\nlabel {label_names[row['label']]}\np = {row['probability']:.2f}",
            fontsize="x-small",
        )
        axes[1, i].imshow(pixels[i, ..., 0], cmap="gray", vmin=0, vmax=255)
        axes[1, i].imshow(maps[i], cmap=GRAD_CAM_COLOURS, alpha=0.45, vmin=0, vmax=1)
        box = None if boxes is None else boxes[i]
        if box is not None:
            x0, y0, x1, y1 = box
            for ax in axes[:, i]:
                # Pixel i covers i - 0.5 to i + 0.5 in imshow's coordinates.
                outline = matplotlib.patches.Rectangle(
                    (x0 - 0.5, y0 - 0.5), x1 - x0, y1 - y0, fill=False, edgecolor="white", linewidth=1.0, linestyle="--"
                )
                ax.add_patch(outline)
    scale = matplotlib.cm.ScalarMappable(norm=matplotlib.colors.Normalize(0, 1), cmap=GRAD_CAM_COLOURS)
    bar = fig.colorbar(scale, ax=list(axes[1]), fraction=0.05, pad=0.02, shrink=0.9)
    bar.set_label("Grad-CAM, as a share\nof the map's peak", fontsize="small")
    bar.ax.tick_params(labelsize="small")
    return fig
