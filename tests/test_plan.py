"""The experiment plan and the sentences drawn from it: fast, no training."""

from types import SimpleNamespace

import pytest

from mura_lib.configurations import ConfigurationComparison
from mura_lib.evaluation import Comparison
from mura_thesis import tables
from mura_thesis.plan import ExperimentPlan, PlanSettings
from mura_thesis.profiles import profile_settings

from .conftest import REPO


def _plan(profile: str, **changes) -> ExperimentPlan:
    settings = PlanSettings.from_dict(profile_settings(profile, REPO) | changes)
    return ExperimentPlan(settings, "unused")


def test_demo_plan_names_every_run_and_comparison():
    plan = _plan("demo")
    s = plan.settings
    assert len(s.seeds) >= 3  # the seed spread needs at least three runs
    assert plan.planned("seed 0") is plan.planned("baseline")
    # Every comparison is against a run at the baseline's configuration but for one change.
    for comparison in plan.comparisons_planned.values():
        a, b = plan.runs[comparison.a].config, plan.runs[comparison.b].config
        changed = {k for k, v in a.to_dict().items() if v != b.to_dict()[k]}
        # Comparisons of configurations are over every seed of both arms; those of the group
        # "seeds" compare single runs of the baseline.
        assert comparison.level == ("run" if comparison.group == "seeds" else "configuration"), comparison.name
        # A pretrained run differs from its random-initialisation twin by its source (init_from,
        # filled in once the source run's key is known).
        assert changed or plan.runs[comparison.a].source != plan.runs[comparison.b].source, comparison.name
        if comparison.group == "regularisation":
            assert len(changed) == 1 and comparison.b == "baseline"
        if comparison.group == "image size":
            assert changed == {"image_size"}
        if comparison.group == "seeds":
            assert changed == {"seed"}
    # Model choices are judged on the validation subset, results on the test studies.
    subsets = {c.group: c.subset for c in plan.comparisons_planned.values()}
    assert subsets["development"] == "validation" and subsets["regularisation"] == "test"


def test_demo_tests_pretraining_against_random_initialisation_at_the_same_budget():
    plan = _plan("demo")
    transfer = [c for c in plan.comparisons_planned.values() if c.group == "transfer"]
    assert {c.a for c in transfer} == {"ab-initio CNN source, frozen", "ab-initio CNN source, fine-tuned"}
    source = plan.runs["ab-initio CNN source task"]
    assert source.dataset == "source" and source.config.task == "study_type"
    for comparison in transfer:
        pretrained, random = plan.runs[comparison.a], plan.runs[comparison.b]
        assert pretrained.source == "ab-initio CNN source task"
        assert (pretrained.config.image_size, pretrained.config.epochs) == (
            random.config.image_size,
            random.config.epochs,
        )
        assert random.config.init_from is None and random.config.weights is None


def test_full_plan_compares_imagenet_with_random_initialisation():
    plan = _plan("full")
    assert plan.pretraining == "ImageNet"
    assert not [p for p in plan.runs.values() if p.dataset == "source"]
    frozen = plan.runs["DenseNet-169 ImageNet, frozen"]
    assert frozen.config.weights == "imagenet" and not frozen.config.fine_tune
    # The fine-tuned backbone trains at the smaller rate, and so does its random-initialisation reference.
    fine = plan.comparisons_planned["DenseNet-169 ImageNet, fine-tuned vs random init"]
    assert fine.b == "DenseNet-169 random init (learning rate 0.0001)"
    assert plan.comparisons_planned["DenseNet-169 ImageNet, frozen vs random init"].b == "DenseNet-169 random init"


def test_settings_are_checked():
    with pytest.raises(ValueError, match="unknown experiment settings"):
        PlanSettings.from_dict({"epoch": 3})
    with pytest.raises(ValueError, match="backbones"):
        PlanSettings(backbones=("alexnet",))
    with pytest.raises(ValueError, match="seeds must be a list"):
        PlanSettings(seeds=3)
    assert PlanSettings(seeds=[0, 1]).seeds == (0, 1)


def _comparison(diff, low, high, *, name_a="A", name_b="B", kappa=(0.0, -0.1, 0.1), seeds=(0, 1, 2)):
    """A comparison of two configurations over ``seeds`` each, decided at its plain interval."""
    return ConfigurationComparison(
        name_a=name_a,
        name_b=name_b,
        seeds_a=tuple(seeds),
        seeds_b=tuple(seeds),
        studies=900,
        auroc_a=0.8 + diff,
        auroc_b=0.8,
        auroc_diff=diff,
        auroc_low=low,
        auroc_high=high,
        auroc_p=0.01,
        kappa_a=0.5,
        kappa_b=0.5 - kappa[0],
        kappa_diff=kappa[0],
        kappa_low=kappa[1],
        kappa_high=kappa[2],
        kappa_p=0.5,
        p_seed_beats=0.75,
        seed_level=True,
        confidence=0.95,
        auroc_adj_low=low,
        auroc_adj_high=high,
        kappa_adj_low=kappa[1],
        kappa_adj_high=kappa[2],
    )


def _run_comparison(diff, low, high):
    """A paired comparison of two single runs (the group "seeds")."""
    return Comparison(
        name_a="seed 1", name_b="seed 0", studies=900, auroc_a=0.8 + diff, auroc_b=0.8, auroc_diff=diff,
        auroc_low=low, auroc_high=high, delong_p=0.01, kappa_a=0.5, kappa_b=0.5, kappa_diff=0.0,
        kappa_low=-0.1, kappa_high=0.1,
    )  # fmt: skip


def _run(auroc, kappa, epochs, best, cap, seconds=10.0, image_size=32):
    history = __import__("pandas").DataFrame({"epoch": range(epochs)})
    return SimpleNamespace(
        metrics={"auroc": auroc, "kappa": kappa},
        history=history,
        training={"best_epoch": best, "cap": cap},
        hit_cap=epochs == cap,
        environment={"train_seconds_last_session": seconds},
        config=SimpleNamespace(image_size=image_size),
        study_predictions=lambda subset: __import__("pandas").DataFrame(
            {"probability": [0.2, 0.8, 0.3, 0.7], "label": [0, 1, 0, 1]}
        ),
    )


def test_runs_table_has_one_row_per_run_in_the_order_asked():
    runs = {"64 px": _run(0.8, 0.5, 5, 3, 8, 40.0, 64), "baseline": _run(0.7, 0.4, 8, 8, 8, 20.0, 32)}
    table = tables.runs_table(runs, index="Image size (px)", by=lambda run: run.config.image_size, time=True)
    assert list(table.index) == [32, 64]
    assert table.loc[64, "AUROC"] == 0.8 and table.loc[32, "Epochs"] == 8 and table.loc[64, "Epoch kept"] == "3"
    assert list(table["Ended"]) == ["cap", "plateau"] and table.loc[64, "Training time (s)"] == 40.0
    budget = _run(0.8, 0.5, 20, 17, 20)
    budget.training |= {"schedule": "cosine"}
    budget.kept = "18\u201320"
    assert tables.runs_table({"x": budget}).loc["x", ["Epoch kept", "Ended"]].tolist() == ["18\u201320", "budget"]
    plain = tables.runs_table(runs, index="Variant")
    assert list(plain.index) == ["64 px", "baseline"] and "Training time (s)" not in plain


def test_training_values_say_how_a_run_ended():
    from mura_thesis import values

    capped, stopped = _run(0.7, 0.4, 8, 8, 8), _run(0.7, 0.4, 1, 1, 8)
    assert values.training_values(capped) == {
        "epochs": 8,
        "cap": 8,
        "ended": "cap",
        "kept": "best",
        "kept-from": 0,
        "kept-to": 0,
        "best-epoch": 8,
    }
    budget = _run(0.7, 0.4, 20, 12, 20)
    budget.training |= {"schedule": "cosine", "kept_epochs": [20]}
    assert values.training_values(budget)["ended"] == "budget" and values.training_values(budget)["kept"] == "last"
    budget.training["kept_epochs"] = [18, 19, 20]
    averaged = values.training_values(budget)
    assert (averaged["kept"], averaged["kept-from"], averaged["kept-to"]) == ("average", 18, 20)
    assert values.training_values(stopped)["ended"] == "plateau"


def test_every_arm_is_trained_with_every_seed_with_common_random_numbers():
    plan = _plan("demo")
    seeds = plan.settings.arm_seeds
    assert seeds[0] == plan.settings.seed and sorted(seeds) == sorted({plan.settings.seed, *plan.settings.seeds})
    for arm, runs in plan.arms.items():
        if plan.runs[runs[seeds[0]]].dataset == "source":
            assert list(runs) == [plan.settings.seed], arm  # one source run, shared by every seed
            continue
        assert tuple(runs) == seeds, arm
        configs = [plan.runs[name].config for name in runs.values()]
        # Seeds differ in their seed only, and every seed of every arm is validated on the same
        # studies (one split seed for the whole plan).
        assert [c.seed for c in configs] == list(seeds)
        assert {c.replace(seed=0) for c in configs} == {configs[0].replace(seed=0)}
        assert {c.split_seed for c in configs} == {plan.settings.seed}
        assert all(plan.runs[name].arm == arm for name in runs.values())
    # Seed s of a dependent arm starts from seed s of the arm it is initialised from.
    assert plan.runs["multi-view, seed 1"].source == "seed 1"
    assert plan.runs["ab-initio CNN source, fine-tuned, seed 2"].source == "ab-initio CNN source task"
    # The baseline's other seeds keep their names, the other arms' seeds are named after the arm.
    assert plan.run_name("baseline", 2) == "seed 2" and plan.run_name("no L2", 2) == "no L2, seed 2"
    assert plan.run_name("no L2", plan.settings.seed) == "no L2"
    for comparison in plan.comparisons_planned.values():
        if comparison.level == "configuration":
            assert comparison.a in plan.arms and comparison.b in plan.arms, comparison.name


def test_each_pretrained_arm_has_a_reference_at_its_own_learning_rate():
    plan = _plan("demo")
    for comparison in plan.comparisons_planned.values():
        if comparison.group != "transfer":
            continue
        pretrained, random = plan.runs[comparison.a].config, plan.runs[comparison.b].config
        assert pretrained.learning_rate == random.learning_rate, comparison.name
        assert random.init_from is None and random.weights is None
    fine = plan.comparisons_planned["ab-initio CNN source, fine-tuned vs random init"]
    assert plan.runs[fine.b].config.learning_rate == plan.settings.fine_tune_learning_rate != 1e-3
    assert plan.comparisons_planned["ab-initio CNN source, frozen vs random init"].b == "baseline"
    # Without a fine-tuned mode there is no reference at the smaller rate.
    frozen_only = _plan("demo", backbone_modes=["frozen"])
    assert not [a for a in frozen_only.arms if "learning rate" in a]


def test_seeds_must_be_distinct():
    with pytest.raises(ValueError, match="repeat"):
        PlanSettings(seeds=[0, 0])


def test_arm_table_lists_what_each_arm_changes_and_its_seeds():
    plan = _plan("demo")
    sizes = plan.arm_table("image size")
    assert list(sizes.index) == ["baseline", "32 px", "64 px"]
    assert sizes.loc["baseline", "changes from the baseline"] == "none"
    assert sizes.loc["32 px", "changes from the baseline"] == "image_size = 32"
    assert set(sizes["seeds"]) == {", ".join(str(s) for s in plan.settings.arm_seeds)}
    regularisation = plan.arm_table("regularisation")
    assert regularisation.loc["no dropout", "changes from the baseline"] == "dropout = 0.0"
    transfer = plan.arm_table("transfer")
    started = transfer[transfer["starts from"] != "none"]
    # The pretrained arms start from the source task's run; the random-initialisation arms do not.
    assert len(started) == 2 and set(started["starts from"]) == {
        plan.runs[plan.arms["ab-initio CNN source task"][0]].label
    }
    source = plan.arm_table("source")
    assert source.iloc[1]["data"] == "source corpus" and source.iloc[1]["seeds"] == "0"


def test_seed_comparisons_name_the_seeds_not_their_arm():
    plan = _plan("demo")
    seeds = {name: c for name, c in plan.comparisons_planned.items() if c.group == "seeds"}
    assert seeds and all(plan._names(c) == tuple(name.split(" vs ")) for name, c in seeds.items())
