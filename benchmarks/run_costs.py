"""Where a build's training time goes, and how far its seeds spread: one row per stored run of a
run store (seconds, epochs, the epoch whose weights were kept, the last learning-rate cut, test
AUROC), then per arm (the run name without its ", seed N" / "seed N") the mean and standard
deviation of the test AUROC over its seeds.

    .venv/bin/python benchmarks/run_costs.py RUNS_DIR [RUNS_DIR ...]

``kept before the last cut`` marks a run whose early stopping ended training within the patience
after a learning-rate cut and restored weights from before that cut: the cut never got the epochs
to show its effect.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mura_lib.runs import RunStore  # noqa: E402


def arm_of(name: str) -> str:
    name = re.sub(r" \(\d+ px, seed \d+\)$", "", name)
    if re.fullmatch(r"seed \d+", name):
        return "baseline"
    return re.sub(r", seed \d+$", "", name)


def runs_table(runs_dir: Path) -> pd.DataFrame:
    store = RunStore(runs_dir)
    listed = store.list()
    rows = []
    for key in listed.loc[listed["status"] == "complete", "key"]:
        run = store.load(key)
        history = run.history
        rates = history["learning_rate"].to_numpy()
        cuts = [int(e) + 1 for e, (a, b) in enumerate(zip(rates[:-1], rates[1:])) if b < a * 0.99]
        last_cut = cuts[-1] + 1 if cuts else None  # first epoch (1-based) at the lower rate
        best = run.training["best_epoch"]
        rows.append(
            {
                "run": run.name,
                "arm": arm_of(run.name),
                "seed": run.config.seed,
                "px": run.config.image_size,
                "seconds": run.environment.get("train_seconds_last_session"),
                "epochs": len(history),
                "best epoch": best,
                "last cut": last_cut,
                "kept before the last cut": bool(last_cut and best < last_cut and run.training["stopped_early"]),
                "test AUROC": run.metrics.get("auroc"),
            }
        )
    return pd.DataFrame(rows).sort_values(["arm", "seed"])


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv:
        print(__doc__)
        return 2
    pd.set_option("display.width", 200)
    for folder in argv:
        table = runs_table(Path(folder))
        print(f"== {folder}: {len(table)} runs, {table['seconds'].sum():.0f} s of training in all")
        print(table.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
        per_arm = table.groupby("arm")["test AUROC"].agg(["count", "mean", "std"])
        print("\nTest AUROC over seeds, per arm:")
        print(per_arm.to_string(float_format=lambda v: f"{v:.3f}"))
        print(
            f"\nMedian seconds per run: {table['seconds'].median():.1f}; runs that restored weights from before "
            f"their last learning-rate cut: {int(table['kept before the last cut'].sum())} of {len(table)}\n"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
