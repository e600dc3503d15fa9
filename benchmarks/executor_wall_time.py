"""Wall time of a grid of small runs: trained one after another in this process (``local``)
against Ray tasks on a local Ray with ``--cpus`` CPUs, one CPU per run.

Both train the same runs into separate stores from one prepared image cache, and the stored
predictions are compared byte for byte.  Ray's time includes starting Ray and one fresh worker
process per run (TensorFlow is imported in each).
"""

from __future__ import annotations

import argparse
import io
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def load_average() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=4)
    parser.add_argument("--cpus", type=int, default=2)
    parser.add_argument("--scale", type=float, default=0.01, help="synthetic dataset scale (0.01: about 400 images)")
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--epochs", type=int, default=2)
    args = parser.parse_args(argv)

    import ray

    from mura_lib.config import ExperimentConfig
    from mura_lib.dataset import load_mura
    from mura_lib.preprocess import build_cache
    from mura_lib.synthetic import generate_synthetic_mura
    from mura_thesis.executors import train_runs

    folder = Path(tempfile.mkdtemp(prefix="executor-wall-time-"))
    root = generate_synthetic_mura(folder / "data", scale=args.scale, image_size=64, seed=0, workers=1, progress=False)
    base = ExperimentConfig(image_size=args.image_size, depth=2, width=8, epochs=args.epochs, batch_size=16)
    build_cache(load_mura(root), base.image_size, cache_dir=folder / "cache", workers=1, progress=False)
    jobs = [(f"seed {seed}", base.replace(seed=seed)) for seed in range(args.runs)]
    common = dict(data_root=root, cache_dir=folder / "cache", verbose="silent", out=io.StringIO())
    print(
        f"{args.runs} runs ({args.image_size}px, depth 2, width 8, {args.epochs} epochs) on "
        f"{len(load_mura(root).images)} synthetic images; load average before: {load_average()}"
    )

    started = time.perf_counter()
    local = train_runs(jobs, runs_dir=folder / "local", executor="local", **common)
    local_seconds = time.perf_counter() - started
    print(f"local, one after another: {local_seconds:6.1f} s   (load average {load_average()})")

    started = time.perf_counter()
    ray.init(num_cpus=args.cpus, include_dashboard=False, log_to_driver=False)
    try:
        parallel = train_runs(jobs, runs_dir=folder / "ray", executor="ray", cpus_per_run=1, **common)
    finally:
        ray.shutdown()
    ray_seconds = time.perf_counter() - started
    print(
        f"ray, {args.cpus} CPUs, 1 per run: {ray_seconds:6.1f} s   (load average {load_average()}; "
        f"Ray start and stop included)"
    )

    same = all(
        (folder / "local" / a.key / "predictions.csv").read_bytes()
        == (folder / "ray" / b.key / "predictions.csv").read_bytes()
        for a, b in zip(local, parallel)
    )
    print(f"stored predictions identical: {same}; speed-up {local_seconds / ray_seconds:.2f}x; files in {folder}")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
