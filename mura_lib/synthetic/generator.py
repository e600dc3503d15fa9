"""A synthetic dataset in exactly the MURA-v1.1 layout, generated deterministically from a seed.

MURA itself may not be redistributed, so the book builds by default on this stand-in.  It
mirrors MURA's structure at any ``scale`` (1.0 = MURA's size): the number of studies per
study type, split and label, the number of views per study, patients with several studies and
study types, and the quirks of circulating copies (RGB files, macOS ``._`` sidecar files).
The pictures themselves are drawn by :func:`mura_lib.synthetic.radiograph.draw_radiograph`.

The ``valid`` split (the thesis's test set) can be given a scale of its own, ``valid_scale``,
so that a small dataset still has a test set large enough to tell models apart.  Each split
draws from random streams of its own, so the ``train`` split's bytes do not depend on it.

Beside the MURA layout the generator writes what real MURA lacks, the ground truth of every
image (:data:`TRUTH_FILENAME`: its finding and how conspicuous it is, hardware, cast, burnt-in
lead markers and where they are), read per image by :func:`image_truth` and per study by
:func:`study_truth`.  :func:`render_images` redraws stored images, for example without their
markers (:func:`render_without_markers`), for counterfactual tests.

The same seed gives the same bytes, whatever the number of worker processes.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from filelock import FileLock
from PIL import Image
from tqdm.auto import tqdm

from ..dataset import DATASET_DIRNAME, SPLITS, STUDY_TYPES, resolve_data_root
from ..parallel import partial_name, process_pool, remove_stale_partials
from .findings import FINDINGS
from .radiograph import draw_radiograph

# Studies per (split, study type) as (normal, abnormal), from MURA-v1.1's labelled-study CSVs.
MURA_STUDY_COUNTS = {
    "train": {
        "XR_ELBOW": (1094, 660),
        "XR_FINGER": (1280, 655),
        "XR_FOREARM": (590, 287),
        "XR_HAND": (1497, 521),
        "XR_HUMERUS": (321, 271),
        "XR_SHOULDER": (1364, 1457),
        "XR_WRIST": (2134, 1326),
    },
    "valid": {
        "XR_ELBOW": (92, 66),
        "XR_FINGER": (92, 83),
        "XR_FOREARM": (69, 64),
        "XR_HAND": (101, 66),
        "XR_HUMERUS": (68, 67),
        "XR_SHOULDER": (99, 95),
        "XR_WRIST": (140, 97),
    },
}
# Images per (split, study type) as (normal, abnormal): used to match views per study by type.
MURA_IMAGE_COUNTS = {
    "train": {
        "XR_ELBOW": (2925, 2006),
        "XR_FINGER": (3138, 1968),
        "XR_FOREARM": (1164, 661),
        "XR_HAND": (4059, 1484),
        "XR_HUMERUS": (673, 599),
        "XR_SHOULDER": (4211, 4168),
        "XR_WRIST": (5765, 3987),
    },
    "valid": {
        "XR_ELBOW": (235, 230),
        "XR_FINGER": (214, 247),
        "XR_FOREARM": (150, 151),
        "XR_HAND": (271, 189),
        "XR_HUMERUS": (148, 140),
        "XR_SHOULDER": (285, 278),
        "XR_WRIST": (364, 295),
    },
}
# Views per study in MURA's train split: {views: studies}.
MURA_VIEWS_PER_STUDY = {1: 1131, 2: 3733, 3: 6466, 4: 1887, 5: 197, 6: 27, 7: 13, 8: 2, 11: 1}
MURA_PATIENTS = {"train": 11184, "valid": 783}
# Of the studies beyond one per patient, the share that repeats a study type the patient
# already has (study2, study3, ...) rather than adding another type: (480+35+8)/(13457-11184).
REPEAT_SAME_TYPE_SHARE = 523 / 2273

# The ground truth of every image, at the dataset's root (not part of MURA's layout).
TRUTH_FILENAME = "synthetic_truth.csv"
SPEC_FILENAME = "SYNTHETIC.json"
MARKER_BOX_COLUMNS = ["marker_x0", "marker_y0", "marker_x1", "marker_y1"]
FINDING_BOX_COLUMNS = ["finding_x0", "finding_y0", "finding_x1", "finding_y1"]
# The finding's box as fractions of the stored image's width and height (left, top, right,
# bottom), which any resizing maps as it maps the image: computed when the truth is read.
FINDING_FRACTION_COLUMNS = ["finding_left", "finding_top", "finding_right", "finding_bottom"]

SIDECAR_BYTES = b"\x00\x05\x16\x07\x00\x02\x00\x00Mac OS X        " + b"\x00" * 66


@dataclass(frozen=True)
class SyntheticSpec:
    """Everything that determines a synthetic dataset's bytes."""

    scale: float = 0.02
    image_size: int = 128
    seed: int = 0
    # The valid split's own scale (None: ``scale``); its patients scale with it.
    valid_scale: float | None = None
    rgb_fraction: float = 0.02
    sidecar_fraction: float = 0.002
    generator_version: int = 2

    def __post_init__(self):
        if not 0 < self.scale <= 2.0:
            raise ValueError(f"scale must be in (0, 2], got {self.scale}")
        if self.valid_scale is not None and not 0 < self.valid_scale <= 2.0:
            raise ValueError(f"valid_scale must be in (0, 2] or None (the same as scale), got {self.valid_scale}")
        if not 32 <= self.image_size <= 1024:
            raise ValueError(f"image_size (the longest side in pixels) must be in [32, 1024], got {self.image_size}")

    def split_scale(self, split: str) -> float:
        """The scale of ``split`` (``"train"`` or ``"valid"``) relative to MURA's own."""
        return self.valid_scale if split == "valid" and self.valid_scale is not None else self.scale


# The folder of this package: every module in it is hashed by :func:`generator_hash`.
PACKAGE_DIR = Path(__file__).resolve().parent

# The modules of mura_lib outside this package that it imports (directly, through each other, or as
# parent packages), each with why it cannot change a generated byte without changing
# :func:`generator_hash`.  tests/test_synthetic.py checks that the package reaches no other one.
OUTSIDE_IMPORTS = {
    "mura_lib": "the library's __init__: it only calls mura_lib.numerics.configure",
    "mura_lib.numerics": "sets TensorFlow's environment variables, which neither NumPy nor SciPy reads",
    "mura_lib.dataset": "MURA's layout, shared with the reader: the folder name, the splits and the study types "
    "decide paths and the order of the random draws, so generator_hash hashes their values; resolve_data_root "
    "only finds an existing dataset to read",
    "mura_lib.files": "atomic writes and the checksums of files (the data's content hashes among them): how a "
    "file is written and checked, never what the generator draws",
    "mura_lib.parallel": "the process pool and the names of half-written folders: how many processes draw, not "
    "what they draw (the same seed gives the same bytes whatever the number of workers)",
}


def generator_hash() -> str:
    """Hash of the code that decides a synthetic dataset's bytes.

    Every ``*.py`` file of this package, sorted by name, each by its name and bytes, so that a
    module added to or moved within the package is covered; and the values it takes from
    :mod:`mura_lib.dataset` (see :data:`OUTSIDE_IMPORTS`).
    """
    digest = hashlib.sha256()
    for path in sorted(PACKAGE_DIR.glob("*.py")):
        data = path.read_bytes()
        digest.update(f"{path.name}\0{len(data)}\0".encode())
        digest.update(data)
    digest.update(repr((DATASET_DIRNAME, SPLITS, STUDY_TYPES)).encode())
    return digest.hexdigest()[:16]


def _views_distribution(rng: np.random.Generator, n: int, mean_views: float) -> np.ndarray:
    """Sample ``n`` views-per-study counts from MURA's distribution, tilted to ``mean_views``."""
    values = np.array(list(MURA_VIEWS_PER_STUDY))
    weights = np.array(list(MURA_VIEWS_PER_STUDY.values()), dtype=float)
    # Exponential tilting moves the mean towards the study type's own while keeping the shape.
    low, high = -3.0, 3.0
    for _ in range(60):
        theta = (low + high) / 2
        p = weights * np.exp(theta * values)
        p /= p.sum()
        if (p * values).sum() < mean_views:
            low = theta
        else:
            high = theta
    return rng.choice(values, size=n, p=p)


def plan_studies(spec: SyntheticSpec) -> pd.DataFrame:
    """The table of studies (split, type, patient, study folder, label, views, finding)."""
    parts = []
    next_patient = 1
    for split_index, split in enumerate(SPLITS):
        # Each split has a random stream of its own: the valid split's size leaves train alone.
        rng = np.random.default_rng([spec.seed, 1, split_index])
        split_studies = _plan_split_studies(rng, split, spec.split_scale(split), next_patient)
        next_patient += split_studies["patient"].nunique()
        parts.append(split_studies)
    studies = pd.concat(parts, ignore_index=True)
    studies["patient"] = [f"patient{p:05d}" for p in studies["patient"]]
    studies = studies.sort_values(["split", "study_type", "patient"], kind="stable").reset_index(drop=True)
    studies["study_number"] = studies.groupby(["split", "study_type", "patient"]).cumcount() + 1
    suffix = np.where(studies["label"] == 1, "positive", "negative")
    studies["study"] = [f"study{n}_{s}" for n, s in zip(studies["study_number"], suffix)]
    studies["study_path"] = (
        studies["split"] + "/" + studies["study_type"] + "/" + studies["patient"] + "/" + studies["study"]
    )
    # Each abnormal study shows its finding in at least one view, not necessarily in all.
    return studies


def _plan_split_studies(rng: np.random.Generator, split: str, scale: float, first_patient: int) -> pd.DataFrame:
    """One split's studies with their patients (numbered from ``first_patient``)."""
    rows = []
    for study_type in STUDY_TYPES:
        for label, count in enumerate(MURA_STUDY_COUNTS[split][study_type]):
            n = max(1, round(count * scale))
            mean_views = MURA_IMAGE_COUNTS[split][study_type][label] / count
            views = _views_distribution(rng, n, mean_views)
            for v in views:
                rows.append({"split": split, "study_type": study_type, "label": label, "views": int(v)})
    studies = pd.DataFrame(rows)
    studies["finding"] = ""
    abnormal = studies["label"] == 1
    studies.loc[abnormal, "finding"] = rng.choice(FINDINGS, size=int(abnormal.sum()))

    # Patients: one study each to start with, then the remaining studies go to existing patients,
    # some repeating a study type (study2, study3, ...) and most adding another type.
    patient_column = np.empty(len(studies), dtype=np.int64)
    index = rng.permutation(studies.index.to_numpy())
    n_patients = min(len(index), max(1, round(MURA_PATIENTS[split] * scale)))
    owners: list[int] = list(range(first_patient, first_patient + n_patients))
    types_of: dict[int, set[str]] = {p: set() for p in owners}
    for position, study_index in enumerate(index):
        study_type = studies.at[study_index, "study_type"]
        if position < n_patients:
            patient = owners[position]
        else:
            same = [
                p for p in rng.choice(owners, size=min(len(owners), 16), replace=False) if study_type in types_of[p]
            ]
            other = [
                p for p in rng.choice(owners, size=min(len(owners), 16), replace=False) if study_type not in types_of[p]
            ]
            if same and (rng.random() < REPEAT_SAME_TYPE_SHARE or not other):
                patient = int(same[0])
            else:
                patient = int(other[0]) if other else int(rng.choice(owners))
        types_of[patient].add(study_type)
        patient_column[study_index] = patient
    studies["patient"] = patient_column
    return studies


def plan_images(spec: SyntheticSpec, studies: pd.DataFrame) -> pd.DataFrame:
    """One row per image: path, drawing parameters and quirks."""
    parts = []
    for split_index, split in enumerate(SPLITS):
        rng = np.random.default_rng([spec.seed, 2, split_index])
        rows = []
        for study in studies.loc[studies["split"] == split].itertuples():
            visible = np.ones(study.views, dtype=bool)
            # A cast or implant is on the limb in every view; a fracture line, a lesion or a
            # narrowed joint can be hidden by the projection.
            if study.label == 1 and study.views > 1 and study.finding not in ("hardware", "cast"):
                visible = rng.random(study.views) < 0.75
                visible[rng.integers(study.views)] = True
            for view in range(1, study.views + 1):
                rows.append(
                    {
                        "relpath": f"{study.study_path}/image{view}.png",
                        "study_type": study.study_type,
                        "label": study.label,
                        "finding": study.finding if visible[view - 1] else "",
                        "view": view,
                    }
                )
        images = pd.DataFrame(rows)
        images["rgb"] = rng.random(len(images)) < spec.rgb_fraction
        images["image_seed"] = rng.integers(0, 2**63 - 1, size=len(images), dtype=np.int64)
        parts.append(images)
    return pd.concat(parts, ignore_index=True)


def _draw(study_type: str, finding: str, view: int, image_seed: int, size: int, markers: bool = True):
    """One planned image's pixels and what was drawn (see :func:`draw_radiograph`)."""
    rng = np.random.default_rng(int(image_seed))
    return draw_radiograph(
        study_type, finding=finding or None, view=int(view), size=int(size), rng=rng, markers=markers, return_info=True
    )


def _render(task: tuple) -> tuple[str, bytes, dict]:
    relpath, study_type, finding, view, rgb, image_seed, image_size = task
    pixels, info = _draw(study_type, finding, view, image_seed, image_size)
    info["height"], info["width"] = pixels.shape
    image = Image.fromarray(pixels, mode="L")
    if rgb:
        image = image.convert("RGB")
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", optimize=False, compress_level=6)
    return relpath, buffer.getvalue(), info


def generate_synthetic_mura(
    destination: str | os.PathLike,
    *,
    scale: float = 0.02,
    image_size: int = 128,
    seed: int = 0,
    valid_scale: float | None = None,
    workers: int | None = None,
    overwrite: bool = False,
    progress: bool = True,
) -> Path:
    """Write a synthetic MURA-v1.1 tree to ``destination/MURA-v1.1`` and return that folder.

    ``scale`` sizes the dataset relative to MURA (studies, images and patients);
    ``valid_scale`` sizes the ``valid`` split on its own (None: ``scale``), leaving the
    ``train`` split's bytes as they are.  The ground truth of every image goes to
    :data:`TRUTH_FILENAME` at the root.

    A complete dataset that already matches the same specification is reused; one of another
    specification is an error unless ``overwrite=True``; a folder without :data:`SPEC_FILENAME`
    (not written by this generator, such as a real MURA copy) is always an error.  The tree is written to a temporary
    folder and renamed into place at the end, so an interrupted run leaves nothing half-written.
    """
    spec = SyntheticSpec(scale=scale, image_size=image_size, seed=seed, valid_scale=valid_scale)
    destination = Path(destination).expanduser().resolve()
    root = destination / DATASET_DIRNAME
    spec_file = root / SPEC_FILENAME
    # The drawing code's hash is part of the specification: new pictures, a new dataset.
    spec_json = pd.Series(asdict(spec) | {"generator": generator_hash()}).to_json(indent=1)
    destination.mkdir(parents=True, exist_ok=True)
    # One process generates a destination at a time; another one waits, then reuses the result.
    with FileLock(destination / f".{DATASET_DIRNAME}.lock", mode=0o664):
        # What a killed generation left behind goes, unless its process still runs.
        remove_stale_partials(destination)
        if root.exists():
            if spec_file.exists() and spec_file.read_text() == spec_json:
                return root
            if not spec_file.exists():
                # Not written by this generator (a real MURA copy looks like this): never deleted.
                raise FileExistsError(
                    f"{root} exists and has no {SPEC_FILENAME}, so this generator did not write it (a real "
                    "MURA-v1.1 copy looks like that); it is not replaced, even with --overwrite. Choose another "
                    "destination, or move the folder away yourself."
                )
            if not overwrite:
                raise FileExistsError(
                    f"{root} exists and was not generated with this specification; delete it, or replace it "
                    "with `mura-thesis synthesize --overwrite` (overwrite=True)."
                )
        return _generate(spec, spec_json, destination, root, workers, progress)


def _generate(spec: "SyntheticSpec", spec_json: str, destination: Path, root: Path, workers, progress: bool) -> Path:
    studies = plan_studies(spec)
    images = plan_images(spec, studies)
    staging = destination / partial_name(DATASET_DIRNAME)
    staging.mkdir(parents=True)
    for study_path in studies["study_path"]:
        (staging / study_path).mkdir(parents=True, exist_ok=True)

    tasks = [
        (r.relpath, r.study_type, r.finding, r.view, r.rgb, r.image_seed, spec.image_size) for r in images.itertuples()
    ]
    workers = workers or os.cpu_count() or 1
    bar = tqdm(total=len(tasks), desc="Synthesising radiographs", unit="img", disable=not progress)
    drawn: dict[str, dict] = {}
    try:
        if workers == 1:
            results = map(_render, tasks)
            for relpath, data, info in results:
                (staging / relpath).write_bytes(data)
                drawn[relpath] = info
                bar.update()
        else:
            with process_pool(workers) as pool:
                for relpath, data, info in pool.map(_render, tasks, chunksize=32):
                    (staging / relpath).write_bytes(data)
                    drawn[relpath] = info
                    bar.update()
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    finally:
        bar.close()

    # Quirks of circulating copies: a few macOS sidecar files next to images.
    for split_index, split in enumerate(SPLITS):
        sidecar_rng = np.random.default_rng([spec.seed, 3, split_index])
        split_images = images.loc[images["relpath"].str.startswith(split + "/"), "relpath"].to_numpy()
        n_sidecars = max(1, round(spec.sidecar_fraction * len(split_images)))
        for relpath in sidecar_rng.choice(split_images, size=n_sidecars, replace=False):
            folder, name = relpath.rsplit("/", 1)
            (staging / folder / f"._{name}").write_bytes(SIDECAR_BYTES)

    for split in SPLITS:
        split_images = images.loc[images["relpath"].str.startswith(split + "/"), "relpath"]
        lines = "".join(f"{DATASET_DIRNAME}/{p}\n" for p in split_images)
        (staging / f"{split}_image_paths.csv").write_text(lines)
        split_studies = studies.loc[studies["split"] == split]
        lines = "".join(
            f"{DATASET_DIRNAME}/{p}/,{label}\n" for p, label in zip(split_studies["study_path"], split_studies["label"])
        )
        (staging / f"{split}_labeled_studies.csv").write_text(lines)
    # Ground truth that real MURA does not have: what each image shows. It lets the thesis ask
    # what a model relies on (e.g. hardware or lead markers as shortcuts).
    _truth_table(images, drawn).to_csv(staging / TRUTH_FILENAME, index=False)
    (staging / SPEC_FILENAME).write_text(spec_json)
    if root.exists():  # replaced only now, so that an interrupted run keeps the old copy
        old = destination / partial_name(f"{DATASET_DIRNAME}-old")
        os.replace(root, old)
        os.replace(staging, root)
        shutil.rmtree(old)
    else:
        os.replace(staging, root)
    return root


def _truth_table(images: pd.DataFrame, drawn: dict[str, dict]) -> pd.DataFrame:
    """The rows of :data:`TRUTH_FILENAME`: one per image, from the plan and what was drawn."""
    info = pd.DataFrame([drawn[r] for r in images["relpath"]], index=images.index)
    boxes = [box if box is not None else (None,) * 4 for box in info["marker_box"]]
    boxes = pd.DataFrame(boxes, columns=MARKER_BOX_COLUMNS, index=images.index).astype("Int64")
    finding_boxes = [box if box is not None else (None,) * 4 for box in info["finding_box"]]
    finding_boxes = pd.DataFrame(finding_boxes, columns=FINDING_BOX_COLUMNS, index=images.index).astype("Int64")
    truth = pd.concat(
        [
            images[["relpath", "study_type", "label", "view"]],
            info[["projection"]],
            images[["finding"]],
            info[["conspicuity", "hardware", "cast", "marker"]],
            boxes,
            finding_boxes,
            info[["width", "height"]],
            images[["image_seed", "rgb"]],
        ],
        axis=1,
    )
    return truth


def dataset_spec(root: str | os.PathLike) -> dict | None:
    """The specification a synthetic dataset was generated with (``SYNTHETIC.json``), or None.

    ``valid_scale`` is filled in with the scale the valid split actually has.
    """
    path = resolve_data_root(root) / SPEC_FILENAME
    if not path.exists():
        return None
    spec = json.loads(path.read_text())
    if spec.get("valid_scale") is None:
        spec["valid_scale"] = spec["scale"]
    return spec


def _truth_path(root: str | os.PathLike) -> Path:
    return resolve_data_root(root) / TRUTH_FILENAME


def image_truth(root: str | os.PathLike) -> pd.DataFrame | None:
    """The ground truth of every image of a synthetic dataset, or None for real MURA.

    One row per image (``relpath`` as in :func:`mura_lib.dataset.load_mura`) with
    ``study_type``, ``label``, ``view`` (the image number), ``projection`` (AP, LAT or OBL),
    ``finding`` (empty when the view shows none, e.g. a fracture hidden by the projection),
    ``conspicuity`` (in [0, 1], NaN without a finding: how strong the finding was drawn within
    the ranges of :data:`mura_lib.synthetic.findings.FINDING_STRENGTH`, see
    :func:`mura_lib.synthetic.radiograph.draw_radiograph`), ``hardware`` and ``cast`` (booleans),
    ``marker`` (a burnt-in lead marker shows) with its box ``marker_x0``, ``marker_y0``,
    ``marker_x1``, ``marker_y1`` (pixels of the stored image, ends exclusive; missing without a
    marker), the finding's box ``finding_x0``, ``finding_y0``, ``finding_x1``, ``finding_y1``
    (pixels of the stored image, ends exclusive; missing without a finding, see
    :func:`mura_lib.synthetic.radiograph.draw_radiograph`), the same box as fractions of the
    image's ``width`` and ``height`` (``finding_left``, ``finding_top``, ``finding_right``,
    ``finding_bottom``), and what redraws the image: ``image_seed`` and ``rgb`` (stored as RGB).
    """
    path = _truth_path(root)
    if not path.exists():
        return None
    # Only the numbers may be missing; an empty finding is the empty string.
    missing_numbers = {column: [""] for column in ["conspicuity", *MARKER_BOX_COLUMNS, *FINDING_BOX_COLUMNS]}
    truth = pd.read_csv(path, keep_default_na=False, na_values=missing_numbers)
    required = {"relpath", "finding", "conspicuity", "hardware", "cast", "marker", "image_seed", "width", "height"}
    missing = (required | set(FINDING_BOX_COLUMNS)) - set(truth.columns)
    if missing:
        raise ValueError(
            f"{path}: columns {sorted(missing)} are missing; it was written by an older generator. "
            "Delete the dataset folder and generate it again."
        )
    for column in MARKER_BOX_COLUMNS + FINDING_BOX_COLUMNS:
        truth[column] = truth[column].astype("Int64")
    for fraction, column in zip(FINDING_FRACTION_COLUMNS, FINDING_BOX_COLUMNS):
        side = truth["width"] if column[-2] == "x" else truth["height"]
        truth[fraction] = truth[column].astype("float64") / side
    return truth


def study_truth(root: str | os.PathLike) -> pd.DataFrame | None:
    """The ground truth per study of a synthetic dataset, or None for real MURA (no truth file).

    One row per study: ``study_path`` (as in :func:`mura_lib.dataset.load_mura`), ``split``,
    ``study_type``, ``label``, ``views``, ``finding`` (the study's finding, empty for a normal
    study), ``conspicuity`` (the largest over the views that show it; NaN for a normal study),
    ``hardware``, ``cast`` and ``marker`` (in any view) and ``marker_views`` (how many views
    show a lead marker).
    """
    truth = image_truth(root)
    if truth is None:
        return None
    truth["study_path"] = truth["relpath"].str.rsplit("/", n=1).str[0]
    truth["split"] = truth["relpath"].str.split("/", n=1).str[0]
    grouped = truth.groupby("study_path", sort=True)
    studies = grouped.agg(
        split=("split", "first"),
        study_type=("study_type", "first"),
        label=("label", "first"),
        views=("relpath", "size"),
        finding=("finding", "max"),  # the one non-empty finding ("" sorts first)
        conspicuity=("conspicuity", "max"),
        hardware=("hardware", "any"),
        cast=("cast", "any"),
        marker=("marker", "any"),
        marker_views=("marker", "sum"),
    )
    return studies.reset_index()


def render_images(
    root: str | os.PathLike, relpaths, *, markers: bool = True, image_size: int | None = None
) -> dict[str, np.ndarray]:
    """Draw stored images of a synthetic dataset again, as greyscale ``uint8`` arrays.

    ``markers=False`` gives the counterfactual films: the same pixels except the burnt-in lead
    markers, which differ only within the box recorded in the truth file.  ``image_size``
    draws them at another longest side (default: the dataset's own).  Images stored as RGB
    come back as one channel (their three channels are equal).
    """
    root = resolve_data_root(root)
    truth = image_truth(root)
    if truth is None:
        raise FileNotFoundError(
            f"{root} has no {TRUTH_FILENAME}: only a synthetic dataset written by "
            "`mura-thesis synthesize` (or the build) can be drawn again."
        )
    if image_size is None:
        image_size = int(json.loads((root / SPEC_FILENAME).read_text())["image_size"])
    truth = truth.set_index("relpath")
    relpaths = list(relpaths)
    unknown = [r for r in relpaths if r not in truth.index]
    if unknown:
        raise KeyError(f"{root / TRUTH_FILENAME} lists no image {unknown[0]!r} ({len(unknown)} unknown in all).")
    out = {}
    for relpath in relpaths:
        row = truth.loc[relpath]
        pixels, _ = _draw(row["study_type"], row["finding"], row["view"], row["image_seed"], image_size, markers)
        out[relpath] = pixels
    return out


def render_without_markers(root: str | os.PathLike, relpaths, image_size: int | None = None) -> dict[str, np.ndarray]:
    """Stored images of a synthetic dataset drawn again without their burnt-in lead markers.

    Everything else is identical pixel for pixel (see :func:`render_images`).
    """
    return render_images(root, relpaths, markers=False, image_size=image_size)
