"""Per-epoch time of the thesis' training (``run_experiment``: the cache, the per-epoch reseeding
and checkpoints, the study-level validation, the plateau rules) against a plain Keras ``fit`` of
the same model on the same images held in memory, with Keras' own validation, side by side.

    python benchmarks/chapter_fit.py [--sizes 64 128] [--epochs 4] [--scale 0.05]

The ratio is plain seconds per epoch over the thesis' seconds per epoch (1.0: no overhead); the
first epoch of each (tracing, compilation) is left out.  Both run in this process with the
library's numeric settings (oneDNN on, the usable CPUs as threads).
"""

from __future__ import annotations

import argparse
import tempfile
import time

import keras
import numpy as np

from mura_lib import numerics
from mura_lib.config import ExperimentConfig
from mura_lib.dataset import load_mura
from mura_lib.device import device_description
from mura_lib.inputs import paper_sample_weights, prepare_data
from mura_lib.models import build_model
from mura_lib.runs import RunStore
from mura_lib.synthetic import generate_synthetic_mura
from mura_lib.training import compile_model, run_experiment


class EpochTimer(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.seconds = []

    def on_epoch_begin(self, epoch, logs=None):
        self.started = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.seconds.append(time.perf_counter() - self.started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", type=int, nargs="+", default=[64, 128])
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--scale", type=float, default=0.05)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as folder:
        root = generate_synthetic_mura(
            f"{folder}/data", scale=args.scale, valid_scale=0.01, image_size=160, progress=False
        )
        dataset = load_mura(root)
        print(
            f"# python benchmarks/chapter_fit.py --sizes {' '.join(map(str, args.sizes))} --epochs {args.epochs} "
            f"--scale {args.scale}"
        )
        print(
            f"# {device_description()}, keras {keras.__version__} ({keras.backend.backend()}), "
            f"numerics {numerics.in_effect(keras.backend.backend())}"
        )
        print(f"{'size':>5} {'images':>7} {'thesis s/epoch':>15} {'plain fit s/epoch':>18} {'ratio':>6}")
        for size in args.sizes:
            # min_epochs above the epoch count: the plateau rules never stop this run early.
            config = ExperimentConfig(
                image_size=size, epochs=args.epochs, min_epochs=args.epochs + 1, validation_fraction=0.2, seed=0
            )
            timer = EpochTimer()
            run_experiment(
                config,
                dataset,
                store=RunStore(f"{folder}/runs"),
                cache_dir=f"{folder}/cache",
                verbose="silent",
                extra_callbacks=[timer],
            )
            thesis = float(np.mean(timer.seconds[1:]))

            prepared = prepare_data(
                dataset, size, validation_fraction=0.2, seed=0, cache_dir=f"{folder}/cache", progress=False
            )
            train, validation = prepared.subset("train"), prepared.subset("validation")
            x = prepared.cache_images[train["cache_row"].to_numpy()][..., None].astype("float32")
            xv = prepared.cache_images[validation["cache_row"].to_numpy()][..., None].astype("float32")
            keras.utils.set_random_seed(0)
            model = build_model(config)
            compile_model(model, config)
            plain_timer = EpochTimer()
            model.fit(
                x,
                train["label"].to_numpy("float32"),
                sample_weight=paper_sample_weights(train).to_numpy(),
                validation_data=(
                    xv,
                    validation["label"].to_numpy("float32"),
                    paper_sample_weights(validation).to_numpy(),
                ),
                batch_size=config.batch_size,
                epochs=args.epochs,
                verbose=0,
                callbacks=[plain_timer],
            )
            plain = float(np.mean(plain_timer.seconds[1:]))
            print(f"{size:>5} {len(train):>7} {thesis:>15.2f} {plain:>18.2f} {plain / thesis:>6.2f}", flush=True)


if __name__ == "__main__":
    main()
