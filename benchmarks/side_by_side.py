"""Runs per hour on this CPU: one run at a time on every core, against one single-threaded run
per core side by side (what a build does by default).

Trains the same few runs of a profile's baseline (a short fixed budget, seeds 100, 101, ...)
twice into fresh run stores: with ``MURA_THREADS`` = the usable CPUs and one worker, then with
``MURA_THREADS=1`` and one worker per CPU; prints the wall time of each and the ratio.  Each
variant runs in a fresh process, so that its thread count holds from TensorFlow's start.

    .venv/bin/python benchmarks/side_by_side.py [--profile demo] [--runs 4] [--epochs 6] [--size 48]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[1]

CHILD = """
import io, json, sys, time
from pathlib import Path
from mura_thesis.executors import train_runs
from mura_thesis.profiles import load_profile, resolve_data
from mura_thesis.plan import PlanSettings, settings_from_parameters
project, profile_name, runs, epochs, size, workers, store = sys.argv[1:]
profile = load_profile(Path(project), profile_name)
settings = PlanSettings.from_dict(settings_from_parameters(profile.parameters, source=profile_name))
_, root = resolve_data(Path(project), profile, progress=False)
jobs = [
    (f"seed {seed}", settings.baseline_config(seed=seed, schedule="cosine", epochs=int(epochs), image_size=int(size)))
    for seed in range(100, 100 + int(runs))
]
started = time.perf_counter()
results = train_runs(jobs, data_root=root, runs_dir=store, cache_dir=Path(project) / "data" / "cache",
                     workers=int(workers), verbose="silent", out=io.StringIO())
assert all(r.status == "trained" for r in results), results
print(json.dumps({"wall": time.perf_counter() - started, "run_seconds": [r.seconds for r in results]}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", default="demo")
    parser.add_argument("--runs", type=int, default=4)
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--size", type=int, default=48)
    args = parser.parse_args()
    cpus = len(os.sched_getaffinity(0))
    print(f"# {' '.join(sys.argv)}; {cpus} usable CPUs; load before: {os.getloadavg()[0]:.2f}")
    walls = {}
    for label, threads, workers in (("one at a time", cpus, 1), ("side by side", 1, cpus)):
        with tempfile.TemporaryDirectory() as store:
            environment = os.environ | {"MURA_THREADS": str(threads), "TF_CPP_MIN_LOG_LEVEL": "3"}
            started = time.perf_counter()
            result = subprocess.run(
                [sys.executable, "-c", CHILD, str(PROJECT), args.profile, str(args.runs), str(args.epochs),
                 str(args.size), str(workers), store],
                capture_output=True, text=True, env=environment, cwd=PROJECT,
            )  # fmt: skip
            if result.returncode:
                raise SystemExit(result.stderr[-3000:])
            measured = json.loads(result.stdout.strip().splitlines()[-1])
            walls[label] = measured["wall"]
            per_run = sum(measured["run_seconds"]) / len(measured["run_seconds"])
            print(
                f"{label:<14} {threads} thread(s) x {workers} worker(s): {args.runs} runs in {measured['wall']:.0f} s "
                f"(process {time.perf_counter() - started:.0f} s; {per_run:.0f} s per run as each worker saw it)"
            )
    print(f"side by side trains {walls['one at a time'] / walls['side by side']:.2f} times as many runs per hour")


if __name__ == "__main__":
    main()
