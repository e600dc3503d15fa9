"""The values the chapters glue from real comparisons (single runs and configurations over
seeds): verdict lists and the multi-view model's values."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from mura_lib.configurations import compare_configurations
from mura_lib.evaluation import compare_paired


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


def test_verdict_lists_read_single_run_and_configuration_comparisons(better, same):
    """The lists the chapters glue, from comparisons of runs and of configurations alike (both
    say "undetermined"); each name can carry its difference and interval."""
    from mura_thesis import values

    paired_better = compare_paired(_studies(0.5), _studies(0.05), n_resamples=300, seed=0, name_a="the max", name_b="B")
    paired_same = compare_paired(_studies(0.2), _studies(0.2), n_resamples=300, seed=0, name_a="the vote", name_b="D")
    assert paired_better.verdict == "higher" and paired_same.verdict == "undetermined"
    rules = values.verdict_lists([paired_better, paired_same], lambda c: c.name_a.removeprefix("the "))
    assert rules == {
        "higher": "max",
        "any-higher": "yes",
        "lower": "none",
        "any-lower": "no",
        "undetermined": "vote",
        "any-undetermined": "yes",
    }
    assert better.verdict == "higher" and same.verdict == "undetermined"
    lists = values.verdict_lists([better, same], differences=True)
    assert lists["higher"].startswith("A (+") and " to " in lists["higher"] and lists["undetermined"].startswith("C (")


def test_multiview_values_read_the_run_the_data_and_the_comparison(better):
    from mura_thesis import values

    config = SimpleNamespace(max_views=2, image_size=48, epochs=1)
    run = SimpleNamespace(config=config, training={"epochs": 1, "stopped_early": False})
    images = pd.DataFrame({"study_path": ["s1", "s1", "s1", "s2", "s3", "s3"]})
    facts = values.multiview_values(run, better, images)
    assert facts["max-views"] == 2 and facts["truncated"] == 1  # only s1 has more than 2 views
    assert facts["mv-size"] == 48 and facts["mv-epochs"] == 1 and facts["mv-epochs-run"] == "1 epoch"
    assert facts["mv-ended"] == "cap" and facts["mv-verdict"] == better.verdict == "higher"
    assert facts["mv-auroc"] == better.auroc_a and facts["mean-auroc"] == better.auroc_b
    run.training["stopped_early"] = True
    assert values.multiview_values(run, better, images)["mv-ended"] == "plateau"
    run.training["schedule"] = "cosine"
    assert values.multiview_values(run, better, images)["mv-ended"] == "budget"
