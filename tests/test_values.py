"""The values the chapters' text is built from: verdict words, signed differences, short lists."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from mura_thesis import values


def _comparison(name_a, verdict, diff=0.01, kappa_verdict=None, name_b="baseline"):
    return SimpleNamespace(
        name_a=name_a,
        name_b=name_b,
        verdict=verdict,
        kappa_verdict=kappa_verdict or verdict,
        auroc_diff=diff,
        auroc_low=diff - 0.02,
        auroc_high=diff + 0.02,
        kappa_diff=2 * diff,
        kappa_low=2 * diff - 0.05,
        kappa_high=2 * diff + 0.05,
        p_seed_beats=0.5,
        seeds_a=(0, 1, 2),
    )


def test_signed_uses_a_true_minus_and_says_when_a_value_is_missing():
    assert values.signed(-0.0123) == "\u22120.012" and values.signed(0.0123) == "+0.012"
    assert values.signed(float("nan")) == "n/a" and values.signed(None) == "n/a"


@pytest.mark.parametrize(
    ("words", "joined"), [([], ""), (["a"], "a"), (["a", "b"], "a and b"), (["a", "b", "c"], "a, b and c")]
)
def test_join_words(words, joined):
    assert values.join_words(words) == joined


def test_group_values_name_each_arm_and_mark_the_absent_ones():
    comparisons = {
        "no dropout vs baseline": _comparison("no dropout", "undetermined", 0.009),
        "no batch normalisation vs baseline": _comparison("no batch normalisation", "lower", -0.165, "undetermined"),
    }
    glued = values.group_values(comparisons, ["no dropout", "no L2", "no batch normalisation"])
    assert glued["no-dropout-verdict"] == "undetermined" and glued["no-dropout-diff"] == "+0.009"
    assert glued["no-batch-normalisation-low"] == "\u22120.185" and glued["no-dropout-beats"] == "50%"
    assert glued["no-l2-verdict"] == "absent" and "no-l2-diff" not in glued
    assert glued["kappa-differs"] == "no batch normalisation" and glued["kappa-agrees"] == "no"


def _run(schedule="cosine", cap=20, hit_cap=False, probabilities=(0.2, 0.8)):
    studies = pd.DataFrame({"probability": np.array(probabilities, dtype=float), "label": [0, 1]})
    return SimpleNamespace(
        training={"schedule": schedule, "cap": cap}, hit_cap=hit_cap, study_predictions=lambda subset: studies
    )


def test_how_training_ended():
    assert values.how_training_ended({"a": _run(), "b": _run(cap=30)}) == {
        "ended": "budget",
        "budget": "20 or 30",
        "capped": "none",
    }
    plateau = {"a": _run("plateau"), "b": _run("plateau", hit_cap=True)}
    assert values.how_training_ended(plateau) | {} == {"ended": "mixed", "budget": "none", "capped": "b"}
    assert values.how_training_ended({"a": _run("plateau")})["ended"] == "plateau"


def test_call_flags_name_runs_far_from_the_prevalence_and_collapsed_ones():
    runs = {
        0: _run(probabilities=(0.2, 0.8)),  # half called abnormal, prevalence a half
        1: _run(probabilities=(0.6, 0.8)),  # every study: collapsed
        2: SimpleNamespace(
            study_predictions=lambda subset: pd.DataFrame({"label": [0, 1] * 5, "probability": [0.2] * 2 + [0.7] * 8})
        ),  # 80% called abnormal: 30 points from the prevalence
        3: _run(probabilities=(0.4, 0.4)),  # one probability for every study: collapsed
    }
    glued = values.call_flags(runs, name=lambda seed: f"seed {seed}")
    assert glued["far"] == "seed 2" and glued["any-far"] == "yes"
    assert glued["collapsed"] == "seed 1 and seed 3" and glued["any-collapsed"] == "yes"
    assert glued["far-points"] == 15 and glued["called-range"] == "0% to 100%"
    assert values.call_flags({0: _run(), 1: _run()})["called-range"] == "50%"
    assert values.call_flags({0: _run()})["any-far"] == "no"


def test_operating_values_quote_numbers_and_readings():
    point = {
        "threshold": 0.62,
        "validation_studies": 40,
        "kappa_default": -0.01,
        "kappa_chosen": 0.45,
        "kappa_diff": 0.14,
        "kappa_low": 0.05,
        "kappa_high": 0.22,
        "verdict": "higher",
        "called_default": 0.8,
        "called_chosen": 0.47,
        "prevalence": 0.45,
        "flag": "far",
    }
    calibration = {
        "brier": 0.2,
        "ece": 0.1,
        "bins": 10,
        "overconfidence": -0.02,
        "overconfidence_low": -0.05,
        "overconfidence_high": 0.01,
        "reading": "undetermined",
        "mean_probability": 0.6,
    }
    glued = values.operating_values(point, calibration)
    assert (
        glued["kappa-default"] == "\u22120.010"
        and glued["kappa-diff"] == "+0.140"
        and glued["kappa-verdict"] == "higher"
    )
    assert glued["overconfidence-low"] == "\u22120.050" and glued["confidence"] == "undetermined"
    assert glued["flag"] == "far" and glued["threshold"] == 0.62 and glued["brier"] == 0.2 and glued["bins"] == 10


def _plan(groups: dict, pretraining="source", image_size=48, seeds=(0, 1, 2), backbones=("resnet50",), size=48):
    return SimpleNamespace(
        settings=SimpleNamespace(
            image_size=image_size, arm_seeds=list(seeds), backbones=list(backbones), backbone_size=size
        ),
        pretraining=pretraining,
        comparisons=lambda group: groups.get(group, {}),
        trains=lambda group: bool(groups.get(group)),  # here: a group without comparisons is switched off
    )


def test_findings_sort_the_recommended_choices_by_verdict():
    plan = _plan(
        {
            "image size": {
                "32 px vs 48 px": _comparison("32 px", "lower", -0.047),
                "64 px vs 48 px": _comparison("64 px", "undetermined", 0.011),
            },
            "regularisation": {
                "no dropout vs baseline": _comparison("no dropout", "undetermined"),
                "no L2 vs baseline": _comparison("no L2", "higher"),
                "no batch normalisation vs baseline": _comparison("no batch normalisation", "lower"),
            },
            "transfer": {
                "ab-initio CNN source, frozen vs random init": _comparison("ab-initio CNN source, frozen", "lower"),
                "ab-initio CNN source, fine-tuned vs random init": _comparison(
                    "ab-initio CNN source, fine-tuned", "higher"
                ),
            },
        }
    )
    found = values.findings(plan, {"auroc_low": 0.76})
    assert found["signal"] == "above" and found["seeds"] == 3
    assert (found["size-smaller"], found["size-smaller-verdict"], found["size-smaller-diff"]) == (
        32,
        "lower",
        "\u22120.047",
    )
    assert (found["size-larger"], found["size-larger-verdict"]) == (64, "undetermined")
    assert found["reg-lower"] == "batch normalisation" and found["reg-higher"] == "L2"
    assert found["reg-undetermined"] == "dropout" and found["reg-any-undetermined"] == "yes"
    assert (
        found["transfer-higher"] == "ab-initio CNN (fine-tuned)" and found["transfer-lower"] == "ab-initio CNN (frozen)"
    )
    assert found["pretraining"] == "source"
    assert found["improved"] == (
        "a 48-pixel input rather than 32, batch normalisation and pretrained weights for ab-initio CNN (fine-tuned)"
    )
    assert (
        found["worsened"] == "L2 and pretrained weights for ab-initio CNN (frozen)" and found["any-worsened"] == "yes"
    )


def test_findings_of_a_build_without_comparisons():
    found = values.findings(_plan({}), {"auroc_low": 0.45})
    assert found["signal"] == "chance"
    assert found["size-larger-verdict"] == found["size-smaller-verdict"] == found["pretraining"] == "absent"
    assert found["reg-any-lower"] == found["any-improved"] == found["transfer-any-higher"] == "no"


def test_seed_values():
    summary = {"n": 3, "mean": 0.78, "sd": 0.01, "sd_low": 0.005, "sd_high": 0.06}
    pairs = {
        "seed 1 vs seed 0": SimpleNamespace(verdict="undetermined", auroc_diff=-0.001),
        "seed 2 vs seed 0": SimpleNamespace(verdict="higher", auroc_diff=0.02),
    }
    seeds = values.seed_values(summary, pairs)
    assert seeds["several"] == "yes" and seeds["pairs-detected"] == "some" and seeds["detected"] == 1
    assert seeds["pair-diffs"] == "\u22120.001 and +0.020"
    single = values.seed_values({"n": 1, "mean": 0.7}, {})
    assert single["several"] == "no" and single["pairs-detected"] == "absent"


def test_transfer_values_sort_each_kind_of_comparison():
    plan = _plan(
        {
            "transfer": {
                "ResNet-50 source, frozen vs random init": _comparison("ResNet-50 source, frozen", "undetermined"),
                "ResNet-50 source, fine-tuned vs random init": _comparison("ResNet-50 source, fine-tuned", "higher"),
            },
            "transfer modes": {
                "ResNet-50 fine-tuned vs frozen": _comparison("ResNet-50 source, fine-tuned", "higher"),
            },
            "architecture": {"ResNet-50 random init vs baseline": _comparison("ResNet-50 random init", "lower")},
        }
    )
    runs = {"ResNet-50 source, frozen": _run(), "ResNet-50 source, fine-tuned": _run(probabilities=(0.7, 0.9))}
    sources = {
        "ResNet-50 source task": SimpleNamespace(metrics={"accuracy": 0.9812, "studies": 160}),
        "CNN source task": SimpleNamespace(metrics={"accuracy": 1.0, "studies": 160}),
    }
    found = values.transfer_values(plan, runs, sources)
    assert (
        found["transfer-higher"] == "ResNet-50 (fine-tuned)" and found["transfer-undetermined"] == "ResNet-50 (frozen)"
    )
    assert found["modes-higher"] == "ResNet-50" and found["modes-any-lower"] == "no"
    assert found["architecture-lower"] == "ResNet-50" and found["architecture-any-higher"] == "no"
    assert found["ended"] == "budget" and found["collapsed"] == "ResNet-50 source, fine-tuned"
    assert found["source-accuracy"] == "0.981 to 1.000" and found["source-learned"] == "yes"
    assert values.transfer_values(plan, runs, {})["source-accuracy"] == "n/a"
    assert found["architecture-other-size"] == "no"
    assert values.transfer_values(_plan({}, size=64), runs, {})["architecture-other-size"] == "yes"


def test_pretraining_values_name_the_backbones_and_the_source_of_their_weights():
    plan = SimpleNamespace(
        pretraining="ImageNet", settings=SimpleNamespace(backbones=["cnn", "resnet50"], pretrained_weights="imagenet")
    )
    assert values.pretraining_values(plan) == {
        "pretraining": "ImageNet",
        "names": "ab-initio CNN and ResNet-50",
        "weights-file": "imagenet",
        "keras": "yes",
    }


def test_a_source_run_at_chance_did_not_learn():
    chance = SimpleNamespace(metrics={"accuracy": 2 / 14, "studies": 14})
    learned = SimpleNamespace(metrics={"accuracy": 12 / 14, "studies": 14})
    assert values.source_learned({"a": learned}) == "yes"
    assert values.source_learned({"a": learned, "b": chance}) == "no"
    assert values.source_learned({}) == "absent"


def test_headline_values():
    headline = {"auroc": 0.8, "auroc_low": 0.7, "auroc_high": 0.9, "kappa": 0.5, "kappa_low": 0.4,
                "kappa_high": 0.6, "studies": 121.0}  # fmt: skip
    glued = values.headline_values(headline)
    assert glued == {"auroc": 0.8, "auroc-low": 0.7, "auroc-high": 0.9, "kappa": 0.5, "kappa-low": 0.4,
                      "kappa-high": 0.6, "studies": 121}  # fmt: skip
    assert isinstance(glued["studies"], int)
