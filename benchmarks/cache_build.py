"""Preprocessing-cache build rate against its limit (single-process rate x cores), and peak memory.

    python benchmarks/cache_build.py --scale 1.0 --source-size 512 --size 320

Generates (once) a synthetic MURA copy at the given scale (1.0 = MURA's 40,005 images) with
images whose longest side is --source-size, then measures:
  1. the single-process decode + grayscale + resize rate on a sample of its images;
  2. the full parallel cache build (all cores) in images/s;
and prints the build rate as a share of (1) x cores, the goal being at least 80%, and the peak
resident memory of this process and its workers together.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import tempfile
import threading
import time
from pathlib import Path

from mura_lib.dataset import load_mura
from mura_lib.preprocess import build_cache, load_grayscale, resize_image
from mura_lib.synthetic import generate_synthetic_mura


def _tree_rss_mib(root_pid: int) -> float:
    """Resident memory of a process and all its descendants (Linux /proc), in MiB."""
    parents, rss = {}, {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
            for line in (entry / "status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    rss[int(entry.name)] = int(line.split()[1]) / 1024
        except (OSError, ValueError, IndexError):
            continue
    total = 0.0
    for pid, size in rss.items():
        ancestor = pid
        while ancestor and ancestor != root_pid:
            ancestor = parents.get(ancestor, 0)
        if ancestor == root_pid:
            total += size
    return total


class PeakMemory(threading.Thread):
    """Samples the resident memory of this process tree every 0.2 s; ``peak`` is the largest sum."""

    def __init__(self):
        super().__init__(daemon=True)
        self.peak = 0.0
        self.done = threading.Event()

    def run(self):
        while not self.done.wait(0.2):
            self.peak = max(self.peak, _tree_rss_mib(os.getpid()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--source-size", type=int, default=512)
    parser.add_argument("--size", type=int, default=320)
    parser.add_argument("--sample", type=int, default=400)
    parser.add_argument("--data-dir", default=os.path.join(tempfile.gettempdir(), "mura-bench-data"))
    args = parser.parse_args()

    started = time.perf_counter()
    root = generate_synthetic_mura(
        Path(args.data_dir) / f"scale{args.scale}-{args.source_size}",
        scale=args.scale,
        image_size=args.source_size,
        seed=0,
    )
    print(f"dataset ready in {time.perf_counter() - started:.0f}s: {root}")
    dataset = load_mura(root)
    paths = dataset.images["path"].tolist()

    sample = paths[: args.sample]
    started = time.perf_counter()
    for path in sample:
        resize_image(load_grayscale(path), args.size, "pad")
    single = len(sample) / (time.perf_counter() - started)
    cores = os.cpu_count() or 1

    cache_dir = tempfile.mkdtemp(prefix="mura-bench-cache-")
    sampler = PeakMemory()
    sampler.start()
    started = time.perf_counter()
    cache = build_cache(dataset, args.size, cache_dir=cache_dir)
    seconds = time.perf_counter() - started
    sampler.done.set()
    sampler.join()
    rate = len(paths) / seconds
    peak_self = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"images: {len(paths)}  cache: {cache.images.shape}  failed: {len(cache.failures)}")
    print(f"single-process rate: {single:.0f} img/s; limit with {cores} cores: {single * cores:.0f} img/s")
    print(f"parallel build: {seconds:.0f}s, {rate:.0f} img/s = {rate / (single * cores):.0%} of the limit")
    print(
        f"peak resident memory during the build: {sampler.peak:.0f} MiB for the main process and its workers together "
        f"(sampled every 0.2 s; the main process's own peak, generation included: {peak_self:.0f} MiB)"
    )
    shutil.rmtree(cache_dir)


if __name__ == "__main__":
    main()
