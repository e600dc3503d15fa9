"""How fast the synthetic radiographs are drawn.

Prints the single-process rate of ``draw_radiograph`` (images per second, over all study types,
views and findings in the proportions of a dataset) at 128 and 512 px, and the wall time of
``generate_synthetic_mura`` for the demo dataset (scale 0.05, 128 px) with every core.

    python benchmarks/bench_synthetic.py
    python benchmarks/bench_synthetic.py --sizes 128,256,512 --seconds 5 --skip-dataset
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mura_lib.dataset import STUDY_TYPES  # noqa: E402
from mura_lib.synthetic import FINDINGS, draw_radiograph, generate_synthetic_mura  # noqa: E402


def draw_rate(size: int, seconds: float, seed: int = 0) -> tuple[float, int]:
    """Images per second drawn in one process for about ``seconds``; and how many were drawn."""
    rng = np.random.default_rng(seed)
    choices = (None, None, None) + FINDINGS  # about as many normal views as abnormal ones
    # Warm-up: imports, caches.
    draw_radiograph("XR_WRIST", finding=None, view=1, size=size, rng=np.random.default_rng(0))
    n, start = 0, time.perf_counter()
    while True:
        study_type = STUDY_TYPES[int(rng.integers(len(STUDY_TYPES)))]
        finding = choices[int(rng.integers(len(choices)))]
        draw_radiograph(
            study_type,
            finding=finding,
            view=int(rng.integers(1, 5)),
            size=size,
            rng=np.random.default_rng(int(rng.integers(2**62))),
        )
        n += 1
        elapsed = time.perf_counter() - start
        if elapsed >= seconds and n >= 20:
            return n / elapsed, n


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="128,512")
    parser.add_argument("--seconds", type=float, default=4.0, help="time spent per size")
    parser.add_argument("--scale", type=float, default=0.05)
    parser.add_argument("--image-size", type=int, default=128)
    parser.add_argument("--workers", type=int, default=None, help="processes for the dataset (default: all cores)")
    parser.add_argument("--skip-dataset", action="store_true")
    args = parser.parse_args(argv)

    print(f"{'what':52s} {'result':>16s}")
    for size in [int(s) for s in args.sizes.split(",")]:
        rate, n = draw_rate(size, args.seconds)
        print(f"{f'draw_radiograph at {size} px, 1 process':52s} {rate:11.1f} img/s   ({n} images)")
    if not args.skip_dataset:
        workers = args.workers or os.cpu_count() or 1
        tmp = Path(tempfile.mkdtemp(prefix="bench_synthetic_"))
        try:
            start = time.perf_counter()
            root = generate_synthetic_mura(
                tmp, scale=args.scale, image_size=args.image_size, seed=0, workers=workers, progress=False
            )
            wall = time.perf_counter() - start
            n = sum(1 for _ in root.rglob("image*.png"))
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        label = f"generate_synthetic_mura scale={args.scale} {args.image_size} px, {workers} workers"
        print(f"{label:52s} {wall:12.1f} s       ({n} images, {n / wall:.0f} img/s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
