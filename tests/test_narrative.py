"""The sentences of the model-development, pretrained-models and extensions chapters
(mura_lib.narrative), from stand-in comparisons and plans."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from mura_lib import narrative
from mura_lib.configurations import compare_configurations
from mura_lib.evaluation import compare_paired
from mura_lib.plan import PlanSettings


def _studies(shift: float, seed: int = 0, n: int = 60) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 2
    return pd.DataFrame(
        {
            "study_path": [f"test/XR_HAND/patient{i}/study1" for i in range(n)],
            "study_type": "XR_HAND",
            "label": labels,
            "probability": np.clip(0.3 + shift * labels + rng.normal(0, 0.1, n), 0, 1),
        }
    )


def _arm(shift: float, seeds=(0, 1, 2)) -> dict:
    return {seed: _studies(shift, seed=seed) for seed in seeds}


@pytest.fixture(scope="module")
def better():
    """A clearly better configuration against a barely informative one, over three seeds each:
    the interval lies above 0."""
    return compare_configurations(_arm(0.5), _arm(0.05), n_resamples=300, seed=0, name_a="A", name_b="B")


@pytest.fixture(scope="module")
def same():
    return compare_configurations(_arm(0.2), _arm(0.2), n_resamples=300, seed=0, name_a="C", name_b="D")


def test_rule_choice_keeps_the_mean_and_names_a_better_rule():
    # The aggregation rules are compared on the studies of one run: paired comparisons of two rules.
    better = compare_paired(_studies(0.5), _studies(0.05), n_resamples=300, seed=0, name_a="A", name_b="B")
    same = compare_paired(_studies(0.2), _studies(0.2), n_resamples=300, seed=0, name_a="C", name_b="D")
    assert better.verdict == "higher" and same.verdict == "no detectable difference"
    assert narrative.rule_choice_sentence({"max": same}) == (
        "No rule scored detectably higher than the mean, so the thesis keeps the paper's rule."
    )
    text = narrative.rule_choice_sentence({"max": better, "vote": same})
    assert text.startswith("The max scored higher than the mean") and "nevertheless keeps the mean" in text


def test_development_choice_names_the_alternatives_that_did_better(better, same):
    assert better.verdict == "higher" and same.verdict == "undetermined"
    assert narrative.development_choice_sentence({"x": same}).startswith("None of the alternatives did detectably")
    text = narrative.development_choice_sentence({"x": better, "y": same})
    assert text.startswith("On the validation subset A did better") and "limitation" in text


def _plan(pretraining="source", backbones=("cnn",), groups=None, **settings):
    groups = groups or {}
    return SimpleNamespace(
        settings=PlanSettings(backbones=backbones, **settings),
        pretraining=pretraining,
        comparisons=lambda group: groups.get(group, {}),
    )


def test_backbone_words_and_pretraining_sentence_follow_the_build():
    assert narrative.backbone_words(PlanSettings(backbones=("vgg16", "resnet50"))) == "VGG16 and ResNet-50"
    source = narrative.pretraining_sentence(_plan(backbones=("resnet50",)))
    assert "ResNet-50 is first trained from random weights" in source and "source task" in source
    two = narrative.pretraining_sentence(_plan(backbones=("cnn", "vgg16")))
    assert "Ab-initio CNN and VGG16 are first trained" in two
    imagenet = narrative.pretraining_sentence(_plan("ImageNet", backbones=("densenet169",)))
    assert imagenet.startswith("In this build DenseNet-169 start from their ImageNet weights.")
    weights = narrative.pretraining_sentence(_plan("weights", pretrained_weights="w.h5"))
    assert "start from the weights in w.h5" in weights


def test_transfer_modes_and_architecture_sentences(better, same):
    assert narrative.transfer_modes_sentence(_plan()) == "Only one mode was trained, so the modes are not compared."
    modes = narrative.transfer_modes_sentence(_plan(groups={"transfer modes": {"m": better}}))
    assert modes.startswith("A against B (over 3 seeds each): AUROC higher")
    assert narrative.architecture_sentence(_plan(groups={"architecture": {"r": same}})).startswith("C against D")
    other_size = _plan(backbones=("vgg16",), image_size=32, backbone_image_size=64)
    assert "another input size" in narrative.architecture_sentence(other_size)
    assert narrative.architecture_sentence(_plan(backbones=("vgg16",), image_size=32)) == ""
    assert narrative.architecture_sentence(_plan(backbones=("cnn",), image_size=32, backbone_image_size=64)) == ""


def test_comparison_sentences_after_other_sentences_start_with_a_capital(better):
    lower = compare_configurations(_arm(0.5), _arm(0.05), n_resamples=300, seed=0, name_a="ab-initio CNN", name_b="B")
    assert narrative.transfer_modes_sentence(_plan(groups={"transfer modes": {"m": lower}})).startswith("Ab-initio CNN")
    assert narrative.architecture_sentence(_plan(groups={"architecture": {"r": lower}})).startswith("Ab-initio CNN")


def test_backbone_cautions_depend_on_the_backbones():
    assert "224-pixel colour photographs" in narrative.backbone_cautions(PlanSettings(backbones=("cnn", "vgg16")))
    assert "the ab-initio CNN itself" in narrative.backbone_cautions(PlanSettings(backbones=("cnn",)))


def test_multiview_facts_read_the_run_the_data_and_the_comparison(better, same):
    config = SimpleNamespace(max_views=2, image_size=48, epochs=1)
    run = SimpleNamespace(config=config, training={"epochs": 1, "stopped_early": False})
    images = pd.DataFrame({"study_path": ["s1", "s1", "s1", "s2", "s3", "s3"]})
    facts = narrative.multiview_facts(run, better, images)
    assert facts["max-views"] == 2 and facts["truncated"] == 1  # only s1 has more than 2 views
    assert facts["mv-size"] == 48 and facts["mv-epochs"] == "1 epoch" and facts["mv-epochs-run"] == 1
    assert facts["mv-stopping"] == "its cap; the plateau rules did not stop it"
    assert facts["mv-auroc"] == better.auroc_a and facts["mean-auroc"] == better.auroc_b
    assert facts["mv-verdict"] == narrative.verdict_sentence(better)
    run.training["stopped_early"] = True
    assert (
        narrative.multiview_facts(run, better, images)["mv-stopping"]
        == "the plateau rules stopped it before its cap of 1 epoch"
    )
    run.training["schedule"] = "cosine"
    assert narrative.multiview_facts(run, better, images)["mv-stopping"] == "its fixed budget"
