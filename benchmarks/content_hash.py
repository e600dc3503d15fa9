"""The cost of the data manifest's content hashes on a MURA-sized tree.

    python benchmarks/content_hash.py [--images 40005] [--gigabytes 3.3] [--dest /tmp/mura-hash-bench]

Writes a tree in MURA-v1.1's layout (four CSV files, ``train/`` and ``valid/`` with
``--images`` files of random bytes whose sizes are drawn log-normally around MURA's mean, in all
``--gigabytes``), evicts it from the page cache (``posix_fadvise``), and times, each in a fresh
process:
  1. the old manifest (paths and sizes only: a walk and a stat per file);
  2. the content manifest on first use: every byte read from disk and hashed (BLAKE2b);
  3. the content manifest again, from the remembered hashes (a walk, a stat per file and the table);
  4. the same after one file was replaced by another of the same size (one file read again).
The tree and the remembered hashes are deleted at the end.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

TIMED = r"""
import hashlib, os, sys, time
if sys.argv[2] != "old":
    from mura_lib.dataset import manifest_hash  # imported before the clock starts
started = time.perf_counter()
if sys.argv[2] == "old":
    root = sys.argv[1]
    entries = []
    for split in ("train", "valid"):
        for directory, _, files in os.walk(os.path.join(root, split)):
            for name in files:
                full = os.path.join(directory, name)
                entries.append(f"{os.path.relpath(full, root)}:{os.path.getsize(full)}")
    hashlib.sha256("\n".join(sorted(entries)).encode()).hexdigest()
else:
    manifest_hash(sys.argv[1])
print(time.perf_counter() - started)
"""


def write_tree(root: Path, images: int, total_bytes: float, seed: int = 0) -> int:
    rng = np.random.default_rng(seed)
    sizes = rng.lognormal(mean=0.0, sigma=0.5, size=images)
    sizes = np.maximum(1024, (sizes / sizes.sum() * total_bytes)).astype(int)
    rows = []
    for number, size in enumerate(sizes):
        split = "valid" if number % 12 == 0 else "train"
        study = root / split / "XR_WRIST" / f"patient{number // 3:05d}" / "study1_negative"
        study.mkdir(parents=True, exist_ok=True)
        path = study / f"image{number % 3 + 1}.png"
        path.write_bytes(rng.bytes(int(size)))
        rows.append((split, path.relative_to(root.parent).as_posix()))
    for split in ("train", "valid"):
        (root / f"{split}_image_paths.csv").write_text("\n".join(p for s, p in rows if s == split) + "\n")
        (root / f"{split}_labeled_studies.csv").write_text("")
    return int(sizes.sum())


def evict(root: Path) -> None:
    """Drop the tree's pages from the page cache, so the next read comes from the disk."""
    for directory, _, files in os.walk(root):
        for name in files:
            descriptor = os.open(os.path.join(directory, name), os.O_RDONLY)
            try:
                os.fsync(descriptor)
                os.posix_fadvise(descriptor, 0, 0, os.POSIX_FADV_DONTNEED)
            finally:
                os.close(descriptor)


def timed(root: Path, which: str, env: dict) -> float:
    result = subprocess.run(
        [sys.executable, "-c", TIMED, str(root), which], env=env, capture_output=True, text=True, check=True
    )
    return float(result.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=40_005)
    parser.add_argument("--gigabytes", type=float, default=3.3)
    parser.add_argument("--dest", default=None, help="the folder to write the tree in (default: a new one in /tmp)")
    args = parser.parse_args()
    base = Path(args.dest or tempfile.mkdtemp(prefix="mura-hash-bench-"))
    root = base / "MURA-v1.1"
    hashes = base / "content-hashes"
    env = os.environ | {"MURA_HASH_CACHE": str(hashes)}
    try:
        started = time.perf_counter()
        total = write_tree(root, args.images, args.gigabytes * 1e9)
        print(f"tree: {args.images:,d} files, {total / 1e9:.2f} GB, written in {time.perf_counter() - started:.0f} s")
        evict(root)
        print(f"old manifest (paths and sizes), cold:   {timed(root, 'old', env):7.2f} s")
        evict(root)
        print(f"content manifest, first use (cold):     {timed(root, 'content', env):7.2f} s")
        print(f"content manifest, remembered hashes:    {timed(root, 'content', env):7.2f} s")
        print(f"old manifest (paths and sizes), warm:   {timed(root, 'old', env):7.2f} s")
        victim = next((root / "train").rglob("*.png"))
        victim.write_bytes(os.urandom(victim.stat().st_size))
        print(f"content manifest, one file replaced:    {timed(root, 'content', env):7.2f} s")
        print(f"table of remembered hashes: {sum(f.stat().st_size for f in hashes.iterdir()) / 1e6:.1f} MB")
    finally:
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
