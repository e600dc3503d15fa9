"""The values a chapter's text is built from: verdict words, differences with their intervals,
counts and short lists of names, never sentences.

A chapter glues these values and holds its sentences, and every variant of a sentence that
depends on what the build found, in its own Markdown (``{passage}`` blocks, resolved when the
book is staged: :func:`mura_thesis.presentation.resolve_passages`).  The verdict words are
those of :class:`mura_lib.configurations.ConfigurationComparison`: ``higher``, ``lower`` and
``undetermined``; an arm that this build does not train is ``absent``.
"""

from __future__ import annotations

import re

import numpy as np

from mura_lib.evaluation import COLLAPSED_MARGIN, FAR_FROM_PREVALENCE, calls_against_prevalence

from .tables import join_words, plain, plural, signed  # noqa: F401 (plain: for the chapters)

ABSENT = "absent"


# How a chapter names the data it was built on.
def headline_values(headline) -> dict:
    """The overall row of a metrics table as glue values: AUROC and kappa with their intervals
    and the number of studies."""
    values = {name.replace("_", "-"): headline[name] for name in ("auroc", "auroc_low", "auroc_high")}
    values |= {name.replace("_", "-"): headline[name] for name in ("kappa", "kappa_low", "kappa_high")}
    return values | {"studies": int(headline["studies"])}


def slug(name: str) -> str:
    """The part of a glue name that stands for an arm: ``"no L2"`` -> ``"no-l2"``."""
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


def comparison_values(comparison) -> dict:
    """What a chapter's text says about one comparison of two configurations: the verdicts for
    AUROC and kappa, the mean differences (A - B) with their 95% intervals, the share of pairs of
    seeds in which A's seed scored the higher AUROC, and the seeds per arm."""
    return {
        "verdict": comparison.verdict,
        "kappa-verdict": comparison.kappa_verdict,
        "diff": signed(comparison.auroc_diff),
        "low": signed(comparison.auroc_low),
        "high": signed(comparison.auroc_high),
        "kappa-diff": signed(comparison.kappa_diff),
        "kappa-low": signed(comparison.kappa_low),
        "kappa-high": signed(comparison.kappa_high),
        "beats": f"{comparison.p_seed_beats:.0%}",
        "seeds": len(comparison.seeds_a),
    }


def group_values(comparisons: dict, arms: list[str]) -> dict:
    """:func:`comparison_values` of each comparison, named ``<arm>-<value>`` after its A arm
    (:func:`slug`); an arm of ``arms`` that this build did not compare has the verdict
    ``absent``.  Also ``kappa-differs``: the arms whose kappa verdict differs from their AUROC
    verdict (``none`` if all agree), and ``kappa-agrees`` (``yes``/``no``)."""
    values = {}
    by_arm = {comparison.name_a: comparison for comparison in comparisons.values()}
    for arm in arms:
        comparison = by_arm.get(arm)
        if comparison is None:
            values[f"{slug(arm)}-verdict"] = ABSENT
            continue
        values |= {f"{slug(arm)}-{name}": value for name, value in comparison_values(comparison).items()}
    differing = [c.name_a for c in comparisons.values() if c.kappa_verdict != c.verdict]
    values["kappa-differs"] = join_words(differing) or "none"
    values["kappa-agrees"] = "no" if differing else "yes"
    return values


def _ended(run) -> str:
    """How one run's training ended: ``budget`` (the fixed budget of the cosine schedule),
    ``cap`` (ran to the epoch cap without a plateau) or ``plateau`` (stopped early)."""
    if run.training.get("schedule") == "cosine":
        return "budget"
    return "cap" if run.hit_cap else "plateau"


def how_training_ended(runs: dict) -> dict:
    """``ended``: ``budget`` when every run trained its fixed budget (cosine schedule), else
    ``plateau`` (all stopped early), ``cap`` (all ran to the epoch cap) or ``mixed``;
    ``budget``: the budgets in epochs (``20`` or ``20 or 30``); ``capped``: the runs that ran
    to their cap without a plateau (``none``)."""
    endings = {label: _ended(run) for label, run in runs.items()}
    kinds = set(endings.values())
    budgets = sorted({runs[label].training["cap"] for label, ended in endings.items() if ended == "budget"})
    capped = [label for label, ended in endings.items() if ended == "cap"]
    return {
        "ended": kinds.pop() if len(kinds) == 1 else "mixed" if kinds else "plateau",
        "budget": " or ".join(map(str, budgets)) or "none",
        "capped": join_words(capped) or "none",
    }


def operating_values(point: dict, calibration: dict) -> dict:
    """What the text quotes about one run's operating point and calibration, from
    :func:`mura_lib.evaluation.operating_point` and :func:`mura_lib.evaluation.calibration`:
    the chosen ``threshold``, kappa at 0.5 (``kappa-default``) and at the chosen threshold
    (``kappa-chosen``, both as text with a true minus), their difference with its interval (``kappa-diff``, ``kappa-low``,
    ``kappa-high``) and ``kappa-verdict`` (``higher``, ``lower``, ``undetermined``), the shares
    called abnormal (``called-default``, ``called-chosen``), the ``prevalence`` and the ``flag``
    of the calls at 0.5 (``far``, ``collapsed``, ``none``); the
    ``brier`` score, the ``ece`` and its ``bins``, the over-confidence with its interval and its
    ``confidence`` reading (``over``, ``under``, ``undetermined``), and the
    ``mean-probability``."""
    return {
        "threshold": point["threshold"],
        "validation-studies": point["validation_studies"],
        "kappa-default": plain(point["kappa_default"]),
        "kappa-chosen": plain(point["kappa_chosen"]),
        "kappa-diff": signed(point["kappa_diff"]),
        "kappa-low": signed(point["kappa_low"]),
        "kappa-high": signed(point["kappa_high"]),
        "kappa-verdict": point["verdict"],
        "called-default": point["called_default"],
        "called-chosen": point["called_chosen"],
        "prevalence": point["prevalence"],
        "flag": point["flag"],
        "brier": calibration["brier"],
        "ece": calibration["ece"],
        "bins": calibration["bins"],
        "overconfidence": signed(calibration["overconfidence"]),
        "overconfidence-low": signed(calibration["overconfidence_low"]),
        "overconfidence-high": signed(calibration["overconfidence_high"]),
        "confidence": calibration["reading"],
        "mean-probability": calibration["mean_probability"],
    }


def call_flags(runs: dict, name=str) -> dict:
    """Runs whose share of test studies called abnormal at 0.5 is far from the prevalence
    (:func:`mura_lib.evaluation.calls_against_prevalence`): ``far`` and ``collapsed``, their
    names (``name`` of each label; ``none``), ``any-far`` and ``any-collapsed`` (``yes``/``no``),
    the distance that counts as far (``far-points``, percentage points), the share below which
    one side of the threshold counts as collapsed (``collapsed-percent``) and the range of the
    shares in whole percentages (``called-range``: ``41% to 63%``, or one share)."""
    flagged = {"far": [], "collapsed": []}
    shares = []
    for label, run in runs.items():
        calls = calls_against_prevalence(run.study_predictions("test"))
        shares.append(calls["called"])
        if calls["flag"] in flagged:
            flagged[calls["flag"]].append(name(label))
    values = {"far-points": round(FAR_FROM_PREVALENCE * 100), "collapsed-percent": round(COLLAPSED_MARGIN * 100)}
    low, high = (f"{min(shares):.0%}", f"{max(shares):.0%}") if shares else ("n/a", "n/a")
    values["called-range"] = low if low == high else f"{low} to {high}"
    for flag, names in flagged.items():
        values |= {flag: join_words(names) or "none", f"any-{flag}": "yes" if names else "no"}
    return values


def _lists(prefix: str, comparisons, name) -> dict:
    """:func:`verdict_lists` with every name prefixed: ``PREFIX-higher``, ``PREFIX-any-higher``..."""
    return {f"{prefix}-{key}": value for key, value in verdict_lists(comparisons, name).items()}


def _transfer_name(comparison, pretraining: str) -> str:
    """``"ab-initio CNN source, fine-tuned"`` -> ``"ab-initio CNN (fine-tuned)"``."""
    backbone, _, mode = comparison.name_a.partition(f" {pretraining}, ")
    return f"{backbone} ({mode})" if mode else comparison.name_a


def _size_sides(plan) -> dict:
    """The smallest and the largest input size against the baseline's: ``size-smaller`` (pixels,
    0 if none), ``size-smaller-verdict`` (``absent`` if none), ``size-smaller-diff``; the same
    for ``size-larger``."""
    base = plan.settings.image_size
    sizes = {int(c.name_a.split()[0]): c for c in plan.comparisons("image size").values()}
    values = {}
    for side, chosen in (
        ("smaller", min((s for s in sizes if s < base), default=None)),
        ("larger", max((s for s in sizes if s > base), default=None)),
    ):
        comparison = sizes.get(chosen)
        values[f"size-{side}"] = chosen or 0
        values[f"size-{side}-verdict"] = comparison.verdict if comparison else ABSENT
        values[f"size-{side}-diff"] = signed(comparison.auroc_diff) if comparison else "n/a"
    return values


def findings(plan, headline) -> dict:
    """What the abstract and the conclusions say the build found, as values: whether the
    baseline separates the classes (``signal``: ``above`` chance or ``chance``), the seeds per
    configuration, the verdicts of the smallest and the largest input size against the
    baseline's, the regularisers whose removal lowered / raised the AUROC or left it
    undetermined, and the backbones (and modes) whose pretrained weights beat random initial
    weights (or not), with where the pretrained weights come from (``pretraining``)."""
    settings = plan.settings
    values = {
        "signal": "above" if headline["auroc_low"] > 0.5 else "chance",
        "seeds": len(settings.arm_seeds),
        "several-seeds": "yes" if len(settings.arm_seeds) > 1 else "no",
    }
    values |= _size_sides(plan)
    values |= _lists("reg", plan.comparisons("regularisation").values(), lambda c: c.name_a.removeprefix("no "))
    # ``no`` where the profile switched the experiment off (``regularisation: false``).
    values["reg-trained"] = "yes" if plan.trains("regularisation") else "no"
    transfer = list(plan.comparisons("transfer").values())
    values |= _lists("transfer", transfer, lambda c: _transfer_name(c, plan.pretraining))
    values["pretraining"] = plan.pretraining if transfer else ABSENT
    # The recommended choices that measurably improved / worsened the baseline, by short names.
    improved, worsened = [], []
    for comparison in plan.comparisons("image size").values():
        # The recommendation is the larger input: at a smaller size "lower" speaks for it.
        size, base = int(comparison.name_a.split()[0]), settings.image_size
        larger, smaller = max(size, base), min(size, base)
        name = f"a {larger}-pixel input rather than {smaller}"
        speaks_for = "higher" if size > base else "lower"
        if comparison.verdict != "undetermined":
            (improved if comparison.verdict == speaks_for else worsened).append(name)
    for comparison in plan.comparisons("regularisation").values():
        name = comparison.name_a.removeprefix("no ")
        {"lower": improved, "higher": worsened}.get(comparison.verdict, []).append(name)
    for comparison in transfer:
        name = f"pretrained weights for {_transfer_name(comparison, plan.pretraining)}"
        {"higher": improved, "lower": worsened}.get(comparison.verdict, []).append(name)
    values |= {"improved": join_words(improved) or "none", "any-improved": "yes" if improved else "no"}
    values |= {"worsened": join_words(worsened) or "none", "any-worsened": "yes" if worsened else "no"}
    return values


def seed_values(summary: dict, pairs: dict) -> dict:
    """The baseline over its seeds (``seeds``, ``mean``, ``sd`` with its 95% interval
    ``sd-low``/``sd-high``; ``several``: ``yes`` when there are two seeds or more) and the
    paired comparisons of single seeds against the first (``pairs``, how many of them
    ``detected`` a difference, ``pairs-detected``: ``none``, ``some`` or ``all``, and the
    differences, ``pair-diffs``)."""
    detected = sum(c.verdict != "undetermined" for c in pairs.values())
    share = "none" if detected == 0 else "all" if detected == len(pairs) else "some"
    return {
        "seeds": summary["n"],
        "several": "yes" if summary["n"] >= 2 else "no",
        "mean": summary["mean"],
        "sd": summary.get("sd", float("nan")),
        "sd-low": summary.get("sd_low", float("nan")),
        "sd-high": summary.get("sd_high", float("nan")),
        "pairs": len(pairs),
        "detected": detected,
        "pairs-detected": share if pairs else ABSENT,
        "pair-diffs": join_words([signed(c.auroc_diff) for c in pairs.values()]) or "none",
    }


def pretraining_values(plan) -> dict:
    """Where this build's pretrained weights come from (``pretraining``: ``source``,
    ``ImageNet`` or ``weights``), the backbones by name (``names``), the weights file
    (``weights-file``) and whether any backbone is a keras.applications network (``keras``)."""
    from .plan import BACKBONE_NAMES

    settings = plan.settings
    return {
        "pretraining": plan.pretraining,
        "names": join_words([BACKBONE_NAMES[backbone] for backbone in settings.backbones]),
        "weights-file": str(settings.pretrained_weights or "none"),
        "keras": "yes" if any(backbone != "cnn" for backbone in settings.backbones) else "no",
    }


def transfer_values(plan, runs: dict, sources: dict) -> dict:
    """The transfer section's findings as values: the pretrained arms against random initial
    weights (``transfer-higher`` etc., :func:`findings`' names), fine-tuned against frozen by
    backbone (``modes-…``), each backbone from random weights against the baseline CNN
    (``architecture-…``; ``architecture-other-size``: ``yes`` when the backbones trained at
    another input size than the baseline and so are not compared with it), how training ended and which runs' calls are far from the prevalence or collapsed (of ``runs``,
    :func:`call_flags`), and
    the source runs' study-type accuracy on their own test split (``source-accuracy``: one value,
    or the lowest ``to`` the highest) and whether every source run beat chance
    (``source-learned``, :func:`source_learned`)."""
    pretraining = plan.pretraining
    transfer = plan.comparisons("transfer").values()
    values = _lists("transfer", transfer, lambda c: _transfer_name(c, pretraining))
    modes = plan.comparisons("transfer modes").values()
    values |= _lists("modes", modes, lambda c: c.name_a.partition(f" {pretraining}, ")[0])
    architecture = plan.comparisons("architecture").values()
    values |= _lists("architecture", architecture, lambda c: c.name_a.removesuffix(" random init"))
    values |= how_training_ended(runs) | call_flags(runs)
    settings = plan.settings
    other_size = settings.backbone_size != settings.image_size
    values["architecture-other-size"] = (
        "yes" if other_size and any(b != "cnn" for b in settings.backbones) and not architecture else "no"
    )
    accuracies = sorted(run.metrics["accuracy"] for run in sources.values() if "accuracy" in run.metrics)
    values["source-learned"] = source_learned(sources)
    if not accuracies:
        values["source-accuracy"] = "n/a"
    elif accuracies[0] == accuracies[-1]:
        values["source-accuracy"] = f"{accuracies[0]:.3f}"
    else:
        values["source-accuracy"] = f"{accuracies[0]:.3f} to {accuracies[-1]:.3f}"
    return values


def source_learned(sources: dict, classes: int = 7, level: float = 0.05) -> str:
    """``yes`` when every source run's study-type accuracy on its test studies beats chance
    (``1/classes``) by a one-sided binomial test at ``level``; ``no`` otherwise; ``absent``
    without source runs."""
    from scipy.stats import binomtest

    if not sources:
        return ABSENT
    for run in sources.values():
        studies = int(run.metrics.get("studies", 0))
        if not studies or "accuracy" not in run.metrics:
            return "no"
        correct = round(run.metrics["accuracy"] * studies)
        if binomtest(correct, studies, 1 / classes, alternative="greater").pvalue >= level:
            return "no"
    return "yes"


def verdict_lists(comparisons, name=None, *, differences: bool = False) -> dict:
    """The A arms of ``comparisons`` by verdict, as word lists: ``higher``, ``lower`` and
    ``undetermined``, ``none`` when empty, each with ``any-…`` (``yes``/``no``).  ``name`` names an
    arm (its ``name_a`` by default); with ``differences`` each name is followed by the mean
    difference in AUROC and its 95% interval: ``3 blocks (−0.073; −0.181 to +0.028)``."""
    lists = {"higher": [], "lower": [], "undetermined": []}
    for comparison in comparisons:
        text = name(comparison) if name else comparison.name_a
        if differences:
            text += (
                f" ({signed(comparison.auroc_diff)}; {signed(comparison.auroc_low)} to {signed(comparison.auroc_high)})"
            )
        lists[comparison.verdict if comparison.verdict in lists else "undetermined"].append(text)
    values = {}
    for verdict, names in lists.items():
        values[verdict] = join_words(names) or "none"
        values[f"any-{verdict}"] = "yes" if names else "no"
    return values


def size_values(plan) -> dict:
    """The input sizes against the baseline's (:func:`verdict_lists` with differences, each size
    named ``32 pixels``), and the smallest and largest size's verdicts under ``smaller-…`` and
    ``larger-…`` (as in :func:`findings`)."""
    comparisons = sorted(plan.comparisons("image size").values(), key=lambda c: int(c.name_a.split()[0]))
    lists = verdict_lists(comparisons, lambda c: f"{c.name_a.split()[0]} pixels", differences=True)
    return lists | {key.removeprefix("size-"): value for key, value in _size_sides(plan).items()}


def training_values(run) -> dict:
    """How one run's training went: ``epochs`` trained, the ``cap`` (its budget or epoch cap),
    how it ``ended`` (``budget``, ``cap`` or ``plateau``), which weights it ``kept`` (``last``,
    ``average`` of epochs ``kept-from`` to ``kept-to``, or ``best``) and its ``best-epoch``."""
    training = run.training
    kept_epochs = training.get("kept_epochs") or []
    kept = ("last" if len(kept_epochs) == 1 else "average") if kept_epochs else "best"
    return {
        "epochs": len(run.history),
        "cap": training["cap"],
        "ended": _ended(run),
        "kept": kept,
        "kept-from": kept_epochs[0] if kept_epochs else 0,
        "kept-to": kept_epochs[-1] if kept_epochs else 0,
        "best-epoch": training["best_epoch"],
    }


def multiview_values(run, comparison, images) -> dict:
    """What the text quotes about the multi-view model: views per study (``max-views``) and how
    many studies (of ``images``, the dataset's image table) have more (``truncated``), its input
    size, epoch cap and epochs run (``8 epochs``), how training ended (``mv-ended``: ``budget``, ``plateau`` or
    ``cap``), its mean test AUROC against the image model's with averaged views (``comparison``:
    multi-view against the mean of views, over the seeds of each) and the comparison's values
    (:func:`comparison_values`, named ``mv-…``)."""
    config = run.config
    views = images.groupby("study_path").size()
    if run.training.get("schedule") == "cosine":
        ended = "budget"
    else:
        ended = "plateau" if run.training["stopped_early"] else "cap"
    return {
        "max-views": config.max_views,
        "truncated": int((views > config.max_views).sum()),
        "mv-size": config.image_size,
        "mv-epochs": config.epochs,
        "mv-epochs-run": plural(run.training["epochs"], "epoch"),
        "mv-ended": ended,
        "mean-auroc": comparison.auroc_b,
        "mv-auroc": comparison.auroc_a,
    } | {f"mv-{name}": value for name, value in comparison_values(comparison).items()}


# --- detection by finding and the evidence on shortcuts (synthetic data only) -----------------


def _interval(low, high) -> str:
    return f"{plain(low)} to {plain(high)}"


def _spread(values) -> str:
    low, high = plain(min(values), 2), plain(max(values), 2)
    return low if low == high else f"{low} to {high}"


def finding_values(table) -> dict:
    """Detection by finding (:func:`mura_lib.analysis.detection_by_finding`): ``findings``
    (``measured``, ``empty`` when no abnormal test study has a recorded finding, ``absent`` on
    data without ground truth), the findings whose AUROC interval against the normal studies lies
    above 0.5 (``detected``), includes it (``undecided``) or lies below it (``below``), each named
    with its AUROC and interval (``fractures (AUROC 0.812; 0.760 to 0.861)``), those with too few
    studies for an interval (``too-few``), each with ``any-…``; and the sensitivity at 0.5
    (``sensitivity``: ``same`` on every finding, ``spread`` between the subtle and the
    conspicuous findings, or ``absent``); and for each finding by name (``fracture``, ...) where it
    falls (``detected``, ``undecided``, ``below``, ``too-few``, or ``absent`` when no test study
    shows it or there is no truth), with ``…-auroc`` and ``…-interval``."""
    from mura_lib.analysis import (
        AUROC,
        CONSPICUOUS_FINDINGS,
        FINDING,
        FINDING_NAMES,
        HIGH,
        LOW,
        SENSITIVITY,
        SUBTLE_FINDINGS,
    )

    values = {"findings": ABSENT if table is None else "empty" if table.empty else "measured"}
    for finding in FINDING_NAMES:
        values |= {finding: ABSENT, f"{finding}-auroc": "n/a", f"{finding}-interval": "n/a"}
    groups = {"detected": [], "undecided": [], "below": [], "too-few": []}
    sensitivity = {"sensitivity": ABSENT, "sensitivity-all": "n/a", "sensitivity-subtle": "n/a"}
    sensitivity["sensitivity-conspicuous"] = "n/a"
    if values["findings"] == "measured":
        for _, row in table.iterrows():
            name = FINDING_NAMES.get(row[FINDING], row[FINDING])
            values[f"{row[FINDING]}-auroc"] = plain(row[AUROC])
            if not np.isfinite(row[LOW]):
                groups["too-few"].append(name)
                values[row[FINDING]] = "too-few"
                continue
            named = f"{name} (AUROC {plain(row[AUROC])}; {_interval(row[LOW], row[HIGH])})"
            group = "detected" if row[LOW] > 0.5 else "below" if row[HIGH] < 0.5 else "undecided"
            groups[group].append(named)
            values[row[FINDING]] = group
            values[f"{row[FINDING]}-interval"] = _interval(row[LOW], row[HIGH])
        subtle = table.loc[table[FINDING].isin(SUBTLE_FINDINGS), SENSITIVITY]
        conspicuous = table.loc[table[FINDING].isin(CONSPICUOUS_FINDINGS), SENSITIVITY]
        if len(subtle) and len(conspicuous):
            same = table[SENSITIVITY].nunique() == 1
            sensitivity = {
                "sensitivity": "same" if same else "spread",
                "sensitivity-all": plain(table[SENSITIVITY].iloc[0], 2),
                "sensitivity-subtle": _spread(subtle),
                "sensitivity-conspicuous": _spread(conspicuous),
            }
    for group, names in groups.items():
        values[f"findings-{group}"] = join_words(names) or "none"
        values[f"findings-any-{group}"] = "yes" if names else "no"
    return values | sensitivity


def conspicuity_values(table, gaps: dict | None) -> dict:
    """Detection by conspicuity third within each subtle finding
    (:func:`mura_lib.analysis.detection_by_conspicuity` with ``per_finding``,
    :func:`mura_lib.analysis.conspicuity_gaps`): ``conspicuity`` (``measured``, ``too-few`` when no
    finding has enough studies to cut, or ``absent``), and the findings whose most conspicuous
    third scores a higher AUROC than the least conspicuous one (``higher``: the interval of the
    difference above 0), a lower one (``lower``) or an undetermined one (``undetermined``), each
    named with the difference and its interval (``lesions (+0.210; +0.050 to +0.370)``), those too
    few to cut (``uncut``), each with ``any-…``."""
    from mura_lib.analysis import FINDING_NAMES

    values = {"conspicuity": ABSENT if table is None or gaps is None else "too-few" if table.empty else "measured"}
    groups = {"higher": [], "lower": [], "undetermined": [], "uncut": []}
    for finding, gap in (gaps or {}).items():
        name = FINDING_NAMES.get(finding, finding)
        if gap is None or not np.isfinite(gap["low"]):
            groups["uncut"].append(name)
            continue
        verdict = "higher" if gap["low"] > 0 else "lower" if gap["high"] < 0 else "undetermined"
        groups[verdict].append(f"{name} ({signed(gap['gap'])}; {signed(gap['low'])} to {signed(gap['high'])})")
    for group, names in groups.items():
        values[group] = join_words(names) or "none"
        values[f"any-{group}"] = "yes" if names and values["conspicuity"] == "measured" else "no"
    return values


def localisation_values(summary) -> dict:
    """Grad-CAM against the finding's box (:func:`mura_lib.explain.localisation_summary`): ``loc``
    (``measured``, ``flat`` when every map is zero everywhere, ``empty`` when no test view shows a
    boxed finding, ``absent`` without ground truth), ``views`` (scored), and the findings whose maps put more of their mass inside the box than a
    uniform map would (``inside``: the interval of the mean difference above 0), less (``outside``)
    or neither detectably (``undetermined``), each named with the two shares (``hardware (0.412
    against 0.080)``), those with too few views for an interval (``too-few``), each with ``any-…``."""
    from mura_lib.analysis import FINDING_NAMES

    values = {"loc": ABSENT if summary is None else "empty" if summary.empty else "measured", "views": 0}
    if values["loc"] == "measured" and summary["images"].sum() == 0:
        values["loc"] = "flat"  # every map is zero everywhere: nothing to score
    groups = {"inside": [], "outside": [], "undetermined": [], "too-few": []}
    if values["loc"] in ("measured", "flat"):
        values["views"] = int(summary["views"].sum())
    if values["loc"] == "measured":
        for _, row in summary.iterrows():
            name = FINDING_NAMES.get(row["finding"], row["finding"])
            if not np.isfinite(row["low"]):
                groups["too-few"].append(name)
                continue
            group = "inside" if row["low"] > 0 else "outside" if row["high"] < 0 else "undetermined"
            groups[group].append(f"{name} ({plain(row['share'])} against {plain(row['area'])})")
    for group, names in groups.items():
        values[group] = join_words(names) or "none"
        values[f"any-{group}"] = "yes" if names else "no"
    return values


def shortcut_values(evidence) -> dict:
    """The evidence on shortcuts (:class:`mura_lib.analysis.ShortcutEvidence`) as values.

    Hardware and casts (``sc-…``): ``sc`` (``measured`` or ``absent``), the studies compared, the
    AUROC of the abnormal studies with and without them against the normal studies, their
    difference with its interval, the verdict (``sc-verdict``: ``higher`` when the studies with
    hardware or a cast score higher, ``lower``, ``undetermined``, or ``too-few``) and whether the
    studies without them are still told from normal ones (``sc-without-detected``), and what that
    means for a map over hardware or a cast (``sc-reading``: ``partial`` when the network finds
    them more easily but also the other abnormalities, ``shortcut`` when it cannot be shown to
    find the others, ``none`` without a preference, ``absent``).
    The markers removed (``mk-…``): ``mk`` (``measured`` or ``absent``), how many images carry one,
    how far their probabilities moved, how many studies' calls flipped, whether the images without
    a marker reproduced their stored probabilities (``mk-noise``: ``zero``, ``rounding`` or
    ``none``), and the paired comparison of the AUROC (``mk-verdict``, ``mk-diff``...).
    The views of the Grad-CAM figure (``shown``: ``yes``/``no``; ``shown-views``,
    ``shown-conspicuous``, ``shown-marked``)."""
    shortcut, comparison, summary, shown = evidence.shortcut, evidence.comparison, evidence.summary, evidence.shown
    values = {"sc": ABSENT, "sc-verdict": ABSENT, "sc-without-detected": "no", "sc-reading": ABSENT}
    values |= {f"sc-{key}": "n/a" for key in ("normal", "with", "without", "auroc-with", "auroc-without")}
    values |= {f"sc-{key}": "n/a" for key in ("gap", "gap-low", "gap-high")}
    if shortcut is not None:
        values |= {
            "sc": "measured",
            "sc-normal": shortcut["normal"],
            "sc-with": shortcut["with"],
            "sc-without": shortcut["without"],
            "sc-auroc-with": plain(shortcut["auroc_with"]),
            "sc-auroc-without": plain(shortcut["auroc_without"]),
            "sc-gap": signed(shortcut["gap"]),
            "sc-gap-low": signed(shortcut["gap_low"]),
            "sc-gap-high": signed(shortcut["gap_high"]),
            "sc-without-detected": "yes" if shortcut["low_without"] > 0.5 else "no",
        }
        low, high = shortcut["gap_low"], shortcut["gap_high"]
        values["sc-verdict"] = (
            "too-few" if not np.isfinite(low) else "higher" if low > 0 else "lower" if high < 0 else "undetermined"
        )
        if values["sc-verdict"] == "higher":
            values["sc-reading"] = "partial" if values["sc-without-detected"] == "yes" else "shortcut"
        else:
            values["sc-reading"] = "none"
    values |= {"mk": ABSENT, "mk-verdict": ABSENT, "mk-noise": ABSENT}
    values |= {f"mk-{key}": "n/a" for key in ("marked", "images", "mean-abs", "p95", "mean", "flipped", "studies")}
    values |= {f"mk-{key}": "n/a" for key in ("flipped-share", "noise-value", "diff", "low", "high", "p")}
    if summary is not None and comparison is not None:
        noise = summary["unmarked_max_abs_change"]
        values |= {
            "mk": "measured",
            "mk-marked": summary["marked_images"],
            "mk-images": summary["images"],
            "mk-mean-abs": plain(summary["marked_mean_abs_change"]),
            "mk-p95": plain(summary["marked_p95_abs_change"]),
            "mk-mean": signed(summary["marked_mean_change"]),
            "mk-flipped": summary["flipped"],
            "mk-studies": summary["studies"],
            "mk-flipped-share": f"{100 * summary['flipped_share']:.1f}%",
            "mk-noise": "zero" if noise == 0 else "rounding" if np.isfinite(noise) else "none",
            "mk-noise-value": f"{noise:.1e}" if np.isfinite(noise) else "n/a",
            "mk-verdict": comparison.verdict,
            "mk-diff": signed(comparison.auroc_diff),
            "mk-low": signed(comparison.auroc_low),
            "mk-high": signed(comparison.auroc_high),
            "mk-p": "< 0.001" if comparison.delong_p < 0.001 else f"= {comparison.delong_p:.3f}",
        }
    values |= {"shown": "no", "shown-views": 0, "shown-conspicuous": 0, "shown-marked": 0}
    if shown is not None and len(shown):
        values |= {
            "shown": "yes",
            "shown-views": len(shown),
            "shown-conspicuous": int((shown["hardware"].astype(bool) | shown["cast"].astype(bool)).sum()),
            "shown-marked": int(shown["marker"].astype(bool).sum()),
        }
    return values
