"""What on-device augmentation costs in training: the ab-initio CNN (the default
ExperimentConfig) trained without augmentation, with Keras' own layers (flip, rotation, zoom,
contrast; each step alone and all of them), and with the library's one-warp ``RandomAffine``
(flip, rotation and zoom in one resampling) plus contrast.

    python benchmarks/augmentation_cost.py [--sizes 64 128] [--batch 32] [--steps 64] [--short] [--repeats 3]
    KERAS_BACKEND=jax python benchmarks/augmentation_cost.py --sizes 224 --batch 64
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras
from fit_timing import random_image_rate

from mura_lib import models
from mura_lib.config import ExperimentConfig
from mura_lib.device import device_description, resolve_precision
from mura_lib.training import compile_model

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


class ProcessTime:
    """CPU seconds this process (all its threads) spends while entered: on a shared machine a
    steadier measure of the work than wall-clock time."""

    def __enter__(self):
        self.started = time.process_time()
        return self

    def __exit__(self, *exc):
        self.seconds = time.process_time() - self.started
        return False


def rate(variant: str, size: int, batch: int, steps: int) -> tuple[float, float]:
    """(images per second, images per CPU second) of training with ``variant``."""
    config = ExperimentConfig(image_size=size)
    model = models.build_model(config.replace(augment=False))
    if VARIANTS[variant] is not None:  # the augmentation of build_model(config), or another one
        builder, options = VARIANTS[variant]
        model = keras.Sequential([keras.Input((size, size, 1)), builder(config.seed, **options), model])
    compile_model(model, config)
    cpu = ProcessTime()
    batches_per_epoch = 8
    images = batch * batches_per_epoch * max(1, steps // batches_per_epoch)
    images_per_second = random_image_rate(model, size, batch, steps, batches_per_epoch=batches_per_epoch, monitor=cpu)
    return images_per_second, images / cpu.seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[64])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--steps", type=int, default=64)
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--short", action="store_true", help=f"only {', '.join(SHORT)}")
    parser.add_argument(
        "--repeats", type=int, default=1, help="time the variants this many times, in turn; report the best"
    )
    args = parser.parse_args()
    variants = SHORT if args.short else args.variants
    precision = resolve_precision("auto")
    keras.config.set_dtype_policy(precision)
    print(f"keras {keras.__version__}, backend {keras.backend.backend()}, {device_description()}, {precision}")
    for size in args.sizes:
        print(f"ab-initio CNN, {size}px, batch {args.batch}")
        print(f"{'augmentation':<20} {'img/s':>8} {'of none':>8} {'img/CPU-s':>10} {'of none':>8}")
        rates = {variant: [] for variant in variants}
        for _ in range(args.repeats):  # in turn, so that a busy spell of a shared machine hits every variant
            for variant in variants:
                rates[variant].append(rate(variant, size, args.batch, args.steps))
        for variant in variants:
            wall, cpu = (max(values) for values in zip(*rates[variant]))
            shares = [
                format(value / max(base), ".0%") if "none" in rates else ""
                for value, base in (
                    (wall, [r[0] for r in rates.get("none", [(1, 1)])]),
                    (cpu, [r[1] for r in rates.get("none", [(1, 1)])]),
                )
            ]
            print(f"{variant:<20} {wall:>8.1f} {shares[0]:>8} {cpu:>10.1f} {shares[1]:>8}", flush=True)


if __name__ == "__main__":
    main()
