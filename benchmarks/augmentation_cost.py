"""What on-device augmentation costs in training: the ab-initio CNN trained without
augmentation, with each augmentation step alone, and with all of them (the default).

    python benchmarks/augmentation_cost.py [--size 64] [--batch 32] [--steps 64]
    KERAS_BACKEND=jax python benchmarks/augmentation_cost.py --size 224 --batch 64
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras
import numpy as np

from mura_lib import models
from mura_lib.device import device_description, resolve_precision
from mura_lib.training import ExperimentConfig, compile_model

VARIANTS = {
    "none": None,
    "flip": dict(rotation_degrees=0, zoom=0, contrast=0),
    "flip+rotation": dict(zoom=0, contrast=0),
    "flip+zoom": dict(rotation_degrees=0, contrast=0),
    "flip+contrast": dict(rotation_degrees=0, zoom=0),
    "all (default)": {},
}


def rate(variant, size: int, batch: int, steps: int) -> float:
    original = models.augmentation
    options = VARIANTS[variant]
    if options is not None:
        models.augmentation = lambda seed: original(seed, **options)
    try:
        model = models.build_cnn(size, augment=options is not None)
    finally:
        models.augmentation = original
    compile_model(model, ExperimentConfig(image_size=size))
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 255, (batch * 8, size, size, 1)).astype("float32")
    y = rng.integers(0, 2, len(x)).astype("float32")
    model.fit(x, y, batch_size=batch, epochs=1, verbose=0)
    epochs = max(1, steps // 8)
    started = time.perf_counter()
    model.fit(x, y, batch_size=batch, epochs=epochs, verbose=0)
    return len(x) * epochs / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--steps", type=int, default=64)
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    args = parser.parse_args()
    precision = resolve_precision("auto")
    keras.config.set_dtype_policy(precision)
    print(f"keras {keras.__version__}, backend {keras.backend.backend()}, {device_description()}, {precision}")
    print(f"ab-initio CNN, {args.size}px, batch {args.batch}")
    print(f"{'augmentation':<16} {'img/s':>8}")
    for variant in args.variants:
        print(f"{variant:<16} {rate(variant, args.size, args.batch, args.steps):>8.0f}", flush=True)


if __name__ == "__main__":
    main()
