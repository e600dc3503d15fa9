"""How the ab-initio network was built: the tables and quoted numbers of the model-development
chapter, from the environment, the data, the network itself and its stored validation predictions.

Keras (and with it TensorFlow) is imported only by the functions that need it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from mura_lib.dataset import STUDY_TYPES


def environment_table(environment: dict | None = None, precision: str | None = None) -> pd.DataFrame:
    """The software and hardware a page is built on, one row per item (index ``item``, column
    ``value``): Keras backend, compute device, numeric precision, platform and package versions.

    ``environment`` defaults to :func:`mura_lib.device.environment`, ``precision`` to the precision
    that ``"auto"`` resolves to on this machine."""
    from mura_lib import device

    environment = device.environment() if environment is None else environment
    precision = device.resolve_precision("auto") if precision is None else precision
    rows = [
        ("Keras backend", environment["backend"]),
        ("compute device", environment["device"]),
        ("numeric precision", precision),
        ("platform", environment["platform"]),
    ]
    rows += [(f"{name} version", version) for name, version in environment["versions"].items()]
    return pd.DataFrame(rows, columns=["item", "value"]).set_index("item")


def example_image(dataset, seed: int, *, excluded=()) -> np.ndarray:
    """One radiograph of ``dataset``, drawn with ``seed`` from those not in ``excluded`` (the relative
    paths the preprocessing cache left out), decoded to 8-bit greyscale at its stored size."""
    from mura_lib.preprocess import load_grayscale

    images = dataset.images.loc[~dataset.images["relpath"].isin(list(excluded))]
    return load_grayscale(images.sample(1, random_state=seed).iloc[0]["path"])


def layer_table(model) -> pd.DataFrame:
    """The top-level layers of a Keras model: type, output shape (without the batch dimension,
    height x width x channels) and number of parameters, indexed by layer name."""
    rows = [
        {
            "layer": layer.name,
            "type": type(layer).__name__,
            "output shape": " x ".join(str(s) for s in tuple(layer.output.shape)[1:]),
            "parameters": layer.count_params(),
        }
        for layer in model.layers
    ]
    return pd.DataFrame(rows).set_index("layer")


def trainable_parameters(model) -> int:
    """The number of weights that gradient descent updates (batch normalisation's running
    statistics and frozen layers excluded)."""
    return int(sum(np.prod(w.shape) for w in model.trainable_weights))


def model_facts(model, config) -> dict:
    """The numbers the chapter quotes about the ab-initio network, by name: its settings, its
    parameter counts and those of the optimiser, read after compiling ``model`` as training
    compiles it (:func:`mura_lib.training.compile_model`)."""
    from mura_lib.training import compile_model

    from .tables import plural

    compile_model(model, config)
    return {
        "image-size": config.image_size,
        "parameters": model.count_params(),
        "trainable": trainable_parameters(model),
        "depth": config.depth,
        "width": config.width,
        "dropout": config.dropout,
        "l2": config.l2,
        "lr": config.learning_rate,
        "beta1": float(model.optimizer.beta_1),
        "beta2": float(model.optimizer.beta_2),
        "batch": config.batch_size,
        "lr-patience": config.lr_patience,
        "stop-patience": config.early_stopping_patience,
        "epochs": plural(config.epochs, "epoch"),
        "validation-fraction": config.validation_fraction,
        "min-epochs": plural(config.min_epochs, "epoch"),
        # How long the plateau rules train on after their learning-rate cut before they stop.
        "stop-after-cut": plural(max(config.early_stopping_patience - config.lr_patience, 0), "epoch"),
        "stop-after-cut-any": "yes" if config.early_stopping_patience > config.lr_patience else "no",
        "smoothing": config.smoothing,
    }


def loss_weights(train: pd.DataFrame) -> pd.DataFrame:
    """Training images per study type and class and the paper's loss weights
    (:func:`mura_lib.inputs.paper_sample_weights`): one row per study type (short name), columns
    normal/abnormal images and normal/abnormal weight."""
    from mura_lib.inputs import paper_sample_weights

    weights = train.assign(weight=paper_sample_weights(train))
    table = (
        weights.groupby(["study_type", "label"])
        .agg(images=("weight", "size"), weight=("weight", "first"))
        .unstack("label")
    )
    table.columns = [f"{'normal' if label == 0 else 'abnormal'} {what}" for what, label in table.columns]
    table = table[["normal images", "abnormal images", "normal weight", "abnormal weight"]]
    names = {t: t.removeprefix("XR_").lower() for t in STUDY_TYPES}
    table.index = table.index.map(names)
    table.index.name = "study type"
    return table


def training_loss_weights(dataset, config, cache_dir) -> pd.DataFrame:
    """:func:`loss_weights` of the training subset that ``config`` splits off ``dataset``
    (:func:`mura_lib.inputs.prepare_data`, the images cached in ``cache_dir``)."""
    from mura_lib.inputs import prepare_for

    prepared = prepare_for(dataset, config, cache_dir=cache_dir)
    return loss_weights(prepared.subset("train"))


@dataclass
class RuleComparison:
    """The aggregation rules compared on one subset: ``table`` (AUROC, kappa and count for single
    images and for studies under each rule, indexed by unit and rule), ``studies`` (the study
    predictions under each rule) and ``comparisons`` (each rule but the mean against the mean,
    paired on the same studies)."""

    table: pd.DataFrame
    studies: dict
    comparisons: dict

    def facts(self) -> dict:
        """The numbers the chapter quotes, by name."""
        return {
            "mean-auroc": self.table.loc[("studies", "mean"), "AUROC"],
            "image-auroc": self.table.loc[("single images", "none"), "AUROC"],
            "validation-studies": len(self.studies["mean"]),
        }


def compare_rules(predictions: pd.DataFrame, *, n_resamples: int, seed: int, subset: str = "validation"):
    """The aggregation rules (:data:`mura_lib.evaluation.AGGREGATIONS`) on the image predictions of
    ``subset`` (the validation subset: a rule is a modelling choice, never made on the test
    studies), each against the paper's mean with a paired bootstrap interval."""
    from mura_lib import evaluation

    images = predictions.loc[predictions["subset"] == subset]
    if images.empty:
        raise ValueError(
            f"The predictions hold no images of the subset {subset!r}; they hold {sorted(predictions['subset'].unique())}."
        )
    image_metrics = evaluation.study_metrics(images["label"], images["probability"])
    studies = {rule: evaluation.aggregate_studies(images, rule) for rule in evaluation.AGGREGATIONS}
    rows = [
        {
            "Unit": "single images",
            "Rule": "none",
            "AUROC": image_metrics["auroc"],
            "Cohen's kappa": image_metrics["kappa"],
            "Count": image_metrics["studies"],
        }
    ]
    for rule, frame in studies.items():
        result = evaluation.study_metrics(frame["label"], frame["probability"])
        rows.append(
            {
                "Unit": "studies",
                "Rule": rule,
                "AUROC": result["auroc"],
                "Cohen's kappa": result["kappa"],
                "Count": result["studies"],
            }
        )
    comparisons = {
        rule: evaluation.compare_paired(
            studies[rule], studies["mean"], n_resamples=n_resamples, seed=seed, name_a=f"the {rule}", name_b="the mean"
        )
        for rule in evaluation.AGGREGATIONS
        if rule != "mean"
    }
    return RuleComparison(pd.DataFrame(rows).set_index(["Unit", "Rule"]), studies, comparisons)
