"""What a model detects and what it relies on, measured against the synthetic data's ground truth.

Real MURA labels a study only normal or abnormal.  The synthetic dataset also records what each
study shows (:func:`mura_lib.synthetic.study_truth`): the finding, how conspicuous it was drawn,
hardware, casts and burnt-in lead side markers.  With that truth this module measures

- :func:`detection_by_finding`: how well a model separates each kind of finding from the normal
  studies, and :func:`detection_by_conspicuity` the same by how conspicuous the finding is;
- :func:`shortcut_reliance`: whether abnormal studies with hardware or a cast are found more
  easily than the other abnormal studies (a model that sees only hardware and casts would
  score the first group high and the second near chance);
- :func:`marker_masking`: how much the predictions move when the lead markers are removed from
  the films and everything else stays the same, pixel for pixel.

Every AUROC here sets one group of abnormal studies against all normal studies, with a
stratified percentile bootstrap: each resample draws the normal studies and each abnormal group
with replacement, on their own, so every resample keeps the group sizes.

On real MURA there is no ground truth: these functions return None when ``truth`` is None (or,
for :func:`marker_masking`, when the dataset has no truth file), and the chapters say why the
tables are missing.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from .evaluation import percentile_bootstrap
from .files import short_hash
from .synthetic.findings import FINDINGS

FINDING_NAMES = {
    "fracture": "fractures",
    "hardware": "hardware",
    "cast": "casts",
    "lesion": "lesions",
    "degenerative": "degenerative change",
}
SUBTLE_FINDINGS = ("fracture", "lesion", "degenerative")
CONSPICUOUS_FINDINGS = ("hardware", "cast")
CONSPICUITY_LEVELS = ("low", "medium", "high")
THRESHOLD = 0.5

# Column headers of the detection tables (numbers; mura_thesis.finding_tables joins the interval).
FINDING = "Finding"
STUDIES = "Abnormal studies"
AUROC = "AUROC against normal studies"
LOW, HIGH = "Interval low", "Interval high"
SENSITIVITY = f"Sensitivity at {THRESHOLD}"
INTERVAL = "95% interval"
CONSPICUITY = "Conspicuity"
CONSPICUITY_RANGE = "Conspicuity range"


# --- AUROC of two independent samples ---------------------------------------------------------


def _two_sample_auroc(abnormal, normal, axis=-1):
    """P(abnormal score > normal score), ties counting half (Mann-Whitney U / (m n)); vectorised."""
    abnormal = np.moveaxis(np.asarray(abnormal, dtype=float), axis, -1)
    normal = np.moveaxis(np.asarray(normal, dtype=float), axis, -1)
    normal = np.broadcast_to(normal, abnormal.shape[:-1] + normal.shape[-1:])
    m, n = abnormal.shape[-1], normal.shape[-1]
    ranks = stats.rankdata(np.concatenate([abnormal, normal], axis=-1), axis=-1)
    return (ranks[..., :m].sum(-1) - m * (m + 1) / 2) / (m * n)


def auroc_interval(
    abnormal, normal, *, n_resamples: int = 1000, seed: int = 0, confidence: float = 0.95
) -> tuple[float, float, float]:
    """AUROC of ``abnormal`` against ``normal`` scores with a stratified percentile bootstrap
    interval: ``(auroc, low, high)``.  The interval is NaN when a group has fewer than two studies."""
    abnormal, normal = np.asarray(abnormal, dtype=float), np.asarray(normal, dtype=float)
    if len(abnormal) == 0 or len(normal) == 0:
        return float("nan"), float("nan"), float("nan")
    point = float(_two_sample_auroc(abnormal, normal))
    if len(abnormal) < 2 or len(normal) < 2:
        return point, float("nan"), float("nan")
    low, high = percentile_bootstrap(
        (abnormal, normal), _two_sample_auroc, paired=False, n_resamples=n_resamples, confidence=confidence, seed=seed
    )
    return point, float(low), float(high)


# --- detection by finding and by conspicuity ---------------------------------------------------


def with_truth(studies: pd.DataFrame, truth: pd.DataFrame) -> pd.DataFrame:
    """Study predictions (``study_path``, ``label``, ``probability``) joined with the study truth.

    Raises ``ValueError`` naming a study that the truth table lacks or whose label disagrees.
    """
    required = {"study_path", "label", "probability"}
    missing = required - set(studies.columns)
    if missing:
        raise ValueError(
            f"The study predictions lack the columns {sorted(missing)}; pass a table made by "
            "mura_lib.evaluation.aggregate_studies (e.g. Run.study_predictions('test'))."
        )
    columns = ["study_path", "finding", "conspicuity", "hardware", "cast", "marker", "marker_views"]
    merged = studies[["study_path", "label", "probability"]].merge(
        truth[columns + ["label"]].rename(columns={"label": "truth_label"}),
        on="study_path",
        how="left",
        validate="one_to_one",
    )
    unknown = merged["truth_label"].isna()
    if unknown.any():
        raise ValueError(
            f"{int(unknown.sum())} studies are not in the ground truth, e.g. "
            f"{merged.loc[unknown, 'study_path'].iloc[0]}; pass the truth of the dataset the run was "
            "trained on (mura_lib.synthetic.study_truth(data_root))."
        )
    wrong = merged["label"].astype(int) != merged["truth_label"].astype(int)
    if wrong.any():
        raise ValueError(
            f"{int(wrong.sum())} studies carry another label in the ground truth, e.g. "
            f"{merged.loc[wrong, 'study_path'].iloc[0]}: the predictions and the truth come from "
            "different datasets."
        )
    return merged.drop(columns="truth_label")


def _row(abnormal: pd.Series, normal: np.ndarray, n_resamples: int, seed: int) -> dict:
    auroc, low, high = auroc_interval(abnormal.to_numpy(), normal, n_resamples=n_resamples, seed=seed)
    sensitivity = float((abnormal > THRESHOLD).mean()) if len(abnormal) else float("nan")
    return {STUDIES: int(len(abnormal)), AUROC: auroc, LOW: low, HIGH: high, SENSITIVITY: sensitivity}


def detection_by_finding(
    studies: pd.DataFrame, truth: pd.DataFrame | None, *, n_resamples: int = 1000, seed: int = 0
) -> pd.DataFrame | None:
    """Per finding type: the AUROC of the abnormal studies with that finding against all normal
    studies, its 95% stratified bootstrap interval, the number of abnormal studies and the share of
    them called abnormal at 0.5 (the sensitivity).

    ``studies``: study predictions (``Run.study_predictions("test")``); ``truth``: the study truth
    (:func:`mura_lib.synthetic.study_truth`), None on real MURA, which gives None.  One row per
    finding of :data:`FINDINGS` that occurs among the studies, in that order.
    """
    if truth is None:
        return None
    merged = with_truth(studies, truth)
    normal = merged.loc[merged["label"] == 0, "probability"].to_numpy()
    rows = []
    for finding in FINDINGS:
        abnormal = merged.loc[(merged["label"] == 1) & (merged["finding"] == finding), "probability"]
        if len(abnormal):
            rows.append({FINDING: finding, **_row(abnormal, normal, n_resamples, seed)})
    return pd.DataFrame(rows, columns=[FINDING, STUDIES, AUROC, LOW, HIGH, SENSITIVITY])


def detection_by_conspicuity(
    studies: pd.DataFrame,
    truth: pd.DataFrame | None,
    *,
    findings=SUBTLE_FINDINGS,
    per_finding: bool = False,
    n_resamples: int = 1000,
    seed: int = 0,
) -> pd.DataFrame | None:
    """The detection table by conspicuity tertile (low, medium, high) of the abnormal studies with
    one of ``findings`` (the subtle ones by default), pooled over them or, with ``per_finding``,
    within each finding.  A study's conspicuity is the largest over its views (0 to 1, see
    :func:`mura_lib.synthetic.study_truth`); tertiles are cut at the group's own 1/3 and 2/3
    quantiles.  A group with fewer than three studies, or too few distinct values to cut, gets no
    rows.  None on real MURA (``truth`` None).
    """
    if truth is None:
        return None
    merged = with_truth(studies, truth)
    normal = merged.loc[merged["label"] == 0, "probability"].to_numpy()
    abnormal = merged.loc[(merged["label"] == 1) & merged["finding"].isin(findings) & merged["conspicuity"].notna()]
    groups = (
        [(f, abnormal.loc[abnormal["finding"] == f]) for f in findings]
        if per_finding
        else [(", ".join(findings), abnormal)]
    )
    rows = []
    for name, group in groups:
        if len(group) < 3:
            continue
        bins, edges = pd.qcut(group["conspicuity"], 3, labels=False, retbins=True, duplicates="drop")
        if len(edges) != 4:
            continue
        for level, label in enumerate(CONSPICUITY_LEVELS):
            part = group.loc[bins == level, "probability"]
            rows.append(
                {
                    FINDING: name,
                    CONSPICUITY: label,
                    CONSPICUITY_RANGE: f"{edges[level]:.2f} to {edges[level + 1]:.2f}",
                    **_row(part, normal, n_resamples, seed),
                }
            )
    return pd.DataFrame(rows, columns=[FINDING, CONSPICUITY, CONSPICUITY_RANGE, STUDIES, AUROC, LOW, HIGH, SENSITIVITY])


def conspicuity_gap(
    studies: pd.DataFrame,
    truth: pd.DataFrame | None,
    *,
    findings=SUBTLE_FINDINGS,
    n_resamples: int = 1000,
    seed: int = 0,
    confidence: float = 0.95,
) -> dict | None:
    """The AUROC of the most conspicuous third of the subtle findings minus that of the least
    conspicuous third, each against all normal studies, with an unpaired bootstrap interval of the
    difference (the thirds hold different studies; the normal studies are drawn once per resample
    and shared, as in the point estimate).  The thirds are those of :func:`detection_by_conspicuity`.
    None on real MURA or with too few studies to cut into thirds."""
    if truth is None:
        return None
    merged = with_truth(studies, truth)
    normal = merged.loc[merged["label"] == 0, "probability"].to_numpy()
    abnormal = merged.loc[(merged["label"] == 1) & merged["finding"].isin(findings) & merged["conspicuity"].notna()]
    if len(abnormal) < 6:
        return None
    bins, edges = pd.qcut(abnormal["conspicuity"], 3, labels=False, retbins=True, duplicates="drop")
    if len(edges) != 4:
        return None
    high = abnormal.loc[bins == 2, "probability"].to_numpy()
    low = abnormal.loc[bins == 0, "probability"].to_numpy()
    gap = float(_gap(normal, high, low))
    gap_low, gap_high = percentile_bootstrap(
        (normal, high, low), _gap, paired=False, n_resamples=n_resamples, confidence=confidence, seed=seed
    )
    return {
        "gap": gap,
        "low": float(gap_low),
        "high": float(gap_high),
        "confidence": confidence,
    }


def conspicuity_gaps(
    studies: pd.DataFrame,
    truth: pd.DataFrame | None,
    *,
    findings=SUBTLE_FINDINGS,
    n_resamples: int = 1000,
    seed: int = 0,
    confidence: float = 0.95,
) -> dict | None:
    """:func:`conspicuity_gap` within each finding of ``findings``, by name: each finding's thirds
    are cut at its own quantiles, since the findings' conspicuity scales differ (a faint lesion and
    a faint fracture are not equally faint).  A finding with too few studies to cut maps to None;
    None on real MURA."""
    if truth is None:
        return None
    return {
        finding: conspicuity_gap(
            studies, truth, findings=(finding,), n_resamples=n_resamples, seed=seed, confidence=confidence
        )
        for finding in findings
    }


# --- reliance on hardware and casts --------------------------------------------------------------


def _gap(normal, conspicuous, other, axis=-1):
    return _two_sample_auroc(conspicuous, normal, axis) - _two_sample_auroc(other, normal, axis)


def shortcut_reliance(
    studies: pd.DataFrame,
    truth: pd.DataFrame | None,
    *,
    n_resamples: int = 1000,
    seed: int = 0,
    confidence: float = 0.95,
) -> dict | None:
    """AUROC of the abnormal studies WITH hardware or a cast against the normal studies, AUROC of
    the abnormal studies WITHOUT either against the same normal studies, and their difference
    (with minus without) with a bootstrap interval.

    The two groups are different abnormal studies, so the difference is unpaired: each bootstrap
    resample draws the normal studies once (shared by both AUROCs, as in the point estimate) and
    each abnormal group on its own, and the percentile interval of the difference comes from
    these resamples; two separate intervals would not say whether the difference is real.  A gap
    whose interval lies above 0 means the network finds hardware and casts more easily than the
    other abnormalities: a network that relied on them alone would rank the other abnormal
    studies like normal ones.

    Returns None on real MURA (``truth`` None); the interval is NaN when a group has fewer than two
    studies.
    """
    if truth is None:
        return None
    merged = with_truth(studies, truth)
    normal = merged.loc[merged["label"] == 0, "probability"].to_numpy()
    abnormal = merged.loc[merged["label"] == 1]
    shortcut = (abnormal["hardware"].astype(bool) | abnormal["cast"].astype(bool)).to_numpy()
    with_, without = abnormal.loc[shortcut, "probability"].to_numpy(), abnormal.loc[~shortcut, "probability"].to_numpy()
    result = {"normal": len(normal), "with": len(with_), "without": len(without), "confidence": confidence}
    for name, group in (("with", with_), ("without", without)):
        auroc, low, high = auroc_interval(group, normal, n_resamples=n_resamples, seed=seed, confidence=confidence)
        result.update({f"auroc_{name}": auroc, f"low_{name}": low, f"high_{name}": high})
    result["gap"] = result["auroc_with"] - result["auroc_without"]
    if min(len(normal), len(with_), len(without)) >= 2:
        gap_low, gap_high = percentile_bootstrap(
            (normal, with_, without), _gap, paired=False, n_resamples=n_resamples, confidence=confidence, seed=seed
        )
        result["gap_low"], result["gap_high"] = float(gap_low), float(gap_high)
    else:
        result["gap_low"] = result["gap_high"] = float("nan")
    return result


# --- lead markers removed ------------------------------------------------------------------------


def _render_chunk(task: tuple) -> np.ndarray:
    """Draw a chunk of images again (with or without markers) and preprocess them as the cache does."""
    from .preprocess import resize_image
    from .synthetic import render_images

    root, relpaths, markers, size, policy = task
    drawn = render_images(root, relpaths, markers=markers)
    return (
        np.stack([resize_image(drawn[r], size, policy) for r in relpaths])
        if relpaths
        else np.zeros((0, size, size), np.uint8)
    )


def render_preprocessed(
    data_root,
    relpaths,
    image_size: int,
    policy: str = "pad",
    *,
    markers: bool = False,
    cache_dir: str | os.PathLike | None = None,
    workers: int | None = None,
) -> np.ndarray:
    """The images ``relpaths`` of a synthetic dataset drawn again (without their lead markers by
    default) and preprocessed exactly as :func:`mura_lib.preprocess.build_cache` preprocesses the
    stored files: ``uint8`` arrays of ``image_size`` pixels, in the order of ``relpaths``.

    Drawing runs over ``workers`` processes (all cores by default).  With ``cache_dir`` the
    result is kept on disk, keyed by the dataset's manifest, the drawing code, the size, the
    policy and the images, and read back on the next call.
    """
    from .dataset import load_mura
    from .parallel import process_pool
    from .synthetic import generator_hash

    relpaths = list(relpaths)
    path = None
    if cache_dir is not None:
        identity = {
            "data": load_mura(data_root).manifest_hash(),
            "generator": generator_hash(),
            "size": image_size,
            "policy": policy,
            "markers": markers,
            "images": hashlib.sha256("\n".join(relpaths).encode()).hexdigest(),
            "version": 1,
        }
        kind = "markers" if markers else "no-markers"
        path = Path(cache_dir) / "redrawn" / f"{image_size}px-{policy}-{kind}-{short_hash(identity)}.npy"
        if path.exists():
            return np.load(path)
    workers = max(1, min(workers or os.cpu_count() or 1, len(relpaths) // 64 + 1))
    chunk = max(1, -(-len(relpaths) // (workers * 4)))
    tasks = [
        (str(data_root), relpaths[i : i + chunk], markers, image_size, policy) for i in range(0, len(relpaths), chunk)
    ]
    if workers == 1:
        parts = [_render_chunk(t) for t in tasks]
    else:
        with process_pool(workers) as pool:
            parts = list(pool.map(_render_chunk, tasks))
    images = np.concatenate(parts) if parts else np.zeros((0, image_size, image_size), np.uint8)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp.npy")
        np.save(temporary, images)
        os.replace(temporary, path)
    return images


def predict_pixels(run, pixels: np.ndarray, labels=None) -> np.ndarray:
    """The run's model applied to preprocessed ``uint8`` images, batched and scaled as in training
    (:class:`mura_lib.inputs.CacheBatches`, the run's batch size and numeric precision)."""
    import keras

    from . import device
    from .inputs import CacheBatches

    labels = np.zeros(len(pixels)) if labels is None else np.asarray(labels)
    keras.config.set_dtype_policy(device.resolve_precision(run.config.precision))
    try:
        model = run.load_model()
        batches = CacheBatches(pixels, np.arange(len(pixels)), labels, batch_size=run.config.batch_size)
        return model.predict(batches, verbose=0).reshape(-1).astype("float64")
    finally:
        keras.config.set_dtype_policy("float32")


def marker_masking(
    run,
    data_root,
    *,
    subset: str = "test",
    n_resamples: int = 1000,
    seed: int = 0,
    cache_dir: str | os.PathLike | None = None,
    workers: int | None = None,
):
    """The run's predictions on the films of ``subset`` drawn again without their burnt-in lead
    markers, against its stored predictions on the films as they are.

    Each image is drawn again without its markers (every other pixel identical), preprocessed at
    the run's image size and resize policy as the cache preprocesses the stored files, and scored
    by the run's model; studies take the mean over their views.  Returns ``(comparison, summary,
    changes)``: the paired comparison (:func:`mura_lib.evaluation.compare_paired`, markers removed
    against as recorded, on the same studies); a summary with the mean and 95th percentile of the
    absolute change in probability per image and the share of studies whose call at 0.5 flips,
    over all images (studies) and over those with a marker; and the per-image table of changes
    (``relpath``, ``marker``, ``original``, ``masked``, ``change``).  Images without a marker are
    drawn again too, so that their change (nothing but floating-point noise) checks the pipeline.

    Returns None for a dataset without ground truth (real MURA: its markers cannot be removed).
    """
    from .evaluation import aggregate_studies, compare_paired
    from .synthetic import image_truth

    truth = image_truth(data_root)
    if truth is None:
        return None
    images = run.predictions.loc[run.predictions["subset"] == subset].reset_index(drop=True)
    if images.empty:
        raise ValueError(
            f"Run {run.key} has no predictions for the subset {subset!r}; it has "
            f"{sorted(run.predictions['subset'].unique())}."
        )
    marked = images[["relpath"]].merge(truth[["relpath", "marker"]], on="relpath", how="left")["marker"]
    if marked.isna().any():
        raise ValueError(
            f"{int(marked.isna().sum())} images of run {run.key} are not in the ground truth of "
            f"{data_root}, e.g. {images.loc[marked.isna(), 'relpath'].iloc[0]}: the run was trained on "
            "another dataset."
        )
    pixels = render_preprocessed(
        data_root,
        images["relpath"],
        run.config.image_size,
        run.config.policy,
        markers=False,
        cache_dir=cache_dir,
        workers=workers,
    )
    masked = images.assign(probability=predict_pixels(run, pixels, images["label"]))
    changes = pd.DataFrame(
        {
            "relpath": images["relpath"],
            "study_path": images["study_path"],
            "marker": marked.astype(bool).to_numpy(),
            "original": images["probability"],
            "masked": masked["probability"],
        }
    )
    changes["change"] = changes["masked"] - changes["original"]
    original_studies = aggregate_studies(images)
    masked_studies = aggregate_studies(masked)
    comparison = compare_paired(
        masked_studies,
        original_studies,
        n_resamples=n_resamples,
        seed=seed,
        name_a="markers removed",
        name_b="markers as recorded",
    )
    flips = (masked_studies["probability"] > THRESHOLD).to_numpy() != (
        original_studies["probability"] > THRESHOLD
    ).to_numpy()
    study_marked = changes.groupby("study_path")["marker"].any().reindex(original_studies["study_path"]).to_numpy()
    size = np.abs(changes["change"])
    on_marked = size[changes["marker"]]
    summary = {
        "images": int(len(changes)),
        "marked_images": int(changes["marker"].sum()),
        "studies": int(len(original_studies)),
        "marked_studies": int(study_marked.sum()),
        "mean_abs_change": float(size.mean()),
        "p95_abs_change": float(size.quantile(0.95)),
        "flipped_share": float(flips.mean()),
        "flipped": int(flips.sum()),
        "marked_mean_abs_change": float(on_marked.mean()) if len(on_marked) else float("nan"),
        "marked_p95_abs_change": float(on_marked.quantile(0.95)) if len(on_marked) else float("nan"),
        "marked_mean_change": float(changes.loc[changes["marker"], "change"].mean())
        if len(on_marked)
        else float("nan"),
        "marked_flipped_share": float(flips[study_marked].mean()) if study_marked.any() else float("nan"),
        "unmarked_max_abs_change": float(size[~changes["marker"]].max())
        if (~changes["marker"]).any()
        else float("nan"),
    }
    return comparison, summary, changes


# --- the evidence on shortcuts ----------------------------------------------------------------------


@dataclass
class ShortcutEvidence:
    """What :func:`shortcut_evidence` measured for one run: ``shortcut`` (:func:`shortcut_reliance`),
    ``comparison``, ``summary`` and ``changes`` (:func:`marker_masking`) and ``shown`` (the truth of
    the views in a figure); all None where the data have no ground truth (real MURA)."""

    shortcut: dict | None
    comparison: object | None = None
    summary: dict | None = None
    changes: pd.DataFrame | None = None
    shown: pd.DataFrame | None = None


def shortcut_evidence(
    run,
    data_root,
    *,
    views=None,
    n_resamples: int = 1000,
    seed: int = 0,
    cache_dir: str | os.PathLike | None = None,
) -> ShortcutEvidence:
    """Both measurements of shortcuts for ``run`` on its test studies: :func:`shortcut_reliance` and
    :func:`marker_masking`, with the truth (hardware, cast, marker) of the images ``views`` (relpaths,
    e.g. those of a Grad-CAM figure).  On a dataset without ground truth (real MURA) nothing is
    measured and the evidence holds None."""
    from .synthetic import image_truth, study_truth

    truth = study_truth(data_root)
    shortcut = shortcut_reliance(run.study_predictions("test"), truth, n_resamples=n_resamples, seed=seed)
    if truth is None:
        return ShortcutEvidence(shortcut)
    comparison, summary, changes = marker_masking(
        run, data_root, n_resamples=n_resamples, seed=seed, cache_dir=cache_dir
    )
    shown = None
    if views is not None:
        shown = image_truth(data_root).set_index("relpath").loc[list(views), ["hardware", "cast", "marker"]]
    return ShortcutEvidence(shortcut, comparison, summary, changes, shown)
