"""Where one training epoch of a profile's baseline run goes: the training steps (forward,
backward and the on-device augmentation), then the end of the epoch (the study-level validation,
the checkpoint, the history), and the same steps without augmentation for its share.

    MURA_THREADS=1 .venv/bin/python benchmarks/epoch_costs.py [--profile demo] [--epochs 4]

Each configuration is trained afresh in a temporary run store, so nothing is reused; the first
epoch (tracing) is reported apart from the mean of the others.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import keras  # noqa: E402
import numpy as np  # noqa: E402

from mura_lib import numerics  # noqa: E402
from mura_lib.dataset import load_mura  # noqa: E402
from mura_lib.runs import RunStore  # noqa: E402
from mura_lib.training import run_experiment  # noqa: E402
from mura_thesis.plan import PlanSettings, settings_from_parameters  # noqa: E402
from mura_thesis.profiles import load_profile, resolve_data  # noqa: E402


class EpochClock(keras.callbacks.Callback):
    """Seconds of each epoch's training steps and of its end (every callback before this one)."""

    def __init__(self):
        super().__init__()
        self.steps, self.ends = [], []

    def on_epoch_begin(self, epoch, logs=None):
        self.begun = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        self.last_batch = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        now = time.perf_counter()
        self.steps.append(self.last_batch - self.begun)
        self.ends.append(now - self.last_batch)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", default="demo")
    parser.add_argument("--epochs", type=int, default=4)
    args = parser.parse_args()

    project = Path(__file__).resolve().parents[1]
    profile = load_profile(project, args.profile)
    settings = PlanSettings.from_dict(settings_from_parameters(profile.parameters, source=args.profile))
    _, root = resolve_data(project, profile, progress=False)
    dataset = load_mura(root)
    print(f"# {' '.join(sys.argv)}; numerics {numerics.in_effect('tensorflow')}")
    print(f"{'configuration':<28} {'steps s (1st)':>13} {'steps s':>8} {'end s':>6} {'run s':>6}")
    for label, changes in (("baseline", {}), ("baseline, no augmentation", {"augment": False})):
        config = settings.baseline_config(epochs=args.epochs, min_epochs=args.epochs, **changes)
        clock = EpochClock()
        with tempfile.TemporaryDirectory() as runs:
            started = time.perf_counter()
            run_experiment(
                config,
                dataset,
                store=RunStore(runs),
                cache_dir=project / "data" / "cache",
                verbose="silent",
                extra_callbacks=[clock],
            )
            total = time.perf_counter() - started
        print(
            f"{label:<28} {clock.steps[0]:>13.2f} {np.mean(clock.steps[1:]):>8.2f} "
            f"{np.mean(clock.ends[1:]):>6.2f} {total:>6.1f}"
        )
    print(f"(train images {len(dataset.images)} in the dataset; batch {settings.baseline_config().batch_size})")


if __name__ == "__main__":
    main()
