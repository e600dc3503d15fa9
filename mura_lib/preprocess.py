"""The preprocessing cache: every image decoded, made grayscale and resized once, on disk.

For each dataset, image size and resize policy the cache holds one memory-mapped ``uint8``
array of shape (images, size, size) and an index table.  It is built in parallel over all
cores, reused by every experiment and rebuilt only when the dataset's files or the
preprocessing parameters change.  Images that cannot be decoded (zero-byte, truncated, too
large, unreadable) are left out with their reason, so that training never crashes mid-epoch on
a bad file; :func:`exclusions` lists them, and more than ``max_excluded_fraction`` of them stop
the build.  Each entry remembers the identity (size, modification time) of the file it was made
from: an entry whose file changed, or whose file failed, is processed again on the next use, so
a temporary failure (a permission fixed since) is never remembered.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from filelock import FileLock, Timeout
from numpy.lib.format import open_memmap
from PIL import Image, ImageOps
from tqdm.auto import tqdm

from .config import POLICIES
from .dataset import MuraDataset
from .parallel import partial_name, process_pool, remove_stale_partials

# 3: images under MIN_IMAGE_SIDE left out, EXIF orientations applied, notes on used images.
CACHE_FORMAT_VERSION = 3
DEFAULT_CACHE_DIR = Path("data") / "cache"
# The largest image decoded: MURA's radiographs are at most a few megapixels, so anything
# above this is a damaged or malicious file (a "decompression bomb"), not a radiograph.
MAX_IMAGE_PIXELS = 50_000_000
# The smallest side decoded: a file of 1 x 1 or 2 x 500 pixels is a placeholder or a damaged
# file, not a radiograph (MURA's are hundreds of pixels a side; the synthetic ones at least 8 at
# the smallest size the schema allows).
MIN_IMAGE_SIDE = 8
# The EXIF tag that says how a viewer should turn the image (1: as stored).
ORIENTATION_TAG = 0x0112
DEFAULT_MAX_EXCLUDED_FRACTION = 0.01
MAX_EXCLUDED_ENV_VAR = "MURA_MAX_EXCLUDED_FRACTION"
INDEX_COLUMNS = ["relpath", "ok", "reason", "error", "size", "mtime_ns"]


class TooManyExcludedError(ValueError):
    """More images could not be decoded than the profile allows; the message lists them."""


class ImageTooSmallError(ValueError):
    """An image with a side shorter than :data:`MIN_IMAGE_SIDE`: not a radiograph."""


def exclusion_reason(path: str | os.PathLike, error: BaseException) -> str:
    """A short, stable reason for an image that could not be used (for tables and counts)."""
    if isinstance(error, (Image.DecompressionBombError, Image.DecompressionBombWarning)):
        return "too large (decompression-bomb guard)"
    if isinstance(error, ImageTooSmallError):
        return f"too small (a side under {MIN_IMAGE_SIDE} pixels)"
    if isinstance(error, PermissionError):
        return "unreadable (permission denied)"
    if isinstance(error, FileNotFoundError):
        return "missing (deleted or a dangling link)"
    if isinstance(error, IsADirectoryError):
        return "unreadable (a folder, not a file)"
    try:
        if os.path.getsize(path) == 0:
            return "zero-byte file"
    except OSError:
        pass
    if isinstance(error, Image.UnidentifiedImageError):
        return "not an image PIL can read"
    if "truncated" in str(error).lower() or isinstance(error, (SyntaxError, ValueError, EOFError)):
        return "truncated or corrupt"
    return "unreadable"


def load_grayscale(path: str | os.PathLike) -> np.ndarray:
    """Decode one image to a 2-D ``uint8`` array; RGB files (three equal channels) become gray.

    Raises ``OSError`` or ``ValueError`` for files that cannot be decoded (PIL's errors), and
    :class:`ImageTooSmallError` for one with a side under :data:`MIN_IMAGE_SIDE` pixels.
    """
    return read_image(path)[0]


def read_image(path: str | os.PathLike) -> tuple[np.ndarray, str]:
    """:func:`load_grayscale` with a note on what was unusual about the file (``""`` if nothing):
    its contents in another format than its name says (``JPEG data in a .png file``), and an
    EXIF orientation, which is applied (a camera's "rotate on display" tag: the pixels are turned
    as a viewer would show them)."""
    notes = []
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        limit, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, MAX_IMAGE_PIXELS
        try:
            image = Image.open(path)
        finally:
            Image.MAX_IMAGE_PIXELS = limit
        with image:
            width, height = image.size
            if width * height > MAX_IMAGE_PIXELS:
                raise Image.DecompressionBombError(
                    f"{width} x {height} pixels is more than the limit of {MAX_IMAGE_PIXELS:,d}"
                )
            if min(width, height) < MIN_IMAGE_SIDE:
                raise ImageTooSmallError(f"{width} x {height} pixels: a side is under {MIN_IMAGE_SIDE}")
            suffix = Path(path).suffix.lower().lstrip(".")
            named = {"jpg": "JPEG", "jpeg": "JPEG", "png": "PNG", "tif": "TIFF", "tiff": "TIFF"}.get(suffix)
            if image.format and named and image.format != named:
                notes.append(f"{image.format} data in a .{suffix} file")
            image.load()
            orientation = image.getexif().get(ORIENTATION_TAG, 1)
            if orientation not in (None, 1):
                image = ImageOps.exif_transpose(image)
                notes.append(f"EXIF orientation {orientation} applied")
            return _grayscale(image), "; ".join(notes)


def _grayscale(image: Image.Image) -> np.ndarray:
    if image.mode in ("RGB", "RGBA"):
        rgb = np.asarray(image.convert("RGB"))
        if np.array_equal(rgb[..., 0], rgb[..., 1]) and np.array_equal(rgb[..., 1], rgb[..., 2]):
            return np.ascontiguousarray(rgb[..., 0])
        return np.asarray(image.convert("L"))
    if image.mode == "I;16" or image.mode == "I":
        array = np.asarray(image, dtype=np.float64)
        span = max(array.max() - array.min(), 1.0)
        return ((array - array.min()) / span * 255).astype(np.uint8)
    return np.asarray(image.convert("L"))


def resize_image(pixels: np.ndarray, size: int, policy: str = "pad") -> np.ndarray:
    """Resize a 2-D ``uint8`` image to ``size`` x ``size``.

    ``pad`` keeps the aspect ratio and pads the short side with black (centred), ``stretch``
    ignores the aspect ratio, ``crop`` keeps it and crops the long side (centred).
    """
    if policy not in POLICIES:
        raise ValueError(f"policy must be one of {POLICIES}, got {policy!r}")
    height, width = pixels.shape
    image = Image.fromarray(pixels)
    if policy == "stretch":
        return np.asarray(image.resize((size, size), Image.Resampling.BILINEAR, reducing_gap=2.0))
    scale = size / max(height, width) if policy == "pad" else size / min(height, width)
    new_h, new_w = max(1, round(height * scale)), max(1, round(width * scale))
    resized = np.asarray(image.resize((new_w, new_h), Image.Resampling.BILINEAR, reducing_gap=2.0))
    out = np.zeros((size, size), dtype=np.uint8)
    if policy == "pad":
        top, left = (size - new_h) // 2, (size - new_w) // 2
        out[top : top + new_h, left : left + new_w] = resized
    else:
        top, left = (new_h - size) // 2, (new_w - size) // 2
        out[:] = resized[top : top + size, left : left + size]
    return out


@dataclass
class ImageCache:
    """A built cache: ``images`` is a read-only memory map aligned with ``index``."""

    directory: Path
    images: np.ndarray
    index: pd.DataFrame
    image_size: int
    policy: str

    @property
    def notes(self) -> pd.DataFrame:
        """Images used, but with something to say about them (``relpath``, ``note``): another
        format than their name says, an EXIF orientation applied."""
        noted = self.index.loc[self.index["ok"] & self.index["reason"].astype(str).ne("")]
        return noted[["relpath", "reason"]].rename(columns={"reason": "note"}).reset_index(drop=True)

    @property
    def failures(self) -> pd.DataFrame:
        """Images that could not be decoded: ``relpath``, ``reason`` and PIL's ``error``."""
        return self.index.loc[~self.index["ok"], ["relpath", "reason", "error"]].reset_index(drop=True)

    def rows_for(self, relpaths) -> np.ndarray:
        """Positions in the cache of the given relative paths (all must be present)."""
        position = pd.Series(np.arange(len(self.index)), index=self.index["relpath"])
        missing = pd.Index(relpaths).difference(position.index)
        if len(missing):
            raise KeyError(f"{len(missing)} images are not in the cache, e.g. {missing[0]}")
        return position.loc[list(relpaths)].to_numpy()


def cache_key(dataset: MuraDataset, image_size: int, policy: str) -> str:
    payload = json.dumps(
        {"data": dataset.manifest_hash(), "size": image_size, "policy": policy, "version": CACHE_FORMAT_VERSION},
        sort_keys=True,
    )
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def _identity(path: str) -> tuple[int, int]:
    """``(size, modification time in ns)`` of a file, ``(-1, -1)`` if it cannot be stat'ed."""
    try:
        stat = os.stat(path)
    except OSError:
        return -1, -1
    return stat.st_size, stat.st_mtime_ns


def _process_chunk(task: tuple) -> list[tuple]:
    """Decode and resize some images straight into the shared memory map.

    Returns one ``(row, ok, reason, error, size, mtime_ns)`` per image.
    """
    array_path, rows, paths, size, policy = task
    target = np.load(array_path, mmap_mode="r+")
    results = []
    for row, path in zip(rows, paths):
        file_size, mtime = _identity(path)
        try:
            pixels, note = read_image(path)
            target[row] = resize_image(pixels, size, policy)
            # A used image's reason is empty, or a note on it (its format, its orientation).
            results.append((row, True, note, "", file_size, mtime))
        except (
            OSError,
            ValueError,
            SyntaxError,
            EOFError,
            Image.DecompressionBombError,
            Image.DecompressionBombWarning,
        ) as error:
            target[row] = 0
            results.append(
                (row, False, exclusion_reason(path, error), f"{type(error).__name__}: {error}", file_size, mtime)
            )
    # No flush here: the map is shared, so the pages are already in the file as the other
    # processes see it; the build syncs the file to disk once, at the end.
    del target
    return results


def _run_tasks(tasks: list[tuple], workers: int, bar) -> list[tuple]:
    results: list[tuple] = []
    if workers == 1 or len(tasks) == 1:
        for task in tasks:
            results += _process_chunk(task)
            bar.update(len(task[2]))
    else:
        with process_pool(workers) as pool:
            for task, result in zip(tasks, pool.map(_process_chunk, tasks)):
                results += result
                bar.update(len(task[2]))
    return results


def _chunks(array_path, rows, paths, size, policy, chunk_size) -> list[tuple]:
    return [
        (str(array_path), rows[start : start + chunk_size], paths[start : start + chunk_size], size, policy)
        for start in range(0, len(paths), chunk_size)
    ]


def build_cache(
    dataset: MuraDataset,
    image_size: int,
    *,
    policy: str = "pad",
    cache_dir: str | os.PathLike = DEFAULT_CACHE_DIR,
    workers: int | None = None,
    chunk_size: int = 64,
    progress: bool = True,
) -> ImageCache:
    """Build (or reuse) the cache of ``dataset`` at ``image_size`` x ``image_size`` pixels.

    Runs over ``workers`` processes (all cores by default); memory stays bounded because each
    worker holds one image at a time and writes into the memory-mapped array on disk.  The
    cache is built in a temporary folder and renamed into place, so an interrupted build is
    simply built again.
    """
    if policy not in POLICIES:
        raise ValueError(f"policy must be one of {POLICIES}, got {policy!r}")
    if not 8 <= image_size <= 1024:
        raise ValueError(f"image_size must be in [8, 1024], got {image_size}")
    cache_dir = Path(cache_dir)
    key = cache_key(dataset, image_size, policy)
    final = cache_dir / f"{image_size}px-{policy}-{key}"
    workers = workers or os.cpu_count() or 1
    cache_dir.mkdir(parents=True, exist_ok=True)
    # What a killed build left behind (a full-size array) goes, unless its process still runs.
    remove_stale_partials(cache_dir)
    lock = FileLock(cache_dir / f".{final.name}.lock", mode=0o664)
    try:
        lock.acquire(timeout=0)
    except Timeout:
        print(f"waiting for the image cache {final}, built by another process ...", flush=True)
        lock.acquire()
    try:
        if not (final / "index.csv").exists():
            _build(dataset, image_size, policy, final, workers, chunk_size, progress)
        else:
            _refresh(dataset, final, workers, chunk_size)
    finally:
        lock.release()
    return open_cache(final)


def _refresh(dataset: MuraDataset, directory: Path, workers: int, chunk_size: int) -> None:
    """Process again the entries that failed or whose file changed (size or modification time)."""
    index = _read_index(directory)
    paths = dict(zip(dataset.images["relpath"], dataset.images["path"]))
    current = [_identity(paths.get(rel, "")) for rel in index["relpath"]]
    changed = (
        ~index["ok"].to_numpy()
        | (index["size"].to_numpy() != np.array([c[0] for c in current]))
        | (index["mtime_ns"].to_numpy() != np.array([c[1] for c in current]))
    )
    rows = np.flatnonzero(changed & index["relpath"].isin(paths).to_numpy()).tolist()
    if not rows:
        return
    meta = json.loads((directory / "meta.json").read_text())
    tasks = _chunks(
        directory / "images.npy",
        rows,
        [paths[index.at[r, "relpath"]] for r in rows],
        meta["image_size"],
        meta["policy"],
        chunk_size,
    )
    with tqdm(total=len(rows), disable=True) as bar:
        results = _run_tasks(tasks, min(workers, len(tasks)), bar)
    _apply(index, results)
    _write_index(index, directory)
    meta["failed"] = int((~index["ok"]).sum())
    _write_text(directory / "meta.json", json.dumps(meta, indent=1))


def _apply(index: pd.DataFrame, results: list[tuple]) -> None:
    if not results:
        return
    update = pd.DataFrame(results, columns=["row", "ok", "reason", "error", "size", "mtime_ns"]).set_index("row")
    for column in update.columns:
        values = index[column].to_numpy(copy=True)
        values[update.index.to_numpy()] = update[column].to_numpy()
        index[column] = values


def _read_index(directory: Path) -> pd.DataFrame:
    index = pd.read_csv(directory / "index.csv", keep_default_na=False)
    index["ok"] = index["ok"].astype(str).str.lower().eq("true")
    return index


def _write_index(index: pd.DataFrame, directory: Path) -> None:
    _write_text(directory / "index.csv", index[INDEX_COLUMNS].to_csv(index=False))


def _write_text(path: Path, text: str) -> None:
    from .files import atomic_write_text

    atomic_write_text(path, text)


def exclusions(
    dataset: MuraDataset,
    image_size: int,
    policy: str = "pad",
    cache_dir: str | os.PathLike = DEFAULT_CACHE_DIR,
    *,
    progress: bool = False,
) -> pd.DataFrame:
    """Every image of ``dataset`` left out of the cache, with its ``reason`` and PIL's ``error``.

    Builds the cache if needed (the same one the experiments use).
    """
    cache = build_cache(dataset, image_size, policy=policy, cache_dir=cache_dir, progress=progress)
    return cache.failures


def check_exclusions(excluded: pd.DataFrame, total: int, max_fraction: float | None = None) -> None:
    """Raise :class:`TooManyExcludedError` if more than ``max_fraction`` of ``total`` images
    were left out.  ``None`` reads ``$MURA_MAX_EXCLUDED_FRACTION`` (set by the build from the
    profile or ``--max-excluded-fraction``), else 1%."""
    if max_fraction is None:
        max_fraction = float(os.environ.get(MAX_EXCLUDED_ENV_VAR) or DEFAULT_MAX_EXCLUDED_FRACTION)
    if total == 0 or len(excluded) <= max_fraction * total:
        return
    shown = "\n".join(f"  {row.relpath}: {row.reason}" for row in excluded.head(10).itertuples())
    more = f"\n  ... and {len(excluded) - 10} more" if len(excluded) > 10 else ""
    raise TooManyExcludedError(
        f"{len(excluded)} of {total} images ({len(excluded) / total:.1%}) could not be decoded, more than the "
        f"allowed {max_fraction:.1%}:\n{shown}{more}\nRepair or re-extract these files, or raise the limit with "
        "`--max-excluded-fraction` or `max_excluded_fraction` in the profile's data section."
    )


def summarise_exclusions(excluded: pd.DataFrame) -> str:
    """``"3 (2 truncated or corrupt, 1 zero-byte file)"``, or ``"none"``."""
    if excluded.empty:
        return "none"
    counts = excluded["reason"].value_counts()
    return f"{len(excluded)} (" + ", ".join(f"{n} {reason}" for reason, n in counts.items()) + ")"


def open_cache(directory: str | os.PathLike) -> ImageCache:
    directory = Path(directory)
    meta = json.loads((directory / "meta.json").read_text())
    index = _read_index(directory)
    images = np.load(directory / "images.npy", mmap_mode="r")
    return ImageCache(
        directory=directory, images=images, index=index, image_size=meta["image_size"], policy=meta["policy"]
    )


def _build(dataset, image_size, policy, final: Path, workers: int, chunk_size: int, progress: bool) -> None:
    images = dataset.images
    staging = final.parent / partial_name(final.name)
    staging.mkdir(parents=True)
    array_path = staging / "images.npy"
    try:
        open_memmap(array_path, mode="w+", dtype=np.uint8, shape=(len(images), image_size, image_size)).flush()
        _reserve(array_path)
        paths = images["path"].tolist()
        tasks = _chunks(array_path, list(range(len(paths))), paths, image_size, policy, chunk_size)
        started = time.perf_counter()
        with tqdm(total=len(paths), desc=f"Caching images at {image_size}px", unit="img", disable=not progress) as bar:
            results = _run_tasks(tasks, workers, bar)
        with open(array_path, "rb+") as handle:  # to disk once, before the cache is published
            os.fsync(handle.fileno())
        index = pd.DataFrame(
            {
                "relpath": images["relpath"].to_numpy(),
                "ok": False,
                "reason": "",
                "error": "",
                "size": -1,
                "mtime_ns": -1,
            }
        )
        _apply(index, results)
        _write_index(index, staging)
        meta = {
            "image_size": image_size,
            "policy": policy,
            "images": len(images),
            "failed": int((~index["ok"]).sum()),
            "seconds": round(time.perf_counter() - started, 2),
            "workers": workers,
            "dataset_root": str(dataset.root),
            "manifest": dataset.manifest_hash(),
            "version": CACHE_FORMAT_VERSION,
        }
        _write_text(staging / "meta.json", json.dumps(meta, indent=1))
        if final.exists():
            shutil.rmtree(final)
        os.replace(staging, final)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def _reserve(path: Path) -> None:
    """Allocate the array's disk space now: a full disk is then a clear error naming the path,
    not a crash of a worker writing into a memory map."""
    if not hasattr(os, "posix_fallocate"):
        return
    with open(path, "rb+") as handle:
        try:
            os.posix_fallocate(handle.fileno(), 0, os.fstat(handle.fileno()).st_size)
        except OSError as error:
            if error.errno in (errno.EOPNOTSUPP, errno.EINVAL):
                return  # the file system cannot reserve space; go on without
            raise OSError(error.errno, f"{os.strerror(error.errno)} (reserving the image cache)", str(path)) from None
