"""How far the demo baseline's seeds spread under each training rule, and what each rule costs.

Trains the baseline configuration of a profile (``params/<profile>.yaml``) with several seeds
under each rule below, on the profile's data, and prints per rule the test study AUROC and kappa
(threshold 0.5) over the seeds (mean, standard deviation, range), the epochs trained and the
seconds per run.  The rule with the smallest spread that does not lower the mean is the one the
plan should use.

    .venv/bin/python benchmarks/training_rules.py [--profile demo] [--seeds 0 1 2 3 4]
        [--rules plateau patience-8 ...] [--runs build/bench-training-rules]

Runs go into their own run store (``--runs``), so an interrupted benchmark resumes and a second
call reads the finished runs instead of training them again.  The seeds of one rule can be
trained by several processes side by side (``--seeds 0 1`` here, ``--seeds 2 3`` there, each
with ``MURA_THREADS=1``); ``--summarise LOG ...`` then reads their printed lines and prints the
table over all of them, with each rule's difference from the ``plateau`` rule seed by seed (the
seeds share data order and draws) and a two-sided F test of its spread against that rule's.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from mura_lib import numerics  # noqa: E402
from mura_lib.dataset import load_mura  # noqa: E402
from mura_lib.runs import RunStore  # noqa: E402
from mura_lib.scoring import study_metrics  # noqa: E402
from mura_lib.training import run_experiment  # noqa: E402
from mura_thesis.plan import PlanSettings, settings_from_parameters  # noqa: E402
from mura_thesis.profiles import load_profile, resolve_data  # noqa: E402

# Each rule: the changes to the profile's baseline configuration (each names its schedule and
# epochs, so that a rule means the same whatever the profile's defaults are).
PLATEAU = {"schedule": "plateau", "epochs": 30}
RULES = {
    # The plateau rules (the demo's until the fixed budget replaced them): cut the rate after
    # lr_patience epochs without gain, stop after early_stopping_patience, keep the best smoothed
    # validation epoch; at most 30 epochs.
    "plateau": PLATEAU,
    # A stopping patience that outlasts a learning-rate cut (and a second one).
    "patience 8": PLATEAU | {"early_stopping_patience": 8},
    # The plateau rules judged on twice as many validation studies.
    "validation 0.4": PLATEAU | {"validation_fraction": 0.4},
    # A fixed budget, the rate decaying on a cosine to zero, the last epoch's weights kept.
    "cosine 12": {"schedule": "cosine", "epochs": 12},
    # The same, the weights of the last 3 epochs averaged.
    "cosine 12, average 3": {"schedule": "cosine", "epochs": 12, "average_epochs": 3},
    "cosine 20": {"schedule": "cosine", "epochs": 20},
    "cosine 16": {"schedule": "cosine", "epochs": 16},
    "cosine 8": {"schedule": "cosine", "epochs": 8},
    "cosine 8, average 3": {"schedule": "cosine", "epochs": 8, "average_epochs": 3},
}


LINE = re.compile(
    r"^(?P<rule>.+?)\s+seed (?P<seed>\d+): AUROC (?P<auroc>[\d.]+)\s+kappa (?P<kappa>-?[\d.]+)\s+"
    r"epochs (?P<epochs>\d+)\s+\((?P<wall>\d+) s\)$"
)


def summarise(logs: list[str]) -> None:
    """The table over every seed line of ``logs`` (a later line for the same rule and seed wins)."""
    from scipy import stats

    rows = {}
    for log in logs:
        for line in Path(log).read_text().splitlines():
            match = LINE.match(line.strip())
            if match:
                row = match.groupdict()
                rows[(row["rule"], int(row["seed"]))] = row
    frame = pd.DataFrame(rows.values()).astype({"seed": int, "auroc": float, "kappa": float, "epochs": int})
    frame = frame.astype({"wall": float})
    reference = frame.loc[frame["rule"] == "plateau"].set_index("seed")
    lines = []
    for rule, group in frame.groupby("rule", sort=False):
        group = group.set_index("seed")
        shared = group.index.intersection(reference.index)
        paired = group.loc[shared, "auroc"] - reference.loc[shared, "auroc"]
        ratio = group["auroc"].var() / reference["auroc"].var()
        df_a, df_b = len(group) - 1, len(reference) - 1
        p_spread = 2 * min(stats.f.cdf(ratio, df_a, df_b), stats.f.sf(ratio, df_a, df_b))
        lines.append(
            {
                "rule": rule,
                "seeds": len(group),
                "AUROC mean": group["auroc"].mean(),
                "AUROC SD": group["auroc"].std(),
                "min": group["auroc"].min(),
                "max": group["auroc"].max(),
                "kappa mean": group["kappa"].mean(),
                "kappa SD": group["kappa"].std(),
                "epochs": group["epochs"].mean(),
                "s per run (2 side by side)": group["wall"].mean(),
                "vs plateau, same seeds": paired.mean() if rule != "plateau" else np.nan,
                "spread F test p": p_spread if rule != "plateau" else np.nan,
            }
        )
    table = pd.DataFrame(lines).set_index("rule")
    print(table.round(3).to_string())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", default="demo")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--rules", nargs="+", default=list(RULES), choices=list(RULES))
    parser.add_argument("--runs", default="build/bench-training-rules", help="the benchmark's own run store")
    parser.add_argument("--data", help="the profile's data folder (default: generated as the build would)")
    parser.add_argument("--summarise", nargs="+", metavar="LOG", help="print the table of these runs' printed lines")
    args = parser.parse_args()
    if args.summarise:
        summarise(args.summarise)
        return

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
