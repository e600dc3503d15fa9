"""Coverage of the intervals of :func:`mura_lib.configurations.compare_configurations`.

Simulates comparisons of two configurations whose true difference is known, with both sources
of noise of a real comparison: the sample of test studies and the training seed.  Study i has a
label y_i (abnormal with probability ``--prevalence``) and a latent difficulty z_i ~ N(0, 1)
shared by every run; run r of arm X scores it

    s_ri = (mu_X + u_r) * y_i + z_i + e_ri,   u_r ~ N(0, sigma_seed),  e_ri ~ N(0, tau),

u_r the seed's effect on the separation, e_ri the run's own noise per study.  The probability is
sigmoid(s_ri - c), so kappa's decision ``probability > 0.5`` is ``s_ri > c``.  The true
configuration-level AUROC of arm X is its expectation over seeds and over the population of
studies, Phi(mu_X / sqrt(2 (1 + tau^2) + sigma_seed^2)); the true kappa is the population kappa
of a run with separation mu_X + u, averaged over u by Gauss-Hermite quadrature.

For k = 2, 3 and 5 seeds per arm, with and without a true effect, the script reports the share
of experiments whose interval contains the true difference, for the plain two-level bootstrap,
with the deviations stretched by sqrt(k / (k - 1)) (``rescaled``), and with the seed part also
scaled by sqrt(nu / chi2_nu) (``t``, the library's method); every method uses the same resamples.

    python benchmarks/coverage_configurations.py                 # about 3.5 minutes on one core
    python benchmarks/coverage_configurations.py --experiments 100 --resamples 500   # a quick look
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mura_lib import configurations  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "cpu_coverage_configurations.txt"


def population_kappa(separation, threshold: float, tau: float, prevalence: float):
    """Cohen's kappa over the population of studies of a run with the given separation."""
    spread = np.sqrt(1 + tau**2)
    sensitivity = stats.norm.sf((threshold - separation) / spread)
    specificity = stats.norm.cdf(threshold / spread)
    positive_rate = prevalence * sensitivity + (1 - prevalence) * (1 - specificity)
    observed = prevalence * sensitivity + (1 - prevalence) * specificity
    expected = positive_rate * prevalence + (1 - positive_rate) * (1 - prevalence)
    return (observed - expected) / (1 - expected)


def truth(mu: float, sigma_seed: float, args) -> dict:
    """The configuration-level AUROC and kappa of an arm with mean separation ``mu`` and seed
    effects of SD ``sigma_seed``."""
    auroc = stats.norm.cdf(mu / np.sqrt(2 * (1 + args.tau**2) + sigma_seed**2))
    nodes, weights = np.polynomial.hermite_e.hermegauss(80)
    kappa = np.sum(weights * population_kappa(mu + sigma_seed * nodes, args.cut, args.tau, args.prevalence))
    return {"auroc": float(auroc), "kappa": float(kappa / np.sqrt(2 * np.pi))}


def simulate(rng: np.random.Generator, mus: list[float], k: int, args):
    """Labels and the probabilities of k runs of each arm (A's runs first) on one test set."""
    n = args.studies
    labels = (rng.random(n) < args.prevalence).astype(int)
    while labels.min() == labels.max():
        labels = (rng.random(n) < args.prevalence).astype(int)
    shared = rng.normal(size=n)
    sigmas = np.repeat([args.sigma_seed_a, args.sigma_seed], k)
    separation = np.repeat(mus, k) + sigmas * rng.normal(size=2 * k)
    scores = separation[:, None] * labels + shared + args.tau * rng.normal(size=(2 * k, n))
    return labels, 1 / (1 + np.exp(-(scores - args.cut)))


def run_cell(rng, k: int, effect: bool, args) -> tuple[dict, dict]:
    mus = [args.mu + (args.effect if effect else 0.0), args.mu]
    true_a, true_b = truth(mus[0], args.sigma_seed_a, args), truth(mus[1], args.sigma_seed, args)
    target = {metric: true_a[metric] - true_b[metric] for metric in configurations.METRICS}
    covered = {(c, m): 0 for c in configurations.CORRECTIONS for m in configurations.METRICS}
    widths = {key: 0.0 for key in covered}
    decided = {key: 0 for key in covered}
    estimates = {m: [] for m in configurations.METRICS}
    seed_sd, single_sd = [], []
    for _ in range(args.experiments):
        labels, probabilities = simulate(rng, mus, k, args)
        counts = configurations._resample_counts(rng, args.studies, args.resamples)
        metrics = configurations._run_metrics(labels, probabilities, counts, 0.5)
        draws = configurations._comparison_draws(metrics, k, rng, args.resamples, configurations.CORRECTIONS)
        for metric in configurations.METRICS:
            point = metrics[metric][0]
            estimates[metric].append(point[:k].mean() - point[k:].mean())
            for correction in configurations.CORRECTIONS:
                low, high = configurations._percentile_interval(draws[correction][metric], args.confidence)
                covered[correction, metric] += low <= target[metric] <= high
                widths[correction, metric] += high - low
                decided[correction, metric] += low > 0 or high < 0
        auroc, resampled = metrics["auroc"]
        seed_sd.append(np.var(auroc[k:], ddof=1))
        single_sd.append(np.std(resampled[k]))
    e = args.experiments
    row = {"seeds": k, "true effect": effect}
    for metric in configurations.METRICS:
        row[f"{metric} truth"] = target[metric]
        row[f"{metric} bias"] = np.mean(estimates[metric]) - target[metric]
        for correction in configurations.CORRECTIONS:
            row[f"{metric} {correction}"] = covered[correction, metric] / e
            row[f"{metric} {correction} width"] = widths[correction, metric] / e
            row[f"{metric} {correction} decided"] = decided[correction, metric] / e
    return row, {"seed_var": float(np.mean(seed_sd)), "study_sd": float(np.mean(single_sd))}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--experiments", type=int, default=800, help="simulated comparisons per cell")
    parser.add_argument("--studies", type=int, default=900)
    parser.add_argument("--resamples", type=int, default=1000)
    parser.add_argument("--seeds", type=int, nargs="+", default=[2, 3, 5], help="training seeds per arm")
    parser.add_argument("--confidence", type=float, default=0.95)
    parser.add_argument("--prevalence", type=float, default=0.45, help="share of abnormal studies")
    parser.add_argument("--mu", type=float, default=1.65, help="arm B's mean separation (AUROC about 0.85)")
    parser.add_argument("--effect", type=float, default=0.2, help="arm A's extra separation in the effect cells")
    parser.add_argument("--sigma-seed", type=float, default=0.2, help="SD of a seed's effect on the separation")
    parser.add_argument(
        "--sigma-seed-a", type=float, default=None, help="arm A's seed SD, if it differs from arm B's (--sigma-seed)"
    )
    parser.add_argument("--tau", type=float, default=0.5, help="SD of a run's own noise per study")
    parser.add_argument("--cut", type=float, default=0.8, help="score at which the probability is 0.5")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    if args.sigma_seed_a is None:
        args.sigma_seed_a = args.sigma_seed
    command = "python benchmarks/coverage_configurations.py " + " ".join(argv if argv is not None else sys.argv[1:])
    rng = np.random.default_rng(args.seed)
    start = time.perf_counter()
    rows, spreads = [], []
    for k in args.seeds:
        for effect in (False, True):
            row, spread = run_cell(rng, k, effect, args)
            rows.append(row)
            spreads.append(spread)
            print(f"k={k} effect={effect}: {time.perf_counter() - start:.0f} s", file=sys.stderr, flush=True)
    table = pd.DataFrame(rows)
    true_a, true_b = truth(args.mu + args.effect, args.sigma_seed_a, args), truth(args.mu, args.sigma_seed, args)
    lines = [
        f"# {command.strip()}",
        f"# {args.experiments} experiments per cell, {args.studies} studies, {args.resamples} resamples, "
        f"{args.confidence:.0%} percentile intervals; seed {args.seed}",
        f"# model: prevalence {args.prevalence}, mu_B {args.mu}, effect {args.effect} (separation), "
        f"sigma_seed {args.sigma_seed_a} (A) {args.sigma_seed} (B), tau {args.tau}, cut {args.cut}",
        f"# true AUROC: A {true_a['auroc']:.4f} (with effect), B {true_b['auroc']:.4f}; "
        f"true kappa: A {true_a['kappa']:.4f}, B {true_b['kappa']:.4f}",
        "# calibration (arm B): SD of a run's AUROC over seeds on one test set "
        f"{np.sqrt(np.mean([s['seed_var'] for s in spreads])):.4f}; "
        f"bootstrap SD of one run's AUROC over studies {np.mean([s['study_sd'] for s in spreads]):.4f}",
        f"# Monte Carlo SE of a coverage near 0.95: {np.sqrt(0.95 * 0.05 / args.experiments):.3f}",
        "",
    ]
    for metric in configurations.METRICS:
        shown = pd.DataFrame(
            {
                "seeds": table["seeds"],
                "effect": table["true effect"].map({False: "none", True: "yes"}),
                "truth": table[f"{metric} truth"].map("{:+.4f}".format),
                "bias": table[f"{metric} bias"].map("{:+.4f}".format),
                **{f"cover {c}": table[f"{metric} {c}"].map("{:.3f}".format) for c in configurations.CORRECTIONS},
                **{f"width {c}": table[f"{metric} {c} width"].map("{:.4f}".format) for c in configurations.CORRECTIONS},
                **{
                    f"excl. 0 {c}": table[f"{metric} {c} decided"].map("{:.3f}".format)
                    for c in configurations.CORRECTIONS
                },
            }
        )
        lines += [f"{metric.upper()} difference: coverage, mean width and share of intervals excluding 0", ""]
        lines += [shown.to_string(index=False), ""]
    lines.append(f"total {time.perf_counter() - start:.0f} s")
    text = "\n".join(lines) + "\n"
    print(text)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(text)


if __name__ == "__main__":
    main()
