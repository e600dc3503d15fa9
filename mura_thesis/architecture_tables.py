"""Tables of the backbones' architectures, read from the Keras models themselves.

Each function takes built models (:func:`build_backbones`, or any ``keras.Model``) and returns a
DataFrame for :func:`mura_thesis.tables.format_table`: the size of each model
(:func:`summary_table`), the kinds of layers (:func:`layer_type_table`), one model by stage
(:func:`stage_table`) and one model layer by layer (:func:`layer_table`).
"""

from __future__ import annotations

import re
from collections import Counter

import numpy as np
import pandas as pd

from .plan import BACKBONE_NAMES

# A layer whose name starts like this opens a stage (keras.applications' naming); the layers
# before the first stage are the "input" stage, those after a stage that open none its "head".
STAGE_PATTERN = re.compile(r"^(block\d+|conv\d+|pool\d+|stem|top)")


def build_backbones(image_size: int) -> dict:
    """Every backbone of :data:`mura_lib.models.BACKBONES`, untrained, at ``image_size`` pixels."""
    from mura_lib.models import BACKBONES, build_backbone

    return {name: build_backbone(name, image_size, weights=None) for name in BACKBONES}


def output_shape(layer) -> str:
    """A layer's output shape without the batch axis: ``"7 x 7 x 512"``."""
    return " x ".join(str(size) for size in tuple(layer.output.shape)[1:])


def display_name(name: str) -> str:
    """The backbone's name in the text (``"DenseNet-169"``), or ``name`` itself if it has none."""
    return BACKBONE_NAMES.get(name, name)


def summary_table(models: dict) -> pd.DataFrame:
    """One row per model: layers, parameters, trainable parameters and pooled output features."""
    rows = [
        {
            "model": display_name(name),
            "layers": len(model.layers),
            "parameters": model.count_params(),
            "trainable parameters": int(sum(np.prod(weight.shape) for weight in model.trainable_weights)),
            "output features": int(model.output.shape[-1]),
        }
        for name, model in models.items()
    ]
    return pd.DataFrame(rows).set_index("model")


def layer_type_table(models: dict) -> pd.DataFrame:
    """Number of layers of each Keras layer class (rows, sorted) in each model (columns)."""
    counts = {
        display_name(name): Counter(type(layer).__name__ for layer in model.layers) for name, model in models.items()
    }
    types = pd.DataFrame(counts).fillna(0).astype(int)
    types.index.name = "layer type"
    return types.sort_index()


def stage_table(model) -> pd.DataFrame:
    """One row per stage (in order): its number of layers, its parameters and the output shape of its last
    layer.  Stages are named by :data:`STAGE_PATTERN`."""
    stages, seen_stage = {}, False
    for layer in model.layers:
        match = STAGE_PATTERN.match(layer.name)
        if match:
            stage, seen_stage = match.group(1), True
        else:
            stage = "head" if seen_stage else "input"
        entry = stages.setdefault(stage, {"layers": 0, "parameters": 0, "output shape": ""})
        entry["layers"] += 1
        entry["parameters"] += layer.count_params()
        entry["output shape"] = output_shape(layer)
    table = pd.DataFrame.from_dict(stages, orient="index")
    table.index.name = "stage"
    return table


def layer_table(model) -> pd.DataFrame:
    """Every layer of ``model`` (index: its name) with its class, output shape and parameters."""
    rows = [
        {
            "layer": layer.name,
            "type": type(layer).__name__,
            "output shape": output_shape(layer),
            "parameters": layer.count_params(),
        }
        for layer in model.layers
    ]
    return pd.DataFrame(rows).set_index("layer")
