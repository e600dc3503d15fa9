"""Reading a MURA-v1.1 folder (real or synthetic) into one validated table of images.

The reader trusts nothing: it cross-checks the four CSV files against the folder tree and the
study labels against the folder suffixes, survives the quirks seen in circulating copies
(macOS ``._`` sidecar files, header rows, CRLF line ends) and explains every problem it
cannot survive with the path that caused it.  Nothing is dropped silently: every file that is
left out is listed in :attr:`MuraDataset.exclusions` with its reason.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from stat import S_ISREG

import numpy as np
import pandas as pd

from .files import atomic_write_text, file_digest

STUDY_TYPES = (
    "XR_ELBOW",
    "XR_FINGER",
    "XR_FOREARM",
    "XR_HAND",
    "XR_HUMERUS",
    "XR_SHOULDER",
    "XR_WRIST",
)
SPLITS = ("train", "valid")
DATASET_DIRNAME = "MURA-v1.1"
DATA_ENV_VAR = "MURA_DATA"
MISSING_ENV_VAR = "MURA_MISSING"
HASH_CACHE_ENV_VAR = "MURA_HASH_CACHE"
MISSING_POLICIES = ("error", "drop", "exclude")  # "exclude" is the older name of "drop"
# Patients in both splits: an error ("error"), or accepted ("allow").
PATIENT_OVERLAP_ENV_VAR = "MURA_PATIENT_OVERLAP"
PATIENT_OVERLAP_POLICIES = ("error", "allow")
MURA_URL = "https://stanfordmlgroup.github.io/competitions/mura/"

_IMAGE_PATTERN = re.compile(
    r"^(?P<split>train|valid)/(?P<study_type>XR_[A-Z]+)/(?P<patient>patient\d+)/"
    r"(?P<study>study(?P<study_number>\d+)_(?P<suffix>positive|negative))/"
    r"image(?P<view>\d+)\.png$"
)
_STUDY_PATTERN = re.compile(
    r"^(?P<split>train|valid)/(?P<study_type>XR_[A-Z]+)/(?P<patient>patient\d+)/"
    r"(?P<study>study\d+_(?P<suffix>positive|negative))/?$"
)
_HEADER_WORDS = {"img_path", "path", "image", "study", "label", "image_path", "study_path"}

IMAGE_COLUMNS = [
    "path",
    "relpath",
    "split",
    "study_type",
    "patient",
    "study",
    "study_path",
    "view",
    "label",
]


class MuraFormatError(ValueError):
    """The folder is not a valid MURA-v1.1 copy; the message says what is wrong and where."""


@dataclass
class MuraDataset:
    """One MURA-v1.1 copy, read and validated.

    ``images`` has one row per usable image with the columns in :data:`IMAGE_COLUMNS`:
    the absolute ``path``, the ``relpath`` below the dataset root (``train/XR_.../image1.png``),
    the ``split`` (``train`` or ``valid``), ``study_type``, ``patient``, ``study`` (folder name),
    ``study_path`` (the study's unique key, ``train/XR_.../study1_positive``), ``view`` (the
    image number within its study) and ``label`` (1 = abnormal).  ``exclusions`` lists every
    file that was found but not used, with a ``reason``.
    """

    root: Path
    images: pd.DataFrame
    exclusions: pd.DataFrame = field(default_factory=lambda: _empty_exclusions())
    csv_quirks: list[str] = field(default_factory=list)

    @property
    def studies(self) -> pd.DataFrame:
        """One row per study: split, type, patient, label and number of views."""
        return (
            self.images.groupby("study_path", sort=True)
            .agg(
                split=("split", "first"),
                study_type=("study_type", "first"),
                patient=("patient", "first"),
                label=("label", "first"),
                views=("view", "size"),
            )
            .reset_index()
        )

    def exclusion_counts(self) -> pd.Series:
        """How many files were left out, by reason."""
        return self.exclusions["reason"].value_counts().rename("files")

    def manifest_hash(self) -> str:
        """A short hash of the file list, sizes, contents and labels: changes whenever the data changes."""
        return manifest_hash(self.root)


def _empty_exclusions() -> pd.DataFrame:
    return pd.DataFrame({"relpath": pd.Series(dtype=str), "reason": pd.Series(dtype=str)})


def resolve_data_root(path: str | os.PathLike | None = None) -> Path:
    """The MURA-v1.1 folder from ``path`` or, when it is None, from ``$MURA_DATA``.

    A path to the folder *above* ``MURA-v1.1`` is accepted too.
    """
    if path is None or str(path) == "":
        env = os.environ.get(DATA_ENV_VAR)
        if not env:
            raise MuraFormatError(
                f"No dataset given. Pass the path of a MURA-v1.1 folder or set ${DATA_ENV_VAR}. "
                f"Real MURA is available after registration at {MURA_URL}; "
                "`mura-thesis synthesize` writes a synthetic copy in the same layout."
            )
        path = env
    root = Path(path).expanduser().resolve()
    if not root.exists():
        raise MuraFormatError(f"Dataset folder {root} does not exist.")
    if not root.is_dir():
        raise MuraFormatError(f"Dataset path {root} is a file; expected the MURA-v1.1 folder.")
    if not (root / "train_image_paths.csv").exists() and (root / DATASET_DIRNAME).is_dir():
        root = root / DATASET_DIRNAME
    return root


def _check_layout(root: Path) -> None:
    expected = [f"{split}_{kind}.csv" for split in SPLITS for kind in ("image_paths", "labeled_studies")]
    missing = [name for name in expected if not (root / name).is_file()]
    if not missing:
        return
    if (root / "train.csv").is_file() and (root / "valid.csv").is_file():
        raise MuraFormatError(
            f"{root} looks like the withdrawn MURA v1.0 layout (train.csv / valid.csv with "
            "per-image labels). This project reads MURA-v1.1, which has per-study labels in "
            f"train_labeled_studies.csv and valid_labeled_studies.csv. Download v1.1 from {MURA_URL}."
        )
    raise MuraFormatError(
        f"{root} is not a MURA-v1.1 folder: missing {', '.join(missing)}. Expected the four CSV "
        "files train_image_paths.csv, train_labeled_studies.csv, valid_image_paths.csv, "
        "valid_labeled_studies.csv beside the train/ and valid/ folders. Real MURA is available "
        f"after registration at {MURA_URL}; `mura-thesis synthesize` writes a synthetic copy."
    )


def _read_csv_lines(csv_path: Path, quirks: list[str]) -> list[list[str]]:
    raw = csv_path.read_bytes()
    if raw.startswith(b"\xef\xbb\xbf"):
        raw = raw[3:]
        quirks.append(f"{csv_path.name}: UTF-8 byte-order mark removed")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        line = raw[: error.start].count(b"\n") + 1
        raise MuraFormatError(
            f"{csv_path}:{line}: not valid UTF-8 (byte {raw[error.start]:#04x} at offset {error.start}). MURA's "
            "CSV files are plain ASCII: re-extract the file, or re-save it as UTF-8."
        ) from None
    if "\r\n" in text:
        quirks.append(f"{csv_path.name}: CRLF line ends")
    rows = [line.strip().split(",") for line in text.splitlines() if line.strip()]
    if rows and rows[0][0].strip().lower() in _HEADER_WORDS:
        quirks.append(f"{csv_path.name}: header row {','.join(rows[0])!r} skipped")
        rows = rows[1:]
    return [[cell.strip() for cell in row] for row in rows]


def _strip_dataset_prefix(csv_path: Path, line_number: int, value: str) -> str:
    # Paths in the CSVs start with the dataset's folder name (``MURA-v1.1/``): drop it, whatever
    # the folder was renamed to, so that the rest is relative to the dataset root.
    parts = value.replace("\\", "/").split("/", 1)
    if len(parts) != 2 or not parts[1]:
        raise MuraFormatError(
            f"{csv_path}:{line_number}: {value!r} is not a MURA path like "
            "'MURA-v1.1/train/XR_WRIST/patient00001/study1_positive/image1.png'."
        )
    return parts[1]


def _parse_studies(root: Path, split: str, quirks: list[str]) -> pd.DataFrame:
    csv_path = root / f"{split}_labeled_studies.csv"
    records = []
    for number, row in enumerate(_read_csv_lines(csv_path, quirks), start=1):
        if len(row) != 2:
            raise MuraFormatError(f"{csv_path}:{number}: expected '<study path>,<0|1>', got {','.join(row)!r}.")
        relative = _strip_dataset_prefix(csv_path, number, row[0]).rstrip("/")
        match = _STUDY_PATTERN.match(relative + "/")
        if match is None or match["split"] != split:
            raise MuraFormatError(f"{csv_path}:{number}: {row[0]!r} is not a {split} study path.")
        if row[1] not in ("0", "1"):
            raise MuraFormatError(f"{csv_path}:{number}: label {row[1]!r} is not 0 or 1.")
        label = int(row[1])
        if label != int(match["suffix"] == "positive"):
            raise MuraFormatError(
                f"{csv_path}:{number}: label {label} contradicts the folder name of {row[0]!r} "
                "('positive' means abnormal, label 1). The copy is corrupted; re-extract it."
            )
        records.append((relative, label))
    frame = pd.DataFrame(records, columns=["study_path", "label"])
    duplicated = frame["study_path"].duplicated()
    if duplicated.any():
        raise MuraFormatError(f"{csv_path}: study listed twice: {frame.loc[duplicated, 'study_path'].iloc[0]}")
    return frame


def _parse_images(root: Path, split: str, quirks: list[str]) -> pd.DataFrame:
    csv_path = root / f"{split}_image_paths.csv"
    records = []
    first_line: dict[str, int] = {}
    for number, row in enumerate(_read_csv_lines(csv_path, quirks), start=1):
        relative = _strip_dataset_prefix(csv_path, number, row[0])
        if relative in first_line:
            raise MuraFormatError(
                f"{csv_path}:{number}: image {row[0]!r} is listed twice (first on line {first_line[relative]}); "
                "each image must be listed once. Delete the repeated line."
            )
        first_line[relative] = number
        match = _IMAGE_PATTERN.match(relative)
        if match is None and relative.lower().endswith(".png") and _IMAGE_PATTERN.match(relative[:-4] + ".png"):
            raise MuraFormatError(
                f"{csv_path}:{number}: {row[0]!r} ends in {relative[-4:]!r}; MURA's image files end in '.png', "
                "lower-case, and the reader matches names exactly (a copy made on a case-insensitive file system?). "
                "Rename the file and its line in the CSV to '.png'."
            )
        if match is None or match["split"] != split:
            raise MuraFormatError(
                f"{csv_path}:{number}: {row[0]!r} is not a {split} image path like "
                f"'MURA-v1.1/{split}/XR_WRIST/patient00001/study1_positive/image1.png'."
            )
        if match["study_type"] not in STUDY_TYPES:
            raise MuraFormatError(f"{csv_path}:{number}: unknown study type {match['study_type']!r}.")
        records.append(
            {
                "relpath": relative,
                "split": split,
                "study_type": match["study_type"],
                "patient": match["patient"],
                "study": match["study"],
                "study_path": relative.rsplit("/", 1)[0],
                "view": int(match["view"]),
            }
        )
    return pd.DataFrame(records, columns=["relpath", "split", "study_type", "patient", "study", "study_path", "view"])


def _walk_files(root: Path, split: str) -> tuple[set[str], list[str]]:
    """Every PNG below ``root/split`` (as relative paths) and every ``._`` sidecar file."""
    pngs: set[str] = set()
    sidecars: list[str] = []
    base = root / split
    if not base.is_dir():
        raise MuraFormatError(f"{root} is not a MURA-v1.1 folder: the folder {split}/ is missing.")
    dangling: list[str] = []
    for directory, _, files in os.walk(base):
        rel_dir = Path(directory).relative_to(root).as_posix()
        for name in files:
            if name.startswith("._"):
                sidecars.append(f"{rel_dir}/{name}")
            elif name.lower().endswith(".png"):
                full = os.path.join(directory, name)
                if os.path.islink(full) and not os.path.exists(full):
                    dangling.append(f"{full} -> {os.readlink(full)}")
                pngs.add(f"{rel_dir}/{name}")
    if dangling:
        raise MuraFormatError(
            _list_problem(
                f"{root}: symbolic links whose target does not exist",
                dangling,
                "Restore the files they point to (a moved or unmounted copy?), or delete the links "
                "and their lines in the CSV files.",
            )
        )
    return pngs, sidecars


def _check_split(root: Path, split: str, images: pd.DataFrame, studies: pd.DataFrame) -> None:
    """A split must have images of both classes: AUROC and kappa are undefined otherwise."""
    image_csv = root / f"{split}_image_paths.csv"
    if images.empty:
        raise MuraFormatError(
            f"{image_csv}: the {split} split has no images (the file lists none, or none is on disk). "
            "The copy is incomplete: extract the archive again."
        )
    labels = set(studies.loc[studies["study_path"].isin(images["study_path"]), "label"])
    if len(labels) < 2:
        only = "abnormal" if labels == {1} else "normal"
        raise MuraFormatError(
            f"{root / f'{split}_labeled_studies.csv'}: every study of the {split} split is {only}; with one class "
            "AUROC and Cohen's kappa are undefined. Use a complete copy of MURA-v1.1 (or a larger synthetic "
            "scale) with normal and abnormal studies in both splits."
        )


def _check_patients(root: Path, images: pd.DataFrame, policy: str) -> None:
    """No patient may be in both splits: the valid split is the thesis' test set, and a patient's
    training images would leak into it.  MURA-v1.1 has no such patient; ``policy`` ``"allow"``
    accepts them (for a copy split differently on purpose)."""
    if policy == "allow":
        return
    both = sorted(
        set(images.loc[images["split"] == "train", "patient"]) & set(images.loc[images["split"] == "valid", "patient"])
    )
    if both:
        raise MuraFormatError(
            _list_problem(
                f"{root}: patients with studies in both the train and the valid split",
                both,
                "The valid split is the test set: a patient's images in both would let the test score "
                "what the network saw in training. MURA-v1.1 has no such patient; check how the copy was "
                f"made, or accept it with {PATIENT_OVERLAP_ENV_VAR}=allow.",
            )
        )


def _list_problem(title: str, items: list[str], hint: str) -> str:
    shown = "\n  ".join(items[:10])
    more = f"\n  ... and {len(items) - 10} more" if len(items) > 10 else ""
    return f"{title} ({len(items)}):\n  {shown}{more}\n{hint}"


def load_mura(
    path: str | os.PathLike | None = None, *, missing: str | None = None, patient_overlap: str | None = None
) -> MuraDataset:
    """Read and validate a MURA-v1.1 folder (real or synthetic).

    Parameters
    ----------
    path:
        The ``MURA-v1.1`` folder or the folder above it; ``None`` reads ``$MURA_DATA``.
    missing:
        What to do with images listed in a CSV but absent on disk: ``"error"`` raises a
        :class:`MuraFormatError` listing them; ``"drop"`` (or ``"exclude"``) leaves them out and
        records them.  ``None`` reads ``$MURA_MISSING`` (set by the build from the profile or
        ``--missing``), else ``"error"``.

    patient_overlap:
        A patient with studies in both splits is an error (``"error"``, MURA has none) unless
        ``"allow"``; ``None`` reads ``$MURA_PATIENT_OVERLAP``, else ``"error"``.

    Each split is checked too: no images, a single class, an image listed twice or a link to a
    file that does not exist are errors naming the file and the fix.
    """
    if patient_overlap is None:
        patient_overlap = os.environ.get(PATIENT_OVERLAP_ENV_VAR) or "error"
    if patient_overlap not in PATIENT_OVERLAP_POLICIES:
        raise ValueError(f"patient_overlap must be 'error' or 'allow', got {patient_overlap!r}")
    if missing is None:
        missing = os.environ.get(MISSING_ENV_VAR) or "error"
    if missing not in MISSING_POLICIES:
        raise ValueError(f"missing must be 'error' or 'drop', got {missing!r}")
    root = resolve_data_root(path)
    _check_layout(root)
    quirks: list[str] = []
    frames = []
    exclusions: list[tuple[str, str]] = []
    for split in SPLITS:
        studies = _parse_studies(root, split, quirks)
        images = _parse_images(root, split, quirks)
        on_disk, sidecars = _walk_files(root, split)
        exclusions += [(name, "macOS '._' sidecar file (not an image)") for name in sorted(sidecars)]

        listed = set(images["relpath"])
        absent = sorted(listed - on_disk)
        if absent:
            if missing == "error":
                raise MuraFormatError(
                    _list_problem(
                        f"{root}: images listed in {split}_image_paths.csv but missing on disk",
                        absent,
                        "The copy is incomplete: extract the archive again, or leave these images out "
                        "with `--missing drop` (or `missing: drop` in the profile's data section).",
                    )
                )
            exclusions += [(name, "listed in the CSV but missing on disk") for name in absent]
            images = images.loc[~images["relpath"].isin(absent)]
        exclusions += [(name, "on disk but not listed in the CSV") for name in sorted(on_disk - listed)]
        _check_split(root, split, images, studies)

        unlabeled = sorted(set(images["study_path"]) - set(studies["study_path"]))
        if unlabeled:
            raise MuraFormatError(
                _list_problem(
                    f"{root}: studies with images but no label in {split}_labeled_studies.csv",
                    unlabeled,
                    "Every study needs one line '<study path>/,<0|1>' in the labelled-studies CSV.",
                )
            )
        empty = sorted(set(studies["study_path"]) - set(images["study_path"]))
        if empty:
            raise MuraFormatError(
                _list_problem(
                    f"{root}: studies in {split}_labeled_studies.csv without any image",
                    empty,
                    "An empty study cannot be classified; check that its images were extracted.",
                )
            )
        frames.append(images.merge(studies, on="study_path", how="left", validate="many_to_one"))

    table = pd.concat(frames, ignore_index=True)
    _check_patients(root, table, patient_overlap)
    table.insert(0, "path", [str(root / rel) for rel in table["relpath"]])
    table["label"] = table["label"].astype(np.int64)
    table = table[IMAGE_COLUMNS].sort_values(["split", "study_path", "view"], kind="stable").reset_index(drop=True)
    excluded = pd.DataFrame(exclusions, columns=["relpath", "reason"]) if exclusions else _empty_exclusions()
    return MuraDataset(root=root, images=table, exclusions=excluded, csv_quirks=sorted(set(quirks)))


def content_hash_dir() -> Path:
    """Where the content hashes of data files are remembered between processes:
    ``$MURA_HASH_CACHE``, else ``$XDG_CACHE_HOME/mura-thesis/content-hashes`` (``~/.cache/...``)."""
    if os.environ.get(HASH_CACHE_ENV_VAR):
        return Path(os.environ[HASH_CACHE_ENV_VAR])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "mura-thesis" / "content-hashes"


# The content hashes known to this process, per table file: {relpath: [size, mtime_ns, ctime_ns, digest]}.
_CONTENT_TABLES: dict[Path, dict[str, list]] = {}


def _content_table(root: Path) -> tuple[Path, dict[str, list]]:
    path = content_hash_dir() / f"{hashlib.sha256(str(root).encode()).hexdigest()[:16]}.json"
    if path not in _CONTENT_TABLES:
        try:
            stored = json.loads(path.read_text())
            table = stored["files"] if stored.get("root") == str(root) else {}
        except (OSError, ValueError, KeyError, TypeError):
            table = {}  # none yet, or unreadable: hash again
        _CONTENT_TABLES[path] = table
    return path, _CONTENT_TABLES[path]


def manifest_hash(root: str | os.PathLike) -> str:
    """Hash of the CSV files and of every file's path, size and content below ``train/`` and ``valid/``.

    Changes when a file is added, removed, relabelled or replaced, even by one of the same size.
    Each file's content hash is remembered with the file's size, modification and change time
    (``ctime``, which no tool can set back), in :func:`content_hash_dir`, so only new or changed
    files are read: the first call on a MURA-sized copy (40,000 images, 3.3 GB) reads every
    byte once, later calls only list the files.
    """
    root = resolve_data_root(root).resolve()
    digest = hashlib.sha256()
    for name in sorted(p.name for p in root.glob("*.csv")):
        digest.update(name.encode())
        digest.update((root / name).read_bytes())
    table_path, table = _content_table(root)
    seen, changed = set(), False
    for split in SPLITS:
        base = root / split
        if not base.is_dir():
            continue
        entries = []
        for directory, _, files in os.walk(base):
            for name in files:
                full = os.path.join(directory, name)
                relpath = os.path.relpath(full, root)
                seen.add(relpath)
                try:
                    stat = os.stat(full)
                except OSError:  # a dangling link: load_mura says what is wrong with it
                    entries.append(f"{relpath}:-1:")
                    continue
                if not S_ISREG(stat.st_mode):  # a pipe or a device: reading it could block
                    entries.append(f"{relpath}:{stat.st_size}:not a regular file")
                    continue
                identity = [stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns]
                known = table.get(relpath)
                if known is not None and known[:3] == identity:
                    content = known[3]
                else:
                    try:
                        content = file_digest(full)
                    except OSError:  # unreadable: the image cache says why; tried again next time
                        entries.append(f"{relpath}:{stat.st_size}:unreadable")
                        continue
                    table[relpath] = identity + [content]
                    changed = True
                entries.append(f"{relpath}:{stat.st_size}:{content}")
        digest.update("\n".join(sorted(entries)).encode())
    for gone in set(table) - seen:
        del table[gone]
        changed = True
    if changed:
        try:
            atomic_write_text(table_path, json.dumps({"root": str(root), "files": table}))
        except OSError:
            pass  # a read-only cache folder: the hashes are computed again by the next process
    return digest.hexdigest()[:16]


def split_by_patient(images: pd.DataFrame, *, validation_fraction: float = 0.1, seed: int = 0) -> pd.Series:
    """Assign each image to ``train``, ``validation`` (carved from MURA's train split) or ``test``.

    MURA's public ``valid`` split is kept as the held-out test set, since the official test set
    was never released.  The validation set is drawn from ``train`` by patient, so that no
    patient (who may have studies of several types) is in both; it is stratified by study type
    and label with scikit-learn's ``StratifiedGroupKFold`` and reproducible from ``seed``.
    """
    from sklearn.model_selection import StratifiedGroupKFold

    if not 0.0 < validation_fraction < 0.5:
        raise ValueError(f"validation_fraction must be in (0, 0.5), got {validation_fraction}")
    subset = pd.Series(np.where(images["split"] == "valid", "test", "train"), index=images.index, name="subset")
    train = images.loc[images["split"] == "train"]
    if train.empty:
        raise ValueError("The dataset has no training images to split.")
    studies = train.drop_duplicates("study_path")
    n_splits = max(2, round(1.0 / validation_fraction))
    if studies["patient"].nunique() < n_splits:
        raise ValueError(
            f"Too few training patients ({studies['patient'].nunique()}) for a validation fraction "
            f"of {validation_fraction}; use a larger dataset."
        )
    # Stratify by study type and label where every stratum has enough studies for the folds;
    # on very small datasets fall back to the label alone.
    strata = studies["study_type"] + "_" + studies["label"].astype(str)
    if strata.value_counts().min() < n_splits:
        strata = studies["label"].astype(str)
    if strata.value_counts().min() < n_splits:
        raise ValueError(
            f"Too few normal or abnormal training studies ({strata.value_counts().min()}) for a "
            f"validation fraction of {validation_fraction}; use a larger dataset or fraction."
        )
    folds = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    _, validation_index = next(folds.split(studies, strata, groups=studies["patient"]))
    validation_patients = set(studies["patient"].iloc[validation_index])
    is_validation = (images["split"] == "train") & images["patient"].isin(validation_patients)
    subset[is_validation] = "validation"
    return subset
