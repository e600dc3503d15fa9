"""How long pretraining a backbone on the study-type source task takes per epoch.

Generates (or reuses) a source corpus like the plan's (``ExperimentPlan.source_dataset``) under ``--root``, caches it
at each input size, and for each backbone and size times training steps (``model.fit`` on
``--batches`` batches of the corpus' training images, after one untimed warm-up epoch) and
prediction (the validation pass after each epoch), in wall-clock and process CPU seconds.  One
epoch of pretraining is then extrapolated from the rates to the corpus' training and validation
images.  The load average is printed beside each line: on a shared machine the CPU time is the
steadier measure.

    python benchmarks/pretrain_timing.py --root /tmp/source --models vgg16,efficientnetb0,resnet50 --sizes 32,48
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mura_lib.config import ExperimentConfig  # noqa: E402
from mura_lib.dataset import load_mura  # noqa: E402
from mura_lib.inputs import CacheBatches, prepare_data, task_labels  # noqa: E402
from mura_lib.models import build_model  # noqa: E402
from mura_lib.synthetic import generate_synthetic_mura  # noqa: E402
from mura_lib.training import compile_model  # noqa: E402
from mura_thesis.plan import SOURCE_SEED_OFFSET, PlanSettings  # noqa: E402


def clocked(call):
    wall, cpu = time.perf_counter(), time.process_time()
    call()
    return time.perf_counter() - wall, time.process_time() - cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--root", required=True, help="folder for the source corpus and its cache")
    parser.add_argument("--models", default="vgg16,efficientnetb0,resnet50")
    parser.add_argument("--sizes", default="32,48")
    parser.add_argument("--batches", type=int, default=12, help="timed training batches per model and size")
    parser.add_argument("--scale", type=float, default=PlanSettings().source_scale)
    parser.add_argument("--corpus-image-size", type=int, default=128)
    args = parser.parse_args()
    root = Path(args.root)
    cache_dir = root / "cache"
    seed = SOURCE_SEED_OFFSET
    folder = root / f"source-image_size{args.corpus_image_size}-scale{args.scale}-seed{seed}"
    dataset = load_mura(
        generate_synthetic_mura(folder, scale=args.scale, image_size=args.corpus_image_size, seed=seed, progress=False)
    )
    print(
        f"source corpus {dataset.root}: {len(dataset.images)} images, {(dataset.images['split'] == 'train').sum()} "
        f"in its train split; {os.cpu_count()} CPUs",
        flush=True,
    )
    for size in (int(s) for s in args.sizes.split(",")):
        wall, _ = clocked(lambda: prepare_data(dataset, size, cache_dir=cache_dir, progress=False))
        prepared = prepare_data(dataset, size, cache_dir=cache_dir, progress=False)
        train, validation = prepared.subset("train"), prepared.subset("validation")
        print(
            f"{size}px: cache ready in {wall:.1f}s; {len(train)} training, {len(validation)} validation images",
            flush=True,
        )
        for name in args.models.split(","):
            config = ExperimentConfig(model=name, image_size=size, task="study_type", fine_tune=True)
            part = train.iloc[: args.batches * config.batch_size]
            batches = CacheBatches(
                prepared.cache_images, part["cache_row"], task_labels(part, config.task), batch_size=config.batch_size
            )
            model = build_model(config)
            compile_model(model, config)
            load = os.getloadavg()[0]
            model.fit(batches, epochs=1, verbose=0)  # tracing and warm-up
            fit_wall, fit_cpu = clocked(lambda: model.fit(batches, epochs=1, verbose=0))
            model.predict(batches, verbose=0)
            predict_wall, predict_cpu = clocked(lambda: model.predict(batches, verbose=0))
            n = len(part)
            epoch_wall = fit_wall / n * len(train) + predict_wall / n * len(validation)
            epoch_cpu = fit_cpu / n * len(train) + predict_cpu / n * len(validation)
            print(
                f"{name:>14} {size}px: train {n / fit_wall:6.1f} img/s wall ({n / fit_cpu:6.1f} per CPU-s), "
                f"predict {n / predict_wall:6.1f} img/s; one epoch ~{epoch_wall:5.1f}s wall, {epoch_cpu:5.1f} CPU-s; "
                f"{model.count_params():,} parameters; load {load:.1f} -> {os.getloadavg()[0]:.1f}",
                flush=True,
            )
            del model


if __name__ == "__main__":
    main()
