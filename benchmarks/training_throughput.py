"""Training throughput on this machine: a model fed from the preprocessing cache (the
library's CacheBatches over the memory map, as in training) against the same model fed from
in-memory tensors.  The input pipeline should cost under 10%.

    python benchmarks/training_throughput.py [--sizes 64 128] [--images 1024] [--epochs 3]

On a GPU, e.g. ``KERAS_BACKEND=jax python benchmarks/training_throughput.py --sizes 224
--batch-size 64 --scale 0.2 --images 8192`` shows whether the cache starves the device.
"""

from __future__ import annotations

import argparse
import os
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras
import numpy as np
from fit_timing import timed_fit

from mura_lib.config import ExperimentConfig
from mura_lib.dataset import load_mura
from mura_lib.device import device_description, resolve_precision
from mura_lib.inputs import CacheBatches
from mura_lib.models import build_model
from mura_lib.preprocess import build_cache
from mura_lib.synthetic import generate_synthetic_mura
from mura_lib.training import compile_model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", type=int, nargs="+", default=[64, 128])
    parser.add_argument("--images", type=int, default=1024)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--model", default="cnn", help="cnn or a backbone name (random initialisation, fine-tuned)")
    parser.add_argument("--scale", type=float, default=0.05, help="synthetic dataset scale (1.0 = MURA's size)")
    parser.add_argument("--no-augment", action="store_true", help="leave out the on-device augmentation")
    parser.add_argument("--precision", default="auto", help="auto: mixed bfloat16 on a GPU, float32 on a CPU")
    args = parser.parse_args()

    workdir = tempfile.mkdtemp(prefix="mura-bench-")
    root = generate_synthetic_mura(
        workdir, scale=args.scale, image_size=max(256, max(args.sizes)), seed=0, progress=False
    )
    dataset = load_mura(root)
    precision = resolve_precision(args.precision)
    keras.config.set_dtype_policy(precision)
    print(
        f"keras {keras.__version__} backend {keras.backend.backend()}, {device_description()}, {os.cpu_count()} CPU cores"
    )
    print(
        f"model {args.model}, batch {args.batch_size}, {precision}, augmentation {'off' if args.no_augment else 'on'}"
    )
    print(f"{'size':>5} {'cache img/s':>12} {'memory img/s':>13} {'pipeline cost':>14}")
    for size in args.sizes:
        cache = build_cache(dataset, size, cache_dir=os.path.join(workdir, "cache"), progress=False)
        rows = np.arange(min(args.images, len(cache.index)))
        labels = dataset.images["label"].to_numpy()[rows].astype("float32")
        config = ExperimentConfig(model=args.model, image_size=size, augment=not args.no_augment)
        results = {}
        for feed in ("cache", "memory"):
            keras.utils.set_random_seed(0)
            model = build_model(config.replace(weights=None, fine_tune=True))
            compile_model(model, config)
            if feed == "cache":
                data = CacheBatches(cache.images, rows, labels, batch_size=args.batch_size, shuffle=True)
                seconds = timed_fit(model, data, args.epochs)
            else:
                tensors = np.asarray(cache.images[rows], dtype="float32")[..., None]
                seconds = timed_fit(model, tensors, args.epochs, y=labels, batch_size=args.batch_size, shuffle=True)
            results[feed] = len(rows) * args.epochs / seconds
        cost = 1 - results["cache"] / results["memory"]
        print(f"{size:>5} {results['cache']:>12.0f} {results['memory']:>13.0f} {cost:>13.1%}", flush=True)


if __name__ == "__main__":
    main()
