"""The tables of the pretrained-models chapter: each backbone from random and pretrained weights,
its size and how its training ended, and the source runs that pretrained it.

Keras (and with it TensorFlow) is imported only by the functions that need it.
"""

from __future__ import annotations

import pandas as pd


def results_table(runs: dict) -> pd.DataFrame:
    """One row per run (``{label: Run}``, indexed by ``Model``): test AUROC and Cohen's kappa, the
    number of parameters and of those trained (from the architecture its configuration builds, no
    trained weights needed), the epochs trained, how training ended (budget, plateau or cap), and
    the flag on its calls at 0.5 (``far`` from the prevalence, ``collapsed`` or ``none``: the rule
    the chapters' text applies, :func:`mura_lib.evaluation.calls_against_prevalence`)."""
    from mura_lib.evaluation import calls_against_prevalence
    from mura_lib.models import build_model

    from .development import trainable_parameters
    from .tables import runs_table

    models = [build_model(run.config) for run in runs.values()]
    table = runs_table(runs, index="Model").drop(columns="Epoch kept")
    table.insert(2, "Parameters", [model.count_params() for model in models])
    table.insert(3, "Trained parameters", [trainable_parameters(model) for model in models])
    table["Calls at 0.5"] = [calls_against_prevalence(run.study_predictions("test"))["flag"] for run in runs.values()]
    return table


def source_table(sources: dict, pretraining: str):
    """The source runs (``{label: Run}``) as a formatted table (:func:`mura_thesis.tables.format_table`):
    study-type accuracy, macro one-vs-rest AUROC, epochs and training images per backbone; without
    source runs, a one-row note that the backbones start from ``pretraining`` weights."""
    from .tables import format_table

    if not sources:
        note = f"no source task in this build: the backbones start from {pretraining} weights"
        return format_table(pd.DataFrame({"Note": [note]}), index=False)
    rows = [
        {
            "Backbone": label,
            "Study-type accuracy": run.metrics.get("accuracy"),
            "Macro AUROC": run.metrics.get("macro_auroc", run.metrics.get("auroc")),
            "Epochs": len(run.history),
            "Training images": run.info["data"]["train_images"],
        }
        for label, run in sources.items()
    ]
    return format_table(pd.DataFrame(rows).set_index("Backbone"))


def paired_comparisons(plan) -> list:
    """The paired comparisons the chapter tabulates, in order: each pretrained variant against the
    same backbone from random weights, fine-tuned against frozen, each backbone against the baseline."""
    return [
        comparison
        for group in ("transfer", "transfer modes", "architecture")
        for comparison in plan.comparisons(group).values()
    ]
