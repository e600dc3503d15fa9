"""The preprocessing cache: every image decoded, made grayscale and resized once, on disk.

For each dataset, image size and resize policy the cache holds one memory-mapped ``uint8``
array of shape (images, size, size) and an index table.  It is built in parallel over all
cores, reused by every experiment and rebuilt only when the dataset's files or the
preprocessing parameters change.  Images that cannot be decoded are reported by path and
left out, so that training never crashes mid-epoch on a bad file.
"""

from __future__ import annotations

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
from numpy.lib.format import open_memmap
from PIL import Image
from tqdm.auto import tqdm

from .dataset import MuraDataset
from .parallel import process_pool

POLICIES = ("pad", "stretch", "crop")
CACHE_FORMAT_VERSION = 1
DEFAULT_CACHE_DIR = Path("data") / "cache"


def load_grayscale(path: str | os.PathLike) -> np.ndarray:
    """Decode one image to a 2-D ``uint8`` array; RGB files (three equal channels) become gray.

    Raises ``OSError`` or ``ValueError`` for files that cannot be decoded (PIL's errors).
    """
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        with Image.open(path) as image:
            image.load()
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
    def failures(self) -> pd.DataFrame:
        """Images that could not be decoded: ``relpath`` and the ``error``."""
        return self.index.loc[~self.index["ok"], ["relpath", "error"]].reset_index(drop=True)

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


def _process_chunk(task: tuple) -> list[tuple[int, str]]:
    """Decode and resize one chunk of images straight into the shared memory map."""
    array_path, start, paths, size, policy = task
    target = np.load(array_path, mmap_mode="r+")
    errors = []
    for offset, path in enumerate(paths):
        try:
            target[start + offset] = resize_image(load_grayscale(path), size, policy)
        except (OSError, ValueError, SyntaxError, Image.DecompressionBombWarning) as error:
            errors.append((start + offset, f"{type(error).__name__}: {error}"))
    # No flush here: the map is shared, so the pages are already in the file as the other
    # processes see it; the build syncs the file to disk once, at the end.
    del target
    return errors


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
    if not (final / "index.csv").exists():
        _build(dataset, image_size, policy, final, workers or os.cpu_count() or 1, chunk_size, progress)
    return open_cache(final)


def open_cache(directory: str | os.PathLike) -> ImageCache:
    directory = Path(directory)
    meta = json.loads((directory / "meta.json").read_text())
    index = pd.read_csv(directory / "index.csv", keep_default_na=False)
    index["ok"] = index["ok"].astype(bool)
    images = np.load(directory / "images.npy", mmap_mode="r")
    return ImageCache(directory=directory, images=images, index=index, image_size=meta["image_size"], policy=meta["policy"])


def _build(dataset, image_size, policy, final: Path, workers: int, chunk_size: int, progress: bool) -> None:
    images = dataset.images
    staging = final.parent / f".{final.name}.partial-{os.getpid()}"
    if staging.exists():
        shutil.rmtree(staging)
    staging.mkdir(parents=True)
    array_path = staging / "images.npy"
    open_memmap(array_path, mode="w+", dtype=np.uint8, shape=(len(images), image_size, image_size)).flush()
    paths = images["path"].tolist()
    tasks = [
        (str(array_path), start, paths[start : start + chunk_size], image_size, policy)
        for start in range(0, len(paths), chunk_size)
    ]
    errors: list[tuple[int, str]] = []
    started = time.perf_counter()
    bar = tqdm(total=len(paths), desc=f"Caching images at {image_size}px", unit="img", disable=not progress)
    try:
        if workers == 1:
            for task in tasks:
                errors += _process_chunk(task)
                bar.update(len(task[2]))
        else:
            with process_pool(workers) as pool:
                for task, result in zip(tasks, pool.map(_process_chunk, tasks)):
                    errors += result
                    bar.update(len(task[2]))
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    finally:
        bar.close()
    with open(array_path, "rb+") as handle:  # to disk once, before the cache is published
        os.fsync(handle.fileno())
    error_of = dict(errors)
    index = pd.DataFrame(
        {
            "relpath": images["relpath"].to_numpy(),
            "ok": [i not in error_of for i in range(len(images))],
            "error": [error_of.get(i, "") for i in range(len(images))],
        }
    )
    index.to_csv(staging / "index.csv", index=False)
    meta = {
        "image_size": image_size,
        "policy": policy,
        "images": len(images),
        "failed": len(errors),
        "seconds": round(time.perf_counter() - started, 2),
        "workers": workers,
        "dataset_root": str(dataset.root),
        "version": CACHE_FORMAT_VERSION,
    }
    (staging / "meta.json").write_text(json.dumps(meta, indent=1))
    if final.exists():
        shutil.rmtree(final)
    os.replace(staging, final)
