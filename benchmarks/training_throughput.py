"""Training throughput of the ab-initio CNN on this machine: fed from the preprocessing cache
(the library's CacheBatches over the memory map) against the same model fed from in-memory
tensors. The input pipeline should cost under 10%.

    python benchmarks/training_throughput.py [--sizes 64 128] [--images 1024] [--epochs 3]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras
import numpy as np

from mura_lib.dataset import load_mura
from mura_lib.models import build_cnn
from mura_lib.preprocess import build_cache
from mura_lib.synthetic import generate_synthetic_mura
from mura_lib.training import CacheBatches, ExperimentConfig, compile_model


def timed_fit(model, data, epochs, **kwargs) -> float:
    model.fit(data, epochs=1, verbose=0, **kwargs)  # warm-up: tracing and compilation
    started = time.perf_counter()
    model.fit(data, epochs=epochs, verbose=0, **kwargs)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", type=int, nargs="+", default=[64, 128])
    parser.add_argument("--images", type=int, default=1024)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=32)
    args = parser.parse_args()

    workdir = tempfile.mkdtemp(prefix="mura-bench-")
    root = generate_synthetic_mura(workdir, scale=0.05, image_size=256, seed=0, progress=False)
    dataset = load_mura(root)
    print(f"keras {keras.__version__} backend {keras.backend.backend()}, {os.cpu_count()} cores")
    print(f"{'size':>5} {'cache img/s':>12} {'memory img/s':>13} {'pipeline cost':>14}")
    for size in args.sizes:
        cache = build_cache(dataset, size, cache_dir=os.path.join(workdir, "cache"), progress=False)
        rows = np.arange(min(args.images, len(cache.index)))
        labels = dataset.images["label"].to_numpy()[rows].astype("float32")
        config = ExperimentConfig(image_size=size)
        results = {}
        for feed in ("cache", "memory"):
            keras.utils.set_random_seed(0)
            model = build_cnn(size, seed=0)
            compile_model(model, config)
            if feed == "cache":
                data = CacheBatches(cache.images, rows, labels, batch_size=args.batch_size, shuffle=True)
                seconds = timed_fit(model, data, args.epochs)
            else:
                tensors = np.asarray(cache.images[rows], dtype="float32")[..., None]
                seconds = timed_fit(model, tensors, args.epochs, y=labels, batch_size=args.batch_size, shuffle=True)
            results[feed] = len(rows) * args.epochs / seconds
        cost = 1 - results["cache"] / results["memory"]
        print(f"{size:>5} {results['cache']:>12.0f} {results['memory']:>13.0f} {cost:>13.1%}")


if __name__ == "__main__":
    main()
