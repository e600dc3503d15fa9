"""Sentences the thesis draws from its comparisons, written once so that the abstract, the
results chapters and the conclusions say the same thing about the same numbers.

Every verdict word of a comparison of two configurations ("higher", "lower", "undetermined")
comes from the interval of :class:`mura_lib.configurations.ConfigurationComparison`, which covers
both the randomness of training (the seeds of each configuration) and the sampling of test
studies, adjusted for the comparisons of its group (Holm).
"""

from __future__ import annotations

import math

MINUS = "\u2212"


def capitalised(text: str) -> str:
    """``text`` with its first letter upper case, for a sentence that opens with a name
    ("ab-initio CNN source, frozen against ..." after another sentence)."""
    return text[:1].upper() + text[1:]


def signed(value: float, digits: int = 3) -> str:
    if value is None or not math.isfinite(value):
        return "n/a"
    return f"{value + 0.0:+.{digits}f}".replace("-", MINUS)


def plain(value: float, digits: int = 3) -> str:
    if value is None or not math.isfinite(value):
        return "n/a"
    return f"{value + 0.0:.{digits}f}".replace("-", MINUS)


def join_words(words: list[str]) -> str:
    words = list(words)
    if not words:
        return ""
    if len(words) == 1:
        return words[0]
    return ", ".join(words[:-1]) + " and " + words[-1]


def _of_configurations(comparison) -> bool:
    """Whether ``comparison`` compares two configurations over seeds (else two single runs)."""
    return hasattr(comparison, "seeds_a")


def difference_clause(comparison, metric: str = "auroc") -> str:
    """``−0.041 (95% interval −0.063 to −0.019)`` (a ``paired interval`` for two single runs)."""
    diff, low, high = (getattr(comparison, f"{metric}_{k}") for k in ("diff", "low", "high"))
    percent = f"{comparison.confidence * 100:.4g}%"
    kind = "interval" if _of_configurations(comparison) else "paired interval"
    return f"{signed(diff)} ({percent} {kind} {signed(low)} to {signed(high)})"


def seeds_words(comparison) -> str:
    """``3 seeds each`` or ``3 and 2 seeds``."""
    a, b = len(comparison.seeds_a), len(comparison.seeds_b)
    return f"{a} seeds each" if a == b else f"{a} and {b} seeds"


def verdict_sentence(comparison, *, metric: str = "auroc") -> str:
    """One comparison as a sentence: the verdict and the difference with its interval; for two
    configurations, the mean difference over seeds and how often a seed of one beat a seed of the
    other."""
    verdict = comparison.verdict if metric == "auroc" else comparison.kappa_verdict
    label = "AUROC" if metric == "auroc" else "Cohen's kappa"
    a, b = comparison.name_a, comparison.name_b
    if not _of_configurations(comparison):
        if verdict == "no detectable difference":
            return f"{a} against {b}: no detectable difference in {label}, {difference_clause(comparison, metric)}."
        return f"{a} against {b}: {label} {verdict}, {difference_clause(comparison, metric)}."
    head = f"{a} against {b} (over {seeds_words(comparison)})"
    text = f"{head}: {label} {verdict}, mean difference {difference_clause(comparison, metric)}"
    if metric == "auroc":
        text += f"; a seed of {a} beat a seed of {b} in {comparison.p_seed_beats:.0%} of pairs"
    return text + "."


def group_verdicts(comparisons: dict) -> dict[str, list[str]]:
    """The A-labels of a group's comparisons, by AUROC verdict."""
    verdicts = {"higher": [], "lower": [], "undetermined": []}
    for comparison in comparisons.values():
        verdicts[comparison.verdict].append(comparison.name_a)
    return verdicts


def group_summary(comparisons: dict, *, reference: str = "the baseline") -> str:
    """A short summary of a group of comparisons against one reference, from their verdicts."""
    if not comparisons:
        return "This build made no comparison of this kind."
    verdicts = group_verdicts(comparisons)
    parts = []
    if verdicts["higher"]:
        parts.append(f"{join_words(verdicts['higher'])} scored a higher mean AUROC than {reference}")
    if verdicts["lower"]:
        parts.append(f"{join_words(verdicts['lower'])} scored a lower mean AUROC than {reference}")
    if verdicts["undetermined"]:
        names = verdicts["undetermined"]
        parts.append(f"for {join_words(names)} the difference from {reference} is undetermined")
    first = next(iter(comparisons.values()))
    text = "; ".join(parts) + (
        f" (over {seeds_words(first)}; intervals over seeds and test studies, adjusted for the "
        f"{len(comparisons)} comparisons of this group)."
        if len(comparisons) > 1
        else f" (over {seeds_words(first)}; an interval over seeds and test studies)."
    )
    return capitalised(text)


def stopping_sentence(runs: dict) -> str:
    """How the runs of a group ended: their fixed budget, on a plateau, or at the epoch cap (said
    plainly)."""
    total = len(runs)
    fixed = [run for run in runs.values() if getattr(run, "training", {}).get("schedule") == "cosine"]
    budgets = {run.training["cap"] for run in fixed}
    if fixed and len(fixed) == total:
        budget = " or ".join(str(b) for b in sorted(budgets))
        return f"Every training ran its fixed budget of {budget} epochs, with no early stopping."
    capped = [label for label, run in runs.items() if run.hit_cap]
    if not capped:
        return f"All {total} trainings stopped on a plateau of the smoothed validation AUROC before the epoch cap."
    if len(capped) == total:
        return (
            f"All {total} trainings ran to the epoch cap without reaching a plateau of the validation AUROC, "
            "so longer training might change these results."
        )
    rest = "the other" if total - len(capped) == 1 else "the others"
    return (
        f"{join_words(capped)} ran to the epoch cap without reaching a plateau ({len(capped)} of {total}); "
        f"{rest} stopped on a plateau of the smoothed validation AUROC."
    )


def reference_name(plan, group: str) -> str:
    """What a group's comparisons are made against, as the text names it."""
    if group == "image size":
        return f"the baseline at {plan.settings.image_size} px"
    if group == "regularisation":
        return "the network with all four regularisers"
    if group == "development":
        return "the baseline on the validation subset"
    if group == "transfer":
        return "the same backbone trained from random initial weights"
    return "the baseline"


def finding(plan, group: str) -> str:
    """The summary of one group of comparisons, as every page that reports it says it."""
    return group_summary(plan.comparisons(group), reference=reference_name(plan, group))


def details(plan, group: str) -> str:
    """Every comparison of a group, one sentence each (the text puts the first after a colon, so
    only the later ones start with a capital)."""
    return comparison_sentences(plan.comparisons(group).values())


def comparison_sentences(comparisons) -> str:
    """One :func:`verdict_sentence` per comparison, as a run of sentences: the first follows a
    colon in the text, the later ones start with a capital."""
    sentences = [verdict_sentence(c) for c in comparisons]
    return " ".join(s if i == 0 else capitalised(s) for i, s in enumerate(sentences))


def collapse_sentence(runs: dict) -> str:
    """Flag networks whose test predictions collapsed: one probability for every study (nothing
    learned), or one call at the threshold of 0.5 for (nearly) every study, which makes kappa 0
    whatever the AUROC.  Empty when none did."""
    notes = []
    for label, run in runs.items():
        studies = run.study_predictions("test")
        probability = studies["probability"].to_numpy(dtype=float)
        abnormal = float((probability > 0.5).mean())
        if probability.max() - probability.min() < 1e-6:
            notes.append(f"{label} gave every test study the same probability: it learned nothing")
        elif abnormal in (0.0, 1.0):
            call = "abnormal" if abnormal == 1.0 else "normal"
            notes.append(
                f"{label} called every test study {call} at the threshold of 0.5, so its kappa is zero whatever its "
                "AUROC: its probabilities rank the studies but sit on one side of the threshold"
            )
        elif abnormal < 0.05 or abnormal > 0.95:
            notes.append(
                f"{label} called {abnormal:.0%} of the test studies abnormal at 0.5 (the test set holds "
                f"{studies['label'].mean():.0%}), so its kappa says more about its calibration than its ranking"
            )
    if not notes:
        return ""
    return "Collapsed predictions, flagged: " + "; ".join(notes) + "."


# How each chapter names the data it was built on.
DATA_WORDS = {"mura": "real MURA-v1.1 radiographs", "synthetic": "synthetic radiographs"}


def data_words(data_source: str) -> str:
    """``"real MURA-v1.1 radiographs"`` or ``"synthetic radiographs"``."""
    if data_source not in DATA_WORDS:
        raise ValueError(f"data_source must be 'synthetic' or 'mura', got {data_source!r}")
    return DATA_WORDS[data_source]


def headline_values(headline) -> dict:
    """The overall row of a metrics table as glue values: AUROC and kappa with their intervals
    and the number of studies."""
    values = {name.replace("_", "-"): headline[name] for name in ("auroc", "auroc_low", "auroc_high")}
    values |= {name.replace("_", "-"): headline[name] for name in ("kappa", "kappa_low", "kappa_high")}
    return values | {"studies": int(headline["studies"])}


def group_texts(plan, group: str, runs: dict) -> dict:
    """The sentences of a results group: its verdict, the details of each comparison, how
    training ended and which predictors collapsed."""
    return {
        "summary": finding(plan, group),
        "details": details(plan, group),
        "stopping": stopping_sentence(runs),
        "collapse": collapse_sentence(runs),
    }


def multiview_facts(run, comparison, images) -> dict:
    """The numbers and sentences the text quotes about the multi-view model, by name: its views per
    study and how many studies (of ``images``, the dataset's image table) have more, its input size,
    epoch cap and epochs run, how training ended, its test AUROC against the image model's
    (``comparison``: multi-view against the mean of views, over the seeds of each) and its verdict."""
    from .tables import plural

    config = run.config
    views = images.groupby("study_path").size()
    return {
        "max-views": config.max_views,
        "truncated": int((views > config.max_views).sum()),
        "mv-size": config.image_size,
        "mv-epochs": plural(config.epochs, "epoch"),
        "mv-epochs-run": run.training["epochs"],
        "mv-stopping": (
            "its fixed budget"
            if run.training.get("schedule") == "cosine"
            else f"the plateau rules stopped it before its cap of {plural(config.epochs, 'epoch')}"
            if run.training["stopped_early"]
            else "its cap; the plateau rules did not stop it"
        ),
        "mean-auroc": comparison.auroc_b,
        "mv-auroc": comparison.auroc_a,
        "mv-verdict": verdict_sentence(comparison),
    }
