"""Worked estimate of the `full` profile's training wall time on 1, 8 and 32 GPUs.

The grid is the full profile's experiment plan (``mura_thesis.plan.ExperimentPlan`` from
``params/full.yaml``): every run the thesis needs, one per distinct configuration.  Each run's time comes
from training rates measured on an NVIDIA H100 (``benchmarks/results/gpu_h100_*.txt``; Keras on
JAX, mixed bfloat16, 224 px, batch 64).  Nothing is trained: the script only computes.

Assumptions (each a flag):
  * training images: MURA-v1.1 has 36,808 training images; 10% of its patients are held out
    for validation, so about 33,100 train and 3,700 validate each epoch;
  * time per image grows with the pixel count, (size / 224)^2 (a saturated GPU);
  * every run trains all its epochs (its fixed budget: the plan's cosine schedule has no early stopping);
  * DenseNet-169 and EfficientNet-B0 train at ResNet-50's measured rate (they were not measured);
    a frozen backbone trains at its fine-tuned rate (frozen is faster: an upper bound);
  * the default augmentation (flip, rotation, zoom, contrast) costs what it cost on JAX,
    1/270 - 1/9850 s per 224 px image, whatever the model; TensorFlow's GPU kernels for these
    layers were not measured, so a second column assumes augmentation is free;
  * a validation image costs a third of a training image without augmentation (forward only);
  * each run adds a fixed overhead (process start, model build, compilation, final prediction);
  * runs are independent and each uses one GPU; Ray hands the next run to the first free GPU,
    in the order given (the scheduling is simulated, plus the lower bound max(total/G, longest)).
Measure instead of assuming: ``bash benchmarks/gpu_suite.sh OUT`` on the target GPU gives the
rates, and ``mura-thesis runs KEY`` shows a trained run's ``train_seconds_last_session``.
"""

from __future__ import annotations

import argparse
import heapq
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from mura_thesis.plan import ExperimentPlan, PlanSettings  # noqa: E402

# Measured on an H100 (benchmarks/results/gpu_h100_throughput.txt, gpu_h100_augmentation.txt):
# training images/s at 224 px, batch 64, mixed bfloat16, Keras on JAX.
MEASURED_RATE_224 = {"cnn": 9850, "vgg16": 3565, "resnet50": 3733}
MEASURED_RATE_224_AUGMENTED_CNN = 270
ASSUMED_LIKE = {"densenet169": "resnet50", "efficientnetb0": "resnet50"}


def full_grid(profile: dict) -> list[tuple[str, object]]:
    """(name, ExperimentConfig) for every run of the profile's experiment plan, without repeats
    (the multi-view model trains like an image model over all views, so it is priced as one)."""
    plan = ExperimentPlan(PlanSettings.from_dict(profile.get("parameters") or {}), "unused")
    unique, seen = [], set()
    for name, planned in plan.runs.items():
        config = planned.config.replace(model="cnn") if planned.config.model == "multiview" else planned.config
        if config not in seen:
            seen.add(config)
            unique.append((name, config))
    return unique


def run_seconds(
    config, *, train_images: int, validation_images: int, overhead: float, augmentation_free: bool
) -> float:
    model = ASSUMED_LIKE.get(config.model, config.model)
    scale = (config.image_size / 224) ** 2
    per_image = 1 / MEASURED_RATE_224[model]
    augmentation = 1 / MEASURED_RATE_224_AUGMENTED_CNN - 1 / MEASURED_RATE_224["cnn"]
    train = per_image + (augmentation if config.augment and not augmentation_free else 0.0)
    epoch = (train_images * train + validation_images * per_image / 3) * scale
    return config.epochs * epoch + overhead


def makespan(durations: list[float], gpus: int) -> float:
    """Each run to the first GPU that is free, in the order given (what Ray's queue does)."""
    free = [0.0] * gpus
    for duration in durations:
        heapq.heappush(free, heapq.heappop(free) + duration)
    return max(free)


def hours(seconds: float) -> str:
    minutes = round(seconds / 60)
    return f"{minutes // 60}h {minutes % 60:02d}m"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", default=str(ROOT / "params" / "full.yaml"))
    parser.add_argument("--gpus", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--train-images", type=int, default=33_100)
    parser.add_argument("--validation-images", type=int, default=3_700)
    parser.add_argument("--overhead", type=float, default=120, help="seconds per run outside the epochs (default 120)")
    args = parser.parse_args(argv)

    jobs = full_grid(yaml.safe_load(Path(args.profile).read_text()))
    options = dict(train_images=args.train_images, validation_images=args.validation_images, overhead=args.overhead)
    scenarios = {
        "augmentation as measured (JAX)": [run_seconds(c, augmentation_free=False, **options) for _, c in jobs],
        "augmentation free": [run_seconds(c, augmentation_free=True, **options) for _, c in jobs],
    }
    print(f"The full profile: {len(jobs)} runs ({args.profile})")
    print(f"{'run':<34} {'model':<15} {'px':>4} {'ep':>3} {'aug':>5}  " + "  ".join(f"{s:>30}" for s in scenarios))
    for index, (name, config) in enumerate(jobs):
        times = "  ".join(f"{hours(scenarios[s][index]):>30}" for s in scenarios)
        print(
            f"{name:<34} {config.model:<15} {config.image_size:>4} {config.epochs:>3} {str(config.augment):>5}  {times}"
        )
    print()
    print(f"{'GPUs':>5}  {'scenario':<32} {'wall time':>10} {'lower bound':>12} {'GPU-hours':>10} {'GPUs busy':>10}")
    for gpus in args.gpus:
        for scenario, durations in scenarios.items():
            wall = makespan(durations, gpus)
            bound = max(sum(durations) / gpus, max(durations))
            print(
                f"{gpus:>5}  {scenario:<32} {hours(wall):>10} {hours(bound):>12} {sum(durations) / 3600:>10.1f} "
                f"{sum(durations) / (wall * gpus):>10.0%}"
            )
    print(
        "\nPlus building the four image caches once on the driver before training (56 s at 320 px for the "
        "whole of MURA on 2 CPU cores, benchmarks/results/cpu_cache_build.txt)."
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
