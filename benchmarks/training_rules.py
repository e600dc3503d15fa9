"""How far the demo baseline's seeds spread under each training rule, and what each rule costs.

Trains the baseline configuration of a profile (``params/<profile>.yaml``) with several seeds
under each rule below, on the profile's data, and prints per rule the test study AUROC and kappa
(threshold 0.5) over the seeds (mean, standard deviation, range), the epochs trained and the
seconds per run.  The rule with the smallest spread that does not lower the mean is the one the
plan should use.

    .venv/bin/python benchmarks/training_rules.py [--profile demo] [--seeds 0 1 2 3 4]
        [--rules plateau patience-8 ...] [--runs build/bench-training-rules]

Runs go into their own run store (``--runs``), so an interrupted benchmark resumes and a second
call reads the finished runs instead of training them again.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from mura_lib import numerics  # noqa: E402
from mura_lib.book.profiles import load_profile, resolve_data  # noqa: E402
from mura_lib.dataset import load_mura  # noqa: E402
from mura_lib.plan import PlanSettings, settings_from_parameters  # noqa: E402
from mura_lib.runs import RunStore  # noqa: E402
from mura_lib.scoring import study_metrics  # noqa: E402
from mura_lib.training import run_experiment  # noqa: E402

# Each rule: the changes to the profile's baseline configuration.
RULES = {
    # The plan's plateau rules as they stand: cut the rate after lr_patience epochs without gain,
    # stop after early_stopping_patience, keep the best smoothed validation epoch.
    "plateau": {},
    # A stopping patience that outlasts a learning-rate cut (and a second one).
    "patience 8": {"early_stopping_patience": 8},
    # The plateau rules judged on twice as many validation studies.
    "validation 0.4": {"validation_fraction": 0.4},
    # A fixed budget, the rate decaying on a cosine to zero, the last epoch's weights kept.
    "cosine 12": {"schedule": "cosine", "epochs": 12},
    # The same, the weights of the last 3 epochs averaged.
    "cosine 12, average 3": {"schedule": "cosine", "epochs": 12, "average_epochs": 3},
    "cosine 20": {"schedule": "cosine", "epochs": 20},
    "cosine 8": {"schedule": "cosine", "epochs": 8},
    "cosine 8, average 3": {"schedule": "cosine", "epochs": 8, "average_epochs": 3},
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", default="demo")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--rules", nargs="+", default=list(RULES), choices=list(RULES))
    parser.add_argument("--runs", default="build/bench-training-rules", help="the benchmark's own run store")
    parser.add_argument("--data", help="the profile's data folder (default: generated as the build would)")
    args = parser.parse_args()

    project = Path(__file__).resolve().parents[1]
    profile = load_profile(project, args.profile)
    settings = PlanSettings.from_dict(settings_from_parameters(profile.parameters, source=args.profile))
    _, root = resolve_data(project, profile, args.data, progress=False)
    dataset = load_mura(root)
    store = RunStore(args.runs)
    cache = project / "data" / "cache"
    print(f"# {' '.join(sys.argv)}")
    print(f"# profile {args.profile}, data {root}, numerics {numerics.in_effect('tensorflow')}")
    rows = []
    for rule in args.rules:
        for seed in args.seeds:
            config = settings.baseline_config(seed=seed, **RULES[rule])
            started = time.perf_counter()
            run = run_experiment(
                config, dataset, store=store, cache_dir=cache, name=f"{rule}, seed {seed}", verbose="silent"
            )
            wall = time.perf_counter() - started
            studies = run.study_predictions("test")
            scores = study_metrics(studies["label"], studies["probability"], 0.5)
            rows.append(
                {
                    "rule": rule,
                    "seed": seed,
                    "auroc": scores["auroc"],
                    "kappa": scores["kappa"],
                    "epochs": run.training["epochs"],
                    "train s": run.environment.get("train_seconds_last_session", np.nan),
                    "wall s": wall,
                }
            )
            print(
                f"{rule:<22} seed {seed}: AUROC {scores['auroc']:.3f}  kappa {scores['kappa']:.3f}  "
                f"epochs {run.training['epochs']}  ({wall:.0f} s)",
                flush=True,
            )
    frame = pd.DataFrame(rows)
    summary = frame.groupby("rule", sort=False).agg(
        seeds=("seed", "size"),
        auroc_mean=("auroc", "mean"),
        auroc_sd=("auroc", "std"),
        auroc_min=("auroc", "min"),
        auroc_max=("auroc", "max"),
        kappa_mean=("kappa", "mean"),
        kappa_sd=("kappa", "std"),
        epochs=("epochs", "mean"),
        train_s=("train s", "mean"),
    )
    print()
    print(summary.round(3).to_string())


if __name__ == "__main__":
    main()
