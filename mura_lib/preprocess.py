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

The cache checks its own bytes.  ``meta.json`` records the size of ``images.npy`` and the checksum
of ``index.csv``, and ``index.csv`` the checksum (BLAKE2b) of every image's row, computed by the
worker that wrote it; no byte is read twice to checksum it.  Every use checks what is cheap (the
three files exist and parse, the array's shape and file size, the index's checksum); the rows
are hashed again only when ``images.npy`` has changed since they were last checked (its size,
modification or change time differ from those in ``verified.json``), which a MURA-sized cache
(2 GB at 224 px) costs about 3 s (2.4 s from a cold disk, 2.9 s from the page cache, on a
2-core Xeon).  A cache that fails the cheap checks is built again; rows whose bytes changed are
processed again.  Caches of an earlier format have another key, so they are never opened
(delete their folders to reclaim the space).
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
import threading
import time
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
from .files import bytes_digest, file_digest
from .parallel import partial_name, process_pool, remove_stale_partials

# 3: checksums of the index and of every row; 4: images with a side under MIN_IMAGE_SIDE left
# out, EXIF orientations applied, notes on used images.
CACHE_FORMAT_VERSION = 4
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
_OPEN_LOCK = threading.Lock()
MAX_EXCLUDED_ENV_VAR = "MURA_MAX_EXCLUDED_FRACTION"
INDEX_COLUMNS = ["relpath", "ok", "reason", "error", "size", "mtime_ns", "digest"]


class TooManyExcludedError(ValueError):
    """More images could not be decoded than the profile allows; the message lists them."""


class DamagedCacheError(OSError):
    """An image cache whose files are missing, cut short or changed; :func:`build_cache` builds it again."""


# What PIL raises for a file it cannot decode (the decompression-bomb guard included).
DECODE_ERRORS = (
    OSError,
    ValueError,
    SyntaxError,
    EOFError,
    Image.DecompressionBombError,
    Image.DecompressionBombWarning,
)


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


def open_image(path: str | os.PathLike) -> Image.Image:
    """The project's one way to open an image file: PIL's ``Image.open`` (which reads only the
    header) with the project's decompression-bomb limit, :data:`MAX_IMAGE_PIXELS`.

    Raises :class:`PIL.Image.DecompressionBombError` quoting that limit for a larger image, else
    PIL's own errors (``OSError``, ``ValueError``, ...) for a file it cannot read; use it as a
    context manager.
    """
    # PIL's own guard quotes its limit or twice it, depending on the size: it is switched off
    # while the header is read (under a lock, so no other thread opens an image unguarded) and
    # the limit checked here instead.
    with _OPEN_LOCK:
        limit, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, None
        try:
            image = Image.open(path)
        finally:
            Image.MAX_IMAGE_PIXELS = limit
    width, height = image.size
    if width * height > MAX_IMAGE_PIXELS:
        image.close()
        raise Image.DecompressionBombError(
            f"{width} x {height} = {width * height:,d} pixels is more than the limit of {MAX_IMAGE_PIXELS:,d}"
        )
    return image


def read_header(path: str | os.PathLike) -> tuple[int, int, str]:
    """``(width, height, PIL mode)`` of an image, from its header, through :func:`open_image`."""
    with open_image(path) as image:
        return image.size[0], image.size[1], image.mode


def load_grayscale(path: str | os.PathLike) -> np.ndarray:
    """Decode one image to a 2-D ``uint8`` array; RGB files (three equal channels) become gray.

    Raises ``OSError`` or ``ValueError`` for files that cannot be decoded (PIL's errors),
    :class:`PIL.Image.DecompressionBombError` for one above :data:`MAX_IMAGE_PIXELS` and
    :class:`ImageTooSmallError` for one with a side under :data:`MIN_IMAGE_SIDE` pixels.
    """
    return read_image(path)[0]


def read_image(path: str | os.PathLike) -> tuple[np.ndarray, str]:
    """:func:`load_grayscale` with a note on what was unusual about the file (``""`` if nothing):
    its contents in another format than its name says (``JPEG data in a .png file``), and an
    EXIF orientation, which is applied (a camera's "rotate on display" tag: the pixels are turned
    as a viewer would show them)."""
    notes = []
    with open_image(path) as image:
        width, height = image.size
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

    Returns one ``(row, ok, reason, error, size, mtime_ns, digest)`` per image, ``digest`` the
    checksum of the row as written.
    """
    array_path, rows, paths, size, policy = task
    target = np.load(array_path, mmap_mode="r+")
    results = []
    blank = bytes_digest(np.zeros((size, size), dtype=np.uint8))
    for row, path in zip(rows, paths):
        file_size, mtime = _identity(path)
        try:
            pixels, note = read_image(path)
            pixels = np.ascontiguousarray(resize_image(pixels, size, policy), dtype=np.uint8)
            target[row] = pixels
            # A used image's reason is empty, or a note on it (its format, its orientation).
            results.append((row, True, note, "", file_size, mtime, bytes_digest(pixels)))
        except DECODE_ERRORS as error:
            target[row] = 0
            reason, message = exclusion_reason(path, error), f"{type(error).__name__}: {error}"
            results.append((row, False, reason, message, file_size, mtime, blank))
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
        damaged_rows: list[int] = []
        if final.exists():
            try:
                damaged_rows = _verify(final)
            except DamagedCacheError as error:
                print(f"{error}: building it again", flush=True)
                shutil.rmtree(final)
            else:
                if damaged_rows:
                    print(
                        f"The image cache {final} has {len(damaged_rows)} row(s) whose bytes changed since they "
                        "were written: processing those images again",
                        flush=True,
                    )
        if not final.exists():
            _build(dataset, image_size, policy, final, workers, chunk_size, progress)
        else:
            _refresh(dataset, final, workers, chunk_size, damaged_rows)
    finally:
        lock.release()
    return open_cache(final)


def _refresh(dataset: MuraDataset, directory: Path, workers: int, chunk_size: int, damaged_rows=()) -> None:
    """Process again the entries that failed, whose file changed (size or modification time) or
    whose row in the array is damaged (``damaged_rows``)."""
    index = _read_index(directory)
    paths = dict(zip(dataset.images["relpath"], dataset.images["path"]))
    current = [_identity(paths.get(rel, "")) for rel in index["relpath"]]
    changed = (
        ~index["ok"].to_numpy()
        | (index["size"].to_numpy() != np.array([c[0] for c in current]))
        | (index["mtime_ns"].to_numpy() != np.array([c[1] for c in current]))
    )
    changed[list(damaged_rows)] = True
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
    meta["index_digest"] = file_digest(directory / "index.csv")
    _write_text(directory / "meta.json", json.dumps(meta, indent=1))
    _stamp(directory)


def _apply(index: pd.DataFrame, results: list[tuple]) -> None:
    if not results:
        return
    update = pd.DataFrame(results, columns=["row", *INDEX_COLUMNS[1:]]).set_index("row")
    for column in update.columns:
        values = index[column].to_numpy(copy=True)
        values[update.index.to_numpy()] = update[column].to_numpy()
        index[column] = values


def _read_index(directory: Path) -> pd.DataFrame:
    index = pd.read_csv(directory / "index.csv", keep_default_na=False, dtype={"digest": str})
    index["ok"] = index["ok"].astype(str).str.lower().eq("true")
    return index


def _array_identity(directory: Path) -> dict:
    stat = os.stat(directory / "images.npy")
    return {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "ctime_ns": stat.st_ctime_ns}


def _stamp(directory: Path) -> None:
    """Record that every row of ``images.npy`` matches its checksum, as the file is now."""
    _write_text(directory / "verified.json", json.dumps(_array_identity(directory)))


def _damaged(directory: Path, problem: str) -> DamagedCacheError:
    return DamagedCacheError(f"The image cache {directory} is damaged ({problem})")


def _open_checked(directory: Path) -> tuple[dict, pd.DataFrame, np.ndarray]:
    """The cache's meta data, index and memory-mapped array, after the cheap checks: the files
    exist and parse, the index has its recorded checksum, the array its recorded shape and size.
    Raises :class:`DamagedCacheError` naming what is wrong."""
    try:
        meta = json.loads((directory / "meta.json").read_text())
        expected = (int(meta["images"]), int(meta["image_size"]), int(meta["image_size"]))
        recorded = meta["index_digest"], int(meta["array_bytes"])
    except FileNotFoundError:
        raise _damaged(directory, "meta.json is missing") from None
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise _damaged(directory, f"meta.json does not parse: {error}") from None
    try:
        index_digest = file_digest(directory / "index.csv")
    except FileNotFoundError:
        raise _damaged(directory, "index.csv is missing") from None
    if index_digest != recorded[0]:
        raise _damaged(directory, "index.csv differs from what was written")
    try:
        index = _read_index(directory)
    except FileNotFoundError:
        raise _damaged(directory, "index.csv is missing") from None
    except (OSError, ValueError, pd.errors.ParserError) as error:
        raise _damaged(directory, f"index.csv does not parse: {error}") from None
    if len(index) != expected[0] or list(index.columns) != INDEX_COLUMNS:
        raise _damaged(directory, f"index.csv has {len(index)} rows of {expected[0]}")
    array_path = directory / "images.npy"
    try:
        size = array_path.stat().st_size
    except FileNotFoundError:
        raise _damaged(directory, "images.npy is missing") from None
    if size != recorded[1]:
        raise _damaged(directory, f"images.npy has {size:,d} bytes, {recorded[1]:,d} were written")
    try:
        images = np.load(array_path, mmap_mode="r")
    except (OSError, ValueError, EOFError, SyntaxError) as error:
        raise _damaged(directory, f"images.npy does not open: {error}") from None
    if images.shape != expected or images.dtype != np.uint8:
        raise _damaged(directory, f"images.npy holds {images.dtype} {images.shape}, not uint8 {expected}")
    return meta, index, images


def _verify(directory: Path) -> list[int]:
    """The rows of the cache's array whose bytes differ from their checksums (checked only when
    ``images.npy`` changed since its rows were last checked).  Raises :class:`DamagedCacheError`
    when a cheap check fails (:func:`_open_checked`)."""
    _, index, images = _open_checked(directory)
    try:
        if json.loads((directory / "verified.json").read_text()) == _array_identity(directory):
            return []
    except (OSError, ValueError):
        pass  # never checked, or the stamp is unreadable: check every row
    digests = index["digest"].to_numpy()
    damaged = [row for row in range(len(images)) if bytes_digest(images[row]) != digests[row]]
    if not damaged:
        _stamp(directory)  # the rows are processed again, then stamped, otherwise
    return damaged


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
    """Open a built cache, after the cheap checks (:class:`DamagedCacheError` if one fails; the rows'
    checksums are checked by :func:`build_cache`, which also repairs what it finds)."""
    directory = Path(directory)
    meta, index, images = _open_checked(directory)
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
                "digest": "",
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
            "array_bytes": array_path.stat().st_size,
            "index_digest": file_digest(staging / "index.csv"),
        }
        _write_text(staging / "meta.json", json.dumps(meta, indent=1))
        _stamp(staging)
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
