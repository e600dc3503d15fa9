"""What on-device augmentation costs in training: the ab-initio CNN (the default
ExperimentConfig) trained without augmentation, with Keras' own layers (flip, rotation, zoom,
contrast; each step alone and all of them), and with the library's one-warp ``RandomAffine``
(flip, rotation and zoom in one resampling) plus contrast.

    python benchmarks/augmentation_cost.py [--sizes 64 128] [--batch 32] [--steps 64]
    KERAS_BACKEND=jax python benchmarks/augmentation_cost.py --sizes 224 --batch 64
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
    "keras flip": (models.keras_augmentation, dict(rotation_degrees=0, zoom=0, contrast=0)),
    "keras flip+rotation": (models.keras_augmentation, dict(zoom=0, contrast=0)),
    "keras flip+zoom": (models.keras_augmentation, dict(rotation_degrees=0, contrast=0)),
    "keras flip+contrast": (models.keras_augmentation, dict(rotation_degrees=0, zoom=0)),
    "keras all": (models.keras_augmentation, {}),
    "warp": (models.affine_augmentation, dict(contrast=0)),
    "warp+contrast": (models.affine_augmentation, {}),
    "default": (models.augmentation, {}),
}
SHORT = ["none", "keras all", "warp+contrast"]


def rate(variant: str, size: int, batch: int, steps: int) -> float:
    config = ExperimentConfig(image_size=size)
    model = models.build_model(config.replace(augment=False))
    if VARIANTS[variant] is not None:  # the augmentation of build_model(config), or another one
        builder, options = VARIANTS[variant]
        model = keras.Sequential([keras.Input((size, size, 1)), builder(config.seed, **options), model])
    compile_model(model, config)
    return random_image_rate(model, size, batch, steps)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[64])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--steps", type=int, default=64)
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--short", action="store_true", help=f"only {', '.join(SHORT)}")
    args = parser.parse_args()
    variants = SHORT if args.short else args.variants
    precision = resolve_precision("auto")
    keras.config.set_dtype_policy(precision)
    print(f"keras {keras.__version__}, backend {keras.backend.backend()}, {device_description()}, {precision}")
    for size in args.sizes:
        print(f"ab-initio CNN, {size}px, batch {args.batch}")
        print(f"{'augmentation':<20} {'img/s':>8} {'of none':>8}")
        baseline = None
        for variant in variants:
            images_per_second = rate(variant, size, args.batch, args.steps)
            baseline = images_per_second if variant == "none" else baseline
            share = format(images_per_second / baseline, ".0%") if baseline else ""
            print(f"{variant:<20} {images_per_second:>8.0f} {share:>8}", flush=True)


if __name__ == "__main__":
    main()
