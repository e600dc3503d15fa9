"""Grad-CAM examples (mura_lib.explain): which views are shown, their pixels from the cache, and the
maps of an untrained stand-in model."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mura_lib import explain
from mura_lib.config import ExperimentConfig
from mura_lib.dataset import load_mura
from mura_lib.models import build_model
from mura_lib.preprocess import build_cache

TINY = dict(image_size=16, depth=2, width=4, epochs=1, batch_size=8, seed=0)


def _predictions(images: pd.DataFrame, seed: int = 0) -> pd.DataFrame:
    """Stand-in image predictions: the valid split as the test subset, scores that rise with the label."""
    rng = np.random.default_rng(seed)
    test = images.loc[images["split"] == "valid", ["relpath", "study_path", "study_type", "label"]]
    return test.assign(subset="test", probability=np.clip(0.3 * test["label"] + rng.uniform(0.1, 0.8, len(test)), 0, 1))


class StandInRun:
    def __init__(self, config, predictions):
        self.config, self.predictions = config, predictions

    def load_model(self):
        return build_model(self.config)


@pytest.fixture(scope="module")
def dataset(synthetic_root):
    return load_mura(synthetic_root)


def test_confident_views_pick_the_surest_right_and_wrong_studies(dataset):
    predictions = _predictions(dataset.images)
    views = explain.confident_views(predictions, 2)
    assert views["group"].tolist() == ["correct", "correct", "failed", "failed"]
    studies = predictions.groupby("study_path").agg(label=("label", "first"), probability=("probability", "mean"))
    right = (studies["probability"] > 0.5).astype(int) == studies["label"]
    confidence = (studies["probability"] - 0.5).abs()
    for group, members in (("correct", right), ("failed", ~right)):
        chosen = views.loc[views["group"] == group]
        assert set(chosen["study_path"]) == set(confidence[members].nlargest(2).index)
        assert np.allclose(chosen["probability"], studies.loc[chosen["study_path"], "probability"])
    for _, row in views.iterrows():
        own = predictions.loc[predictions["study_path"] == row["study_path"]]
        assert row["relpath"] == own.loc[own["probability"].idxmax(), "relpath"]
        assert row["view_probability"] == own["probability"].max()


def test_cached_pixels_are_the_cache_rows_of_the_views(dataset, tmp_path):
    config = ExperimentConfig(**TINY)
    relpaths = dataset.images["relpath"].iloc[[5, 0, 17]].tolist()
    pixels = explain.cached_pixels(dataset, config, relpaths, tmp_path)
    assert pixels.shape == (3, 16, 16, 1) and pixels.dtype == np.float32
    cache = build_cache(dataset, 16, policy=config.policy, cache_dir=tmp_path, progress=False)
    np.testing.assert_array_equal(pixels[..., 0], cache.images[cache.rows_for(relpaths)])
    with pytest.raises(KeyError, match="not among the prepared images.*no/such.png"):
        explain.cached_pixels(dataset, config, ["no/such.png"], tmp_path)


def test_confident_examples_map_each_view_on_the_last_spatial_layer(dataset, tmp_path):
    config = ExperimentConfig(**TINY)
    examples = explain.confident_examples(
        StandInRun(config, _predictions(dataset.images)), dataset, 2, cache_dir=tmp_path
    )
    assert examples.layer == "relu2"  # the last block's activation, before its pooling
    assert examples.grid == 8  # 16 px halved once by the first block's pooling
    assert examples.pixels.shape == (4, 16, 16, 1) and examples.maps.shape == (4, 16, 16)
    assert examples.maps.min() >= 0 and examples.maps.max() <= 1
    assert examples.facts() == {"correct": 2, "failed": 2, "layer": "relu2", "grid": 8}
    shallower = explain.confident_examples(
        StandInRun(config, _predictions(dataset.images)), dataset, 1, cache_dir=tmp_path, layer_name="relu1"
    )
    assert shallower.facts() == {"correct": 1, "failed": 1, "layer": "relu1", "grid": 16}
