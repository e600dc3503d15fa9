"""The pretrained-models chapter's tables (mura_thesis.transfer_tables), from stand-in runs."""

from __future__ import annotations

from types import SimpleNamespace

import pandas as pd
import pytest

from mura_lib.config import ExperimentConfig
from mura_thesis import transfer_tables
from mura_thesis.plan import PlanSettings

TINY = dict(image_size=16, depth=2, width=4, epochs=3, batch_size=8, seed=0)


class StandInRun:
    """What the tables read of a stored run, without training one."""

    def __init__(self, config, metrics, epochs, hit_cap, probabilities=(0.2, 0.8, 0.3, 0.7), train_images=100):
        self.config, self.metrics, self.hit_cap = config, metrics, hit_cap
        self.history = pd.DataFrame({"epoch": range(epochs)})
        self.training = {"best_epoch": epochs}
        self.info = {"data": {"train_images": train_images}}
        self._studies = pd.DataFrame({"label": [0, 1, 0, 1], "probability": list(probabilities)})

    def study_predictions(self, subset):
        assert subset == "test"
        return self._studies


def test_input_size_and_epoch_cap_fall_back_to_the_baseline():
    settings = PlanSettings(image_size=32, epochs=5, backbone_image_size=0, backbone_epochs=0)
    assert settings.backbone_size == 32 and settings.backbone_cap == 5
    settings = PlanSettings(image_size=32, epochs=5, backbone_image_size=64, backbone_epochs=2)
    assert settings.backbone_size == 64 and settings.backbone_cap == 2


def test_results_table_counts_parameters_from_the_architecture():
    runs = {
        "baseline": StandInRun(ExperimentConfig(**TINY), {"auroc": 0.71, "kappa": 0.2}, epochs=3, hit_cap=True),
        "collapsed": StandInRun(
            ExperimentConfig(**TINY), {"auroc": 0.5, "kappa": 0.0}, epochs=2, hit_cap=False, probabilities=(0.5,) * 4
        ),
    }
    table = transfer_tables.results_table(runs)
    assert table.index.name == "Model" and list(table.index) == ["baseline", "collapsed"]
    assert list(table.columns) == [
        "AUROC",
        "Cohen's kappa",
        "Parameters",
        "Trained parameters",
        "Epochs",
        "Ended",
        "Calls at 0.5",
    ]
    # conv 3x3x1x4 and 3x3x4x8 without bias, batch norm 4 numbers per channel, head 8 + 1; the
    # running means and variances (2 per channel) are not trained.
    total = 3 * 3 * 1 * 4 + 4 * 4 + 3 * 3 * 4 * 8 + 4 * 8 + 8 + 1
    assert table["Parameters"].tolist() == [total, total]
    assert table["Trained parameters"].tolist() == [total - 2 * (4 + 8)] * 2
    assert table.loc["baseline", ["AUROC", "Epochs", "Ended", "Calls at 0.5"]].tolist() == [
        0.71,
        3,
        "cap",
        "none",
    ]
    assert table.loc["collapsed", ["Ended", "Calls at 0.5"]].tolist() == ["plateau", "collapsed"]


def test_source_table_lists_the_source_runs_or_says_there_are_none():
    sources = {
        "VGG16 source task": StandInRun(
            ExperimentConfig(**TINY), {"accuracy": 0.6, "macro_auroc": 0.8}, epochs=2, hit_cap=True, train_images=306
        ),
        "ResNet-50 source task": StandInRun(
            ExperimentConfig(**TINY), {"accuracy": 0.4, "auroc": 0.7}, epochs=1, hit_cap=True, train_images=306
        ),
    }
    data = transfer_tables.source_table(sources, "source").data
    assert list(data["Backbone"]) == list(sources)
    assert data["Macro AUROC"].tolist() == [0.8, 0.7]  # the macro AUROC, else the run's AUROC
    assert data["Study-type accuracy"].tolist() == [0.6, 0.4] and data["Training images"].tolist() == [306, 306]
    html = transfer_tables.source_table({}, "ImageNet").to_html()
    assert "no source task in this build: the backbones start from ImageNet weights" in html


def test_paired_comparisons_are_in_the_chapter_order():
    groups = {"transfer": {"a": "t1", "b": "t2"}, "transfer modes": {"c": "m1"}, "architecture": {"d": "r1"}}
    plan = SimpleNamespace(comparisons=lambda group: groups.get(group, {}))
    assert transfer_tables.paired_comparisons(plan) == ["t1", "t2", "m1", "r1"]


@pytest.mark.parametrize("missing", ["transfer modes", "architecture"])
def test_paired_comparisons_skip_an_empty_group(missing):
    groups = {"transfer": {"a": "t1"}, "transfer modes": {"c": "m1"}, "architecture": {"d": "r1"}}
    groups[missing] = {}
    plan = SimpleNamespace(comparisons=lambda group: groups[group])
    assert len(transfer_tables.paired_comparisons(plan)) == 2
