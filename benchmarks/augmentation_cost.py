"""What on-device augmentation costs in training: the ab-initio CNN trained without
augmentation, with each augmentation step alone, and with all of them (the default).

    python benchmarks/augmentation_cost.py [--size 64] [--batch 32] [--steps 64]
    KERAS_BACKEND=jax python benchmarks/augmentation_cost.py --size 224 --batch 64
"""

from __future__ import annotations

import argparse
import os

os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras
from mura_lib import models
from mura_lib.device import device_description, resolve_precision
from mura_lib.training import ExperimentConfig, compile_model

from fit_timing import random_image_rate

VARIANTS = {
    "none": None,
    "flip": dict(rotation_degrees=0, zoom=0, contrast=0),
    "flip+rotation": dict(zoom=0, contrast=0),
    "flip+zoom": dict(rotation_degrees=0, contrast=0),
    "flip+contrast": dict(rotation_degrees=0, zoom=0),
    "all (default)": {},
}


def rate(variant, size: int, batch: int, steps: int) -> float:
    options = VARIANTS[variant]
    model = models.build_cnn(size, augment=False)
    if options is not None:  # the augmentation of build_cnn(augment=True), with some steps left out
        model = keras.Sequential([keras.Input((size, size, 1)), models.augmentation(0, **options), model])
    compile_model(model, ExperimentConfig(image_size=size))
    return random_image_rate(model, size, batch, steps)


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
