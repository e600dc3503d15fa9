"""Every figure of mura_thesis.figures, drawn on small synthetic inputs: each axes is labelled (or is
an image panel), no legend covers plotted data, and a kappa of 0 stays visible."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from matplotlib.patches import Rectangle
from matplotlib.transforms import Bbox

from mura_lib import evaluation
from mura_lib.dataset import STUDY_TYPES
from mura_thesis import figures


def _history(seed: int, epochs: int = 6, *, study: bool = False, spike: bool = False) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    loss = np.linspace(0.7, 0.3, epochs) + rng.normal(0, 0.02, epochs)
    auc = np.linspace(0.55, 0.9, epochs) + rng.normal(0, 0.02, epochs)
    history = pd.DataFrame(
        {"epoch": np.arange(epochs), "loss": loss, "val_loss": loss + 0.05, "auc": auc, "val_auc": auc - 0.05}
    )
    if spike:
        history.loc[2, "val_loss"] = 25.0  # one epoch whose validation loss explodes
    if study:
        raw = auc - 0.03 + rng.normal(0, 0.05, epochs)
        history["val_study_auroc"] = raw
        history["val_study_auroc_smooth"] = pd.Series(raw).ewm(alpha=0.5, adjust=False).mean()
    return history


def _studies(seed: int, n: int = 80) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, n)
    return pd.DataFrame(
        {
            "study_type": rng.choice(STUDY_TYPES, n),
            "label": labels,
            "probability": np.clip(labels * 0.3 + rng.uniform(0, 0.7, n), 0, 1),
        }
    )


def _kappa_table(data_source: str) -> pd.DataFrame:
    kappa = pd.Series(np.linspace(0.2, 0.9, len(evaluation.PAPER_KAPPA)), index=evaluation.PAPER_KAPPA.index)
    kappa.iloc[1] = 0.0  # a study type on which the model agrees with the labels only by chance
    kappa.iloc[2] = np.nan  # a study type with a single class among the test studies
    return evaluation.kappa_beside_paper(kappa.to_frame("kappa"), data_source=data_source)


FIGURES = {
    "learning curves, one run": lambda: figures.learning_curves({"baseline": _history(0)}),
    "learning curves, ten runs": lambda: figures.learning_curves(
        {f"variant {i}": _history(i) for i in range(10)}, metrics=("loss",)
    ),
    "learning curves, ten runs, two metrics": lambda: figures.learning_curves(
        {f"variant {i}": _history(i) for i in range(10)}
    ),
    "learning curves, smoothed study AUROC": lambda: figures.learning_curves(
        {"baseline": _history(0, study=True)}, metrics=("loss", "auc", "study_auroc")
    ),
    "learning curves, five runs, one spike": lambda: figures.learning_curves(
        {f"variant {i}": _history(i, spike=i == 3) for i in range(5)}, metrics=("loss",)
    ),
    "ROC curves": lambda: figures.roc_curves(
        {"model A": _studies(0), "model B": _studies(1)}, points={"radiologist": (0.1, 0.8)}, title="test"
    ),
    "confusion matrix": lambda: figures.confusion_matrix(_studies(0)),
    "reliability diagram": lambda: figures.reliability_diagram(evaluation.reliability_curve(_studies(0))),
    "kappa on MURA": lambda: figures.kappa_comparison(_kappa_table("mura"), data_source="mura"),
    "kappa on synthetic data": lambda: figures.kappa_comparison(_kappa_table("synthetic"), data_source="synthetic"),
    "image grid": lambda: figures.image_grid([np.full((8, 8), 100, np.uint8)] * 3, ["a", "b", "c"], columns=2),
    "metric against a setting": lambda: figures.metric_against(
        pd.DataFrame(
            {
                "size": [16, 32, 64] * 3,
                "auroc": np.linspace(0.6, 0.9, 9),
                "auroc_low": 0.5,
                "auroc_high": 0.95,
                "model": np.repeat(["a", "b", "c"], 3),
            }
        ),
        "size",
        hue="model",
        xlabel="image size (px)",
    ),
}


def _data_extents(fig, renderer) -> list[Bbox]:
    """Display-space boxes of the plotted data: points along every line, every bar."""
    boxes = []
    for ax in fig.axes:
        for line in ax.get_lines():
            xy = line.get_xydata()
            if len(xy) == 0:
                continue
            if line.get_linestyle() not in ("None", "none", "") and len(xy) > 1:
                # sample along each segment, so that a legend over the middle of a line is caught
                steps = np.linspace(0, 1, 12)[:, None, None]
                xy = (xy[:-1][None] * (1 - steps) + xy[1:][None] * steps).reshape(-1, 2)
            points = line.get_transform().transform(xy)
            boxes += [Bbox.from_bounds(x - 1, y - 1, 2, 2) for x, y in points[np.isfinite(points).all(axis=1)]]
        boxes += [patch.get_window_extent(renderer) for patch in ax.patches if isinstance(patch, Rectangle)]
    return boxes


@pytest.mark.parametrize("name", list(FIGURES))
def test_every_axes_is_labelled_and_no_legend_covers_data(name):
    fig = FIGURES[name]()
    try:
        fig.canvas.draw()
        renderer = fig.canvas.get_renderer()
        for ax in fig.axes:
            if ax.images or not ax.axison:
                continue  # an image panel
            assert ax.get_xlabel().strip(), f"{name}: an axes has no x label"
            assert ax.get_ylabel().strip(), f"{name}: an axes has no y label"
        legends = [ax.get_legend() for ax in fig.axes if ax.get_legend()] + list(fig.legends)
        data = _data_extents(fig, renderer)
        assert data or name in ("image grid", "confusion matrix"), f"{name}: no data found to check"
        for legend in legends:
            box = legend.get_window_extent(renderer)
            covered = [b for b in data if box.overlaps(b)]
            assert not covered, f"{name}: the legend covers {len(covered)} plotted points or bars"
    finally:
        plt.close(fig)


def test_the_legend_check_catches_a_legend_on_data():
    """The overlap check above fails for a legend drawn over the data (so it can fail at all)."""
    fig, ax = plt.subplots()
    ax.plot(np.linspace(0, 1, 50), np.full(50, 0.5), label="a flat line under the legend")
    ax.legend(loc="center")
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    box = ax.get_legend().get_window_extent(renderer)
    assert any(box.overlaps(b) for b in _data_extents(fig, renderer))
    plt.close(fig)


@pytest.mark.parametrize("data_source", ["mura", "synthetic"])
def test_a_kappa_of_zero_or_missing_stays_visible(data_source):
    table = _kappa_table(data_source)
    fig = figures.kappa_comparison(table, data_source=data_source)
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    ours = table.columns[-1][1]
    ax = next(a for a in fig.axes if ours in a.get_legend_handles_labels()[1])
    bars = [p for p in ax.patches if isinstance(p, Rectangle) and p.get_width() > 0]
    flat = [p for p in bars if p.get_height() == 0]
    assert len(flat) >= 2, "the zero and the missing kappa should give bars of height 0"
    texts = [t for t in ax.texts if t.get_visible() and t.get_text()]
    markers = [line for line in ax.get_lines() if line.get_marker() not in (None, "None", "")]
    for bar in flat:
        left, right = bar.get_x(), bar.get_x() + bar.get_width()
        centre = (left + right) / 2
        labels = [t.get_text() for t in texts if left <= t.xy[0] <= right]
        assert labels and labels[0] in ("0.00", "n/a"), f"no value printed on the flat bar at x={centre:.2f}"
        extent = [t.get_window_extent(renderer) for t in texts if left <= t.xy[0] <= right][0]
        assert extent.height > 5 and extent.width > 2, "the printed value of a flat bar is not visible"
    zero_bar = [
        b
        for b in flat
        if any(
            np.isclose(b.get_x() + b.get_width() / 2, x) and np.isclose(y, 0.0)
            for line in markers
            for x, y in line.get_xydata()
        )
    ]
    assert zero_bar, "a kappa of exactly 0 has no marker at its value"
    plt.close(fig)


def test_synthetic_kappas_are_not_drawn_among_the_radiologists():
    fig = figures.kappa_comparison(_kappa_table("synthetic"), data_source="synthetic")
    assert len(fig.axes) == 2
    published, ours = fig.axes
    assert "Rajpurkar" in published.get_title() and "synthetic" in ours.get_title()
    assert all("radiologist" not in label for label in ours.get_legend_handles_labels()[1])
    assert all("this" not in label for label in published.get_legend_handles_labels()[1])
    plt.close(fig)
    fig = figures.kappa_comparison(_kappa_table("mura"), data_source="mura")
    assert len(fig.axes) == 1
    plt.close(fig)


def test_resize_policies_show_the_original_and_each_policy():
    image = np.tile(np.arange(40, dtype=np.uint8)[None, :] * 5, (20, 1))  # 20 high, 40 wide
    fig = figures.resize_policies(image, 16)
    try:
        shown = [ax for ax in fig.axes if ax.images]
        assert [ax.get_title() for ax in shown] == ["original 40x20", "pad, 16x16", "stretch, 16x16", "crop, 16x16"]
        assert shown[0].images[0].get_array().shape == (20, 40)
        assert all(ax.images[0].get_array().shape == (16, 16) for ax in shown[1:])
        padded = shown[1].images[0].get_array()
        assert (padded[0] == 0).all() and (padded[-1] == 0).all()  # pad fills the short side with black
    finally:
        plt.close(fig)


def test_augmented_copies_show_the_input_and_each_copy():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (24, 24), dtype=np.uint8)
    fig = figures.augmented_copies(image, 16, seed=1, samples=3)
    try:
        shown = [ax for ax in fig.axes if ax.images]
        assert [ax.get_title() for ax in shown] == ["input", "augmented 1", "augmented 2", "augmented 3"]
        arrays = [np.asarray(ax.images[0].get_array(), dtype=float) for ax in shown]
        assert all(a.shape == (16, 16) and a.min() >= 0 and a.max() <= 255 for a in arrays)
        assert not np.allclose(arrays[1], arrays[0])  # the copies are transformed
        assert not np.allclose(arrays[1], arrays[2])  # and each differently
    finally:
        plt.close(fig)


def test_grad_cam_grid_puts_each_map_under_its_view():
    views = pd.DataFrame(
        {
            "group": ["correct", "failed"],
            "study_type": ["XR_HAND", "XR_ELBOW"],
            "label": [0, 1],
            "probability": [0.123, 0.456],
        }
    )
    pixels = np.stack([np.full((8, 8, 1), 50.0), np.full((8, 8, 1), 200.0)])
    maps = np.stack([np.eye(8), np.ones((8, 8))])
    fig = figures.grad_cam_grid(views, pixels, maps)
    try:
        *panels, bar = fig.axes
        assert len(panels) == 4 and not any(ax.axison for ax in panels)
        # the colour bar reads the maps' scale: 0 to 1 in the maps' colours
        assert bar.get_label() == "<colorbar>" and "Grad-CAM" in bar.get_ylabel()
        assert bar.get_ylim() == (0.0, 1.0)
        assert bar._colorbar.cmap.name == panels[2].images[1].get_cmap().name
        top, bottom = panels[:2], panels[2:]
        assert top[0].get_title() == "correct: hand\nlabel normal\np = 0.12"
        assert top[1].get_title() == "failed: elbow\nlabel abnormal\np = 0.46"
        assert [len(ax.images) for ax in top] == [1, 1] and [len(ax.images) for ax in bottom] == [2, 2]
        np.testing.assert_array_equal(bottom[0].images[1].get_array(), np.eye(8))
        np.testing.assert_array_equal(bottom[1].images[0].get_array(), pixels[1, ..., 0])
    finally:
        plt.close(fig)
    empty = figures.grad_cam_grid(views.iloc[0:0], pixels[:0], maps[:0])
    assert len(empty.axes) == 3  # one blank column and the colour bar: the figure still draws
    plt.close(empty)


def _panel_lines(ax) -> dict:
    return {line.get_label(): line for line in ax.get_lines() if not line.get_label().startswith("_")}


def test_learning_curves_draw_each_subset_as_the_legend_says():
    """Every panel draws training, validation and the smoothed validation series in the colour and
    line style of their legend entry, the smoothed series is the smoothed column (not the raw
    one), and the axes are labelled in words."""
    history = _history(0, study=True)
    fig = figures.learning_curves({"baseline": history}, metrics=("loss", "auc", "study_auroc"))
    try:
        legend = {text.get_text(): handle for text, handle in zip(fig.legends[0].texts, fig.legends[0].legend_handles)}
        assert list(legend) == ["training", "validation", "validation, smoothed"]
        for ax in fig.axes:
            for label, line in _panel_lines(ax).items():
                assert line.get_linestyle() == legend[label].get_linestyle(), f"{label} in {ax.get_ylabel()}"
                assert line.get_color() == legend[label].get_color(), f"{label} in {ax.get_ylabel()}"
        study = fig.axes[2]
        assert study.get_ylabel() == "study-level AUROC"
        lines = _panel_lines(study)
        assert sorted(lines) == ["validation", "validation, smoothed"]  # no training series to draw
        np.testing.assert_allclose(lines["validation"].get_ydata(), history["val_study_auroc"])
        np.testing.assert_allclose(lines["validation, smoothed"].get_ydata(), history["val_study_auroc_smooth"])
        assert not np.allclose(lines["validation"].get_ydata(), lines["validation, smoothed"].get_ydata())
        assert [ax.get_ylabel() for ax in fig.axes[:2]] == ["weighted cross-entropy", "image-level AUROC"]
    finally:
        plt.close(fig)


def test_learning_curves_of_several_runs_are_small_multiples_with_a_range_robust_to_a_spike():
    histories = {f"variant {i}": _history(i, spike=i == 3) for i in range(5)}
    fig = figures.learning_curves(histories, metrics=("loss",))
    try:
        assert [ax.get_title() for ax in fig.axes] == list(histories)  # one panel per run
        assert len({ax.get_ylim() for ax in fig.axes}) == 1  # one y-range for all of them
        low, high = fig.axes[0].get_ylim()
        assert high < 2, "the spike of 25 should not set the range"
        assert low < 0.3 and high > 0.75  # every other value stays inside
        triangles = [
            line for ax in fig.axes for line in ax.get_lines() if line.get_marker() == "^" and len(line.get_xdata())
        ]
        assert len(triangles) == 1 and triangles[0].axes.get_title() == "variant 3"
        assert triangles[0].get_xdata()[0] == 3  # epoch 3 (the third, counted from 1)
    finally:
        plt.close(fig)
    calm = figures.learning_curves({f"variant {i}": _history(i) for i in range(5)}, metrics=("loss",))
    try:
        values = np.concatenate([line.get_ydata() for ax in calm.axes for line in ax.get_lines()])
        low, high = calm.axes[0].get_ylim()
        assert low < values.min() and high > values.max()  # without a spike nothing is cut
        assert not any(line.get_marker() == "^" for ax in calm.axes for line in ax.get_lines())
    finally:
        plt.close(calm)


def test_robust_limits_cut_only_a_far_spike():
    assert figures.robust_limits([0.3, 0.4, 0.5, 0.6])[2] is False
    low, high, cut = figures.robust_limits([0.3, 0.35, 0.4, 0.45, 0.5, 0.55, 0.6, 0.62, 0.64, 0.66] * 3 + [20.0])
    assert cut and 0.66 <= high < 1 and low < 0.3


@pytest.mark.parametrize("data_source", ["mura", "synthetic"])
def test_kappa_panels_share_one_scale_name_study_types_in_words_and_show_this_builds_intervals(data_source):
    kappa = pd.DataFrame(
        {"kappa": np.linspace(0.2, 0.9, len(evaluation.PAPER_KAPPA))}, index=evaluation.PAPER_KAPPA.index
    )
    kappa["kappa_low"], kappa["kappa_high"] = kappa["kappa"] - 0.3, np.minimum(kappa["kappa"] + 0.2, 1.0)
    kappa.loc["XR_HAND", ["kappa_low", "kappa_high"]] = np.nan  # no interval: no error bar, no failure
    table = evaluation.kappa_beside_paper(kappa, label="baseline", data_source=data_source)
    fig = figures.kappa_comparison(table, data_source=data_source, intervals=kappa)
    try:
        assert len({ax.get_ylim() for ax in fig.axes}) == 1  # both panels on one scale
        low, high = fig.axes[0].get_ylim()
        assert low <= float(kappa["kappa_low"].min()) and high >= 1.0
        for ax in fig.axes:
            names = [label.get_text() for label in ax.get_xticklabels()]
            assert names[:2] == ["elbow", "finger"] and names[-1] == "overall"
            assert not any("XR_" in name for name in names)
        bars = [c for ax in fig.axes for c in ax.containers if type(c).__name__ == "ErrorbarContainer"]
        assert len(bars) == 1  # this build's bars only; the paper gives no intervals
        segments = bars[0].lines[2][0].get_segments()
        assert len(segments) == len(kappa) - 1  # every study type but the one without an interval
        lows = sorted(round(float(s[:, 1].min()), 6) for s in segments)
        assert lows == sorted(round(v, 6) for v in kappa["kappa_low"].dropna())
    finally:
        plt.close(fig)


def test_grad_cam_grid_outlines_the_finding_where_a_view_has_one():
    views = pd.DataFrame(
        {
            "group": ["correct", "failed"],
            "study_type": ["XR_HAND", "XR_ELBOW"],
            "label": [1, 0],
            "probability": [0.9, 0.8],
        }
    )
    pixels = np.zeros((2, 8, 8, 1))
    fig = figures.grad_cam_grid(views, pixels, np.ones((2, 8, 8)), boxes=[(1.0, 2.0, 5.0, 7.5), None])
    try:
        top, bottom = fig.axes[:2], fig.axes[2:4]
        for ax in (top[0], bottom[0]):
            (outline,) = ax.patches
            assert outline.get_xy() == (0.5, 1.5) and (outline.get_width(), outline.get_height()) == (4.0, 5.5)
        assert not top[1].patches and not bottom[1].patches
    finally:
        plt.close(fig)
