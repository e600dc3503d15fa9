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
from mura_thesis import finding_tables

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


@pytest.mark.parametrize("policy", ["pad", "stretch", "crop"])
@pytest.mark.parametrize("shape", [(60, 40), (40, 60), (50, 50)])
def test_a_box_maps_through_the_resizing_as_its_pixels_do(policy, shape):
    """A bright rectangle on a stored image lands, after resize_image, inside the box that
    box_in_input maps it to (widened by a pixel for the bilinear kernel), and fills its middle."""
    from mura_lib.preprocess import resize_image

    height, width = shape
    x0, y0, x1, y1 = 10, 14, 31, 29
    image = np.zeros(shape, np.uint8)
    image[y0:y1, x0:x1] = 255
    box = (x0 / width, y0 / height, x1 / width, y1 / height)
    size = 24
    resized = resize_image(image, size, policy)
    bx0, by0, bx1, by1 = explain.box_in_input(box, height, width, size, policy)
    assert 0 <= bx0 < bx1 <= size and 0 <= by0 < by1 <= size
    lit = resized > 0
    outside = lit.copy()
    outside[max(int(by0) - 1, 0) : int(np.ceil(by1)) + 1, max(int(bx0) - 1, 0) : int(np.ceil(bx1)) + 1] = False
    assert not outside.any()
    inner = resized[int(np.ceil(by0)) + 1 : int(by1) - 1, int(np.ceil(bx0)) + 1 : int(bx1) - 1]
    assert inner.size and (inner > 200).all()
    with pytest.raises(ValueError, match="policy"):
        explain.box_in_input(box, height, width, size, "squash")


def test_box_mass_share_against_a_uniform_map():
    maps = np.zeros((3, 10, 10))
    maps[0] = 1.0  # uniform: its share is the box's area
    maps[1, 2:4, 2:6] = 1.0  # all of its mass inside the box
    boxes = [(2, 2, 6, 4), (2, 2, 6, 4), (0, 0, 5.5, 10)]  # the third map is empty
    shares, areas = explain.box_mass_share(maps, boxes)
    assert areas == pytest.approx([0.08, 0.08, 0.55])
    assert shares[0] == pytest.approx(0.08) and shares[1] == pytest.approx(1.0) and np.isnan(shares[2])
    # A box edge through a pixel counts the part inside.
    half = np.ones((1, 4, 4))
    assert explain.box_mass_share(half, [(0, 0, 1.5, 4)])[0][0] == pytest.approx(1.5 / 4)


def test_finding_localisation_scores_each_boxed_test_view(dataset, synthetic_root, tmp_path):
    from mura_lib.synthetic import image_truth

    config = ExperimentConfig(**TINY)
    run = StandInRun(config, _predictions(dataset.images))
    model = run.load_model()
    run.load_model = lambda: model  # one model, so that the maps can be computed again
    truth = image_truth(synthetic_root)
    table = explain.finding_localisation(run, dataset, truth, cache_dir=tmp_path, batch=5)
    test_views = set(run.predictions["relpath"])
    boxed = truth.loc[truth["relpath"].isin(test_views) & truth["finding_x0"].notna()]
    assert sorted(table["relpath"]) == sorted(boxed["relpath"]) and len(table) > 5
    no_finding = truth.loc[truth["finding"] == "", "relpath"].iloc[0]
    assert ((table["x0"] < table["x1"]) & (table["y0"] < table["y1"])).all()
    assert table["area"].between(0, 1).all() and table["share"].dropna().between(0, 1).all()
    # The same maps, computed at once, give the same shares (the batches change nothing).
    pixels = explain.cached_pixels(dataset, config, table["relpath"], tmp_path)
    maps = explain.grad_cam(run.load_model(), pixels)
    shares, _ = explain.box_mass_share(maps, table[["x0", "y0", "x1", "y1"]].to_numpy())
    np.testing.assert_allclose(table["share"], shares, rtol=1e-5)
    summary = explain.localisation_summary(table, n_resamples=200)
    assert summary["images"].sum() == table["share"].notna().sum() and summary["views"].sum() == len(table)
    flat = explain.localisation_summary(table.assign(share=np.nan), n_resamples=50)
    assert (flat["images"] == 0).all() and flat["share"].isna().all() and (flat["views"] > 0).all()
    np.testing.assert_allclose(summary["excess"], summary["share"] - summary["area"], atol=1e-12)
    shown = finding_tables.localisation_table(summary)
    assert list(shown["Finding"]) == list(summary["finding"])
    boxes = explain.input_boxes([table["relpath"].iloc[0], no_finding], truth, config.image_size, config.policy)
    assert boxes[0] == pytest.approx(tuple(table.loc[0, ["x0", "y0", "x1", "y1"]])) and boxes[1] is None
    assert explain.input_boxes([no_finding], None, 16, "pad") == [None]
    assert explain.finding_localisation(run, dataset, None, cache_dir=tmp_path) is None
    assert explain.localisation_summary(None) is None
    assert "not recorded" in finding_tables.localisation_table(None)["Finding"].iloc[0]


def test_localisation_values_sort_findings_by_their_interval():
    from mura_thesis import values

    summary = pd.DataFrame(
        {
            "finding": ["fracture", "hardware", "cast", "lesion"],
            "views": [10, 12, 9, 1],
            "images": [10, 12, 9, 1],
            "share": [0.05, 0.4, 0.5, 0.2],
            "area": [0.06, 0.08, 0.45, 0.1],
            "excess": [-0.01, 0.32, 0.05, 0.1],
            "low": [-0.04, 0.2, -0.02, np.nan],
            "high": [0.02, 0.44, 0.12, np.nan],
        }
    )
    glued = values.localisation_values(summary)
    assert glued["loc"] == "measured" and glued["views"] == 32
    assert glued["inside"] == "hardware (0.400 against 0.080)" and glued["any-inside"] == "yes"
    assert glued["undetermined"] == "fractures (0.050 against 0.060) and casts (0.500 against 0.450)"
    assert glued["too-few"] == "lesions" and glued["any-outside"] == "no"
    assert values.localisation_values(None)["loc"] == "absent"
    assert values.localisation_values(summary.iloc[0:0])["loc"] == "empty"
    flat = summary.assign(images=0)
    assert values.localisation_values(flat)["loc"] == "flat" and values.localisation_values(flat)["views"] == 32
