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


def seed_sentence(summary: dict, seed_comparisons: dict) -> str:
    """The variation between seeds: SD with its interval, and the paired differences between seeds."""
    n = summary["n"]
    if n < 2:
        return (
            "This build trained the baseline with a single seed, so the variation between trainings is unknown; "
            "each comparison's interval covers the sampling of test studies only."
        )
    text = (
        f"Trained with {n} seeds, the baseline reached a mean study-level AUROC of {plain(summary['mean'])} with a "
        f"standard deviation of {plain(summary['sd'])} (95% interval of the standard deviation "
        f"{plain(summary['sd_low'])} to {plain(summary['sd_high'])})."
    )
    if seed_comparisons:
        diffs = [c.auroc_diff for c in seed_comparisons.values()]
        excluded = sum(c.verdict != "no detectable difference" for c in seed_comparisons.values())
        counted = "none" if excluded == 0 else ("all" if excluded == len(diffs) else f"{excluded} of {len(diffs)}")
        text += (
            f" Paired against the first seed on the same test studies, the other seeds differed by "
            f"{join_words([signed(d) for d in diffs])}, and the paired interval of {counted} of these differences "
            "excludes zero: "
            + (
                "the randomness of training alone moves a single run by differences that a paired interval "
                "detects, which is why every configuration is trained with every seed."
                if excluded
                else "in this build training randomness alone produced no difference that a paired interval detects."
            )
        )
    return text


def signal_sentence(headline: dict) -> str:
    """Whether the baseline separates the classes at all, from its AUROC interval."""
    if headline["auroc_low"] > 0.5:
        return (
            f"The baseline separates abnormal from normal studies better than chance: its AUROC interval, "
            f"{plain(headline['auroc_low'])} to {plain(headline['auroc_high'])}, lies above 0.5."
        )
    return (
        f"The baseline's AUROC interval, {plain(headline['auroc_low'])} to {plain(headline['auroc_high'])}, "
        "includes 0.5: on these test studies its separation of abnormal from normal studies cannot be told "
        "from chance."
    )


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


# What each regulariser is expected to do, for the discussion of a result that runs against it.
_REGULARISER_NOTES = {
    "no augmentation": (
        "Augmentation makes every training image a little different each epoch, which makes the training task "
        "harder; with a small network, few epochs and test images drawn from the same generator or hospital as "
        "the training images, the gain in robustness may not show on the test set while the slower fit does. "
        "Rotations of up to 30 degrees also move the burnt-in markers and the collimation edges that the network "
        "might otherwise learn as cues."
    ),
    "no dropout": (
        "Dropout before a single output unit removes information at every step; in a network this small, which "
        "does not over-fit strongly, it may cost more in fit than it gains in generalisation."
    ),
    "no L2": (
        "The L2 penalty pulls every weight towards zero; with batch normalisation after each convolution it mostly "
        "changes the effective learning rate rather than the function the network can represent."
    ),
    "no batch normalisation": (
        "Without batch normalisation the network trains differently altogether, usually more slowly; a gain from "
        "removing it points to an interaction with the learning-rate schedule rather than to over-regularisation."
    ),
}


def regularisation_surprises(comparisons: dict, runs: dict) -> str:
    """The variants whose removal of a regulariser *raised* the AUROC (or lowered kappa while
    raising AUROC), named and discussed; an empty-handed sentence otherwise."""
    raised = [c for c in comparisons.values() if c.verdict == "higher"]
    texts = []
    if raised:
        names = join_words([c.name_a for c in raised])
        count = "One result runs" if len(raised) == 1 else f"{len(raised)} results run"
        texts.append(f"{count} against expectation: {names} scored a higher AUROC than the network with all four.")
        for comparison in raised:
            name = comparison.name_a
            text = f"For {name} ({difference_clause(comparison)}): {_REGULARISER_NOTES.get(name, '')}"
            run = runs.get(name)
            baseline = runs.get("baseline")
            if run is not None and baseline is not None and baseline.hit_cap and not run.hit_cap:
                text += (
                    " The network with all regularisers also ran to its epoch cap while this variant reached a "
                    "plateau, so part of the gap may be slower convergence."
                )
            texts.append(text.rstrip())
    for comparison in comparisons.values():
        if comparison.kappa_verdict == "lower" and comparison.verdict != "lower" and comparison.auroc_diff > 0:
            texts.append(
                f"For {comparison.name_a}, kappa fell while AUROC did not: {difference_clause(comparison, 'kappa')} in "
                "kappa. Kappa depends on the threshold of 0.5 and so on calibration, which a regulariser can "
                "shift without changing how the network ranks studies."
            )
    if not texts:
        return (
            "No regulariser's removal improved the network: for every variant the mean AUROC was lower than that "
            "of the network with all four, or the difference is undetermined."
        )
    return " ".join(texts)


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


def research_answer(plan, headline: dict) -> str:
    """The answer to the thesis' research question, from the headline interval and the verdicts of
    the comparisons of configurations (each trained with every seed)."""
    text = signal_sentence(headline)
    helped, hurt, neutral = [], [], []
    for group, what in (
        ("image size", "a different input size"),
        ("regularisation", "removing a regulariser"),
        ("transfer", "pretraining"),
    ):
        for comparison in plan.comparisons(group).values():
            name = comparison.name_a
            if comparison.verdict == "undetermined":
                neutral.append(name)
            elif group == "regularisation":
                # Removing a regulariser and scoring lower means the regulariser helped.
                regulariser = name.removeprefix("no ")
                (helped if comparison.verdict == "lower" else hurt).append(
                    f"{regulariser} (removing it {'lowered' if comparison.verdict == 'lower' else 'raised'} the mean AUROC)"
                )
            else:
                (helped if comparison.verdict == "higher" else hurt).append(name)
    comparisons = [c for g in ("image size", "regularisation", "transfer") for c in plan.comparisons(g).values()]
    if comparisons:
        text += f" Over {seeds_words(comparisons[0])}, "
        parts = []
        if helped:
            parts.append("the mean AUROC was higher with " + join_words(helped))
        if hurt:
            parts.append("lower with " + join_words(hurt))
        if neutral:
            parts.append("undetermined for " + join_words(neutral))
        text += "; ".join(parts) + "."
    text += (
        " These answers hold for the data of this build; on synthetic data they describe how the method responds "
        "to the generator's findings, not how it would read real radiographs."
    )
    return text


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


def source_sentence(sources: dict) -> str:
    """How well the source runs learned their task (without it, transfer has nothing to transfer)."""
    if not sources:
        return ""
    parts = []
    for label, run in sources.items():
        accuracy = run.metrics.get("accuracy")
        parts.append(f"{label} {plain(accuracy)}" if accuracy is not None else label)
    return (
        f"On the source task the backbones reached study-type accuracies of {join_words(parts)} on the source "
        f"corpus' test split (chance: {plain(1 / 7)})."
    )


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


def pretraining_announcement(backbones: list[str], pretrained_weights: str | None) -> str:
    """What the pretraining chapter tests, as the introduction announces it: ImageNet weights, a
    weights file, or (offline) the synthetic study-type source task."""
    names = join_words(backbones)
    if pretrained_weights == "imagenet":
        return (
            f"{names}, initialised with weights pretrained on ImageNet, are adapted to the task by transfer learning "
            "and compared with the same architectures trained from random initial weights, under the same evaluation."
        )
    if pretrained_weights:
        return (
            f"{names}, initialised with the weights in {pretrained_weights}, are adapted to the task and compared "
            "with the same architectures trained from random initial weights."
        )
    return (
        f"ImageNet weights cannot be obtained in an offline build, so {names} "
        f"{'is' if len(backbones) == 1 else 'are'} pretrained on a related source task built from data the project "
        "generates, recognising the body part in a separate, larger corpus of synthetic radiographs, and then frozen "
        "or fine-tuned on the abnormality task and compared with the same architecture trained from random initial "
        "weights."
    )


def training_texts(run) -> dict:
    """How a run's training went, for the text: the epochs it trained (``"12 epochs"``), the
    epoch whose weights it kept, and a sentence on how it stopped (plateau or cap)."""
    from .tables import plural

    cap = plural(run.training["cap"], "epoch")
    if run.training.get("schedule") == "cosine":
        stopping = f"Training ran its fixed budget of {cap}, the learning rate decaying to zero"
    elif run.hit_cap:
        stopping = (
            f"Training ran to its cap of {cap} without reaching a plateau, so a longer training might still improve it"
        )
    else:
        stopping = f"The plateau rules stopped training before the cap of {cap}"
    return {
        "epochs": plural(len(run.history), "epoch"),
        "best-epoch": run.training["best_epoch"],
        "kept": kept_phrase(run),
        "stopping": stopping,
    }


def kept_phrase(run) -> str:
    """Which weights a run kept, as a phrase: "the weights after its last epoch", "the average of
    the weights after epochs 18 to 20", or "the weights of epoch 11, the best by the smoothed
    study-level validation AUROC"."""
    epochs = run.training.get("kept_epochs")
    if epochs:
        if len(epochs) == 1:
            return "the weights after its last epoch"
        return f"the average of the weights after epochs {epochs[0]} to {epochs[-1]}"
    return f"the weights of epoch {run.training['best_epoch']}, the best by the smoothed study-level validation AUROC"


def conclusion_texts(plan, headline) -> dict:
    """The conclusions' sentences, from the same runs and comparisons as the results chapters."""
    return {
        "seed-text": seed_sentence(plan.seed_summary(), plan.comparisons("seeds")),
        "size-text": finding(plan, "image size"),
        "reg-text": finding(plan, "regularisation"),
        "transfer-text": finding(plan, "transfer")
        if plan.comparisons("transfer")
        else "This build compared no pretrained backbones.",
        "signal-text": signal_sentence(headline),
        "answer": research_answer(plan, headline),
    }


def rule_choice_sentence(comparisons: dict) -> str:
    """Which aggregation rule the thesis keeps, from the rules' comparisons against the mean on the
    validation subset (``{rule: Comparison}``)."""
    better = [rule for rule, comparison in comparisons.items() if comparison.verdict == "higher"]
    if not better:
        return "No rule scored detectably higher than the mean, so the thesis keeps the paper's rule."
    return (
        f"The {join_words(better)} scored higher than the mean on the validation subset; the thesis nevertheless "
        "keeps the mean, the paper's rule, so that its results stay comparable with the paper's."
    )


def development_choice_sentence(comparisons: dict) -> str:
    """Whether an alternative tried during development beat the baseline on the validation subset,
    and what the results chapters keep."""
    better = [comparison.name_a for comparison in comparisons.values() if comparison.verdict == "higher"]
    if not better:
        return (
            "None of the alternatives did detectably better on the validation subset, so the baseline keeps its four "
            "blocks of 32 filters and the paper's class weights."
        )
    return (
        f"On the validation subset {join_words(better)} did better than this configuration; the results "
        "chapters keep the configuration described above, and this is a limitation that the conclusions return to."
    )


def backbone_words(settings) -> str:
    """The backbones of a build's transfer experiments, by name (``"VGG16 and ResNet-50"``)."""
    from .plan import BACKBONE_NAMES

    return join_words([BACKBONE_NAMES[backbone] for backbone in settings.backbones])


def pretraining_sentence(plan) -> str:
    """Where the backbones' pretrained weights come from in this build, and what is compared."""
    s = plan.settings
    names = backbone_words(s)
    if plan.pretraining == "ImageNet":
        return (
            f"In this build {names} start from their ImageNet weights. Each is trained three ways at the same input "
            "size and epoch budget: from random initial weights, with its pretrained backbone frozen, and fine-tuned "
            "from its pretrained weights; the comparison of pretrained with random initialisation is the question "
            "of this section."
        )
    if plan.pretraining == "weights":
        return (
            f"In this build {names} start from the weights in {s.pretrained_weights}, and are compared with the same "
            "architectures trained from random initial weights."
        )
    return (
        "ImageNet weights cannot be downloaded during an offline build, so this build tests transfer with a source "
        "task of its own. A separate, larger corpus of synthetic radiographs, drawn from another seed so that "
        "none of its images is in the thesis' data, is labelled not normal or abnormal but by body part: which of "
        f"the seven study types an image shows. {capitalised(names)} {'is' if len(s.backbones) == 1 else 'are'} first trained "
        "from random weights on that task, a source run stored like every other run; its convolutional base then "
        "initialises the abnormality network, either frozen or fine-tuned, and the result is compared with the same "
        "architecture trained on the abnormality task from random initial weights, at the same input size and "
        "epoch budget. The source task is related to the target (the same kind of images, the same anatomy) but "
        "not the same, which is the situation that pretraining on ImageNet is meant to exploit; the answer here "
        "says whether this source task helps, not whether ImageNet does."
    )


def transfer_modes_sentence(plan) -> str:
    """The comparisons of fine-tuned against frozen backbones, or why there are none."""
    text = details(plan, "transfer modes")
    # It follows other sentences in the text, so it starts with a capital.
    return capitalised(text) if text else "Only one mode was trained, so the modes are not compared."


def architecture_sentence(plan) -> str:
    """The comparisons of each backbone from random weights against the baseline, or why there are
    none (empty when the build trains no keras.applications backbone)."""
    s = plan.settings
    if plan.comparisons("architecture"):
        text = details(plan, "architecture")
        return capitalised(text)
    if any(backbone != "cnn" for backbone in s.backbones) and s.backbone_size != s.image_size:
        return "The backbones were trained at another input size than the baseline, so they are not compared with it."
    return ""


def backbone_cautions(settings) -> str:
    """How far the transfer results of a build carry: the keras.applications backbones' handicaps at
    small inputs, or, for the ab-initio CNN alone, what its source task can teach."""
    if any(backbone != "cnn" for backbone in settings.backbones):
        return (
            "Two cautions apply to any reading of the keras.applications backbones' numbers. First, they were "
            "designed for 224-pixel colour photographs; at small inputs their deep stacks of pooling stages reduce "
            "the image to a single position early on, which handicaps them against a network sized for the input. "
            "Second, they have millions of parameters, far more than a small build's training images can "
            "constrain. The full profile, at the paper's input size and with ImageNet weights, is the setting in "
            "which the comparison with the MURA paper's pretrained model is meaningful."
        )
    return (
        "In this build the pretrained network is the ab-initio CNN itself, so the comparison isolates the effect of "
        "its initial weights: the architecture, input size, data and training budget are those of the baseline. The "
        "source task is easy (the body part is visible at a glance), so what it can teach is generic: edges, bone "
        "outlines and the layout of a film, not the signs of disease. The full profile asks the same question of "
        "ImageNet weights and the four keras.applications backbones."
    )


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
