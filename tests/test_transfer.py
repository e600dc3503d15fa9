"""Pretraining on the study-type source task and transferring its backbone to the abnormality task."""

import numpy as np
import pandas as pd
import pytest

from mura_lib.callbacks import MONITOR
from mura_lib.config import ExperimentConfig
from mura_lib.dataset import STUDY_TYPES
from mura_lib.evaluation import constant_predictions, is_constant
from mura_lib.models import backbone_layers, build_model, transfer_backbone_weights
from mura_lib.runs import RunStore
from mura_lib.training import run_experiment, run_key

TINY = dict(image_size=32, depth=2, width=8, epochs=2, batch_size=16, seed=1)
VGG = dict(model="vgg16", image_size=32, epochs=1, batch_size=16, weights=None, augment=False, seed=1)


def _weights(model, names):
    return {name: [np.array(w) for w in model.get_layer(name).get_weights()] for name in names}


def _assert_same(a, b):
    assert a.keys() == b.keys()
    for name in a:
        for x, y in zip(a[name], b[name], strict=True):
            np.testing.assert_array_equal(x, y, err_msg=name)


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    return RunStore(tmp_path_factory.mktemp("runs"))


@pytest.fixture(scope="module")
def cnn_source(dataset, cache_dir, store):
    config = ExperimentConfig(**TINY, task="study_type")
    return run_experiment(config, dataset, store=store, cache_dir=cache_dir, verbose="silent")


def test_source_run_stores_study_type_predictions_and_metrics(cnn_source):
    predictions = cnn_source.predictions
    columns = [f"p_{name}" for name in STUDY_TYPES]
    assert set(predictions["subset"]) == {"validation", "test"}
    np.testing.assert_allclose(predictions[columns].sum(axis=1), 1.0, atol=1e-4)
    assert predictions["predicted_type"].isin(STUDY_TYPES).all()
    np.testing.assert_allclose(predictions["probability"], predictions[columns].max(axis=1))
    # The stored metrics are the study-level accuracy of the test subset's views averaged per study.
    test = predictions.loc[predictions["subset"] == "test"]
    studies = test.groupby("study_path").agg({**{c: "mean" for c in columns}, "study_type": "first"})
    accuracy = (studies[columns].to_numpy().argmax(axis=1) == studies["study_type"].map(STUDY_TYPES.index)).mean()
    metrics = cnn_source.metrics
    assert metrics["task"] == "study_type" and "kappa" not in metrics
    assert metrics["accuracy"] == pytest.approx(accuracy)
    assert metrics["studies"] == len(studies)
    assert 0 <= metrics["macro_auroc"] <= 1 and 0 <= metrics["image_macro_auroc"] <= 1
    assert {"val_loss", "val_accuracy", "val_study_auroc", MONITOR} <= set(cnn_source.history.columns)
    assert cnn_source.history[MONITOR].between(0, 1).all()
    listed = RunStore(cnn_source.directory.parent).list().set_index("key").loc[cnn_source.key]
    assert listed["task"] == "study_type" and listed["accuracy"] == pytest.approx(accuracy)


def test_source_model_reloads_with_seven_outputs(cnn_source):
    model = cnn_source.load_model()
    assert model.output_shape == (None, len(STUDY_TYPES))
    assert model.get_layer("study_type").get_config()["activation"] == "softmax"


def test_transfer_copies_backbone_and_leaves_head(cnn_source):
    source_model = cnn_source.load_model()
    target = build_model(ExperimentConfig(**TINY, init_from=cnn_source.key))
    head_before = [np.array(w) for w in target.get_layer("abnormal").get_weights()]
    names = transfer_backbone_weights(source_model, target)
    assert names == ["conv1", "bn1", "conv2", "bn2"]
    _assert_same(_weights(target, names), _weights(source_model, names))
    for before, after in zip(head_before, target.get_layer("abnormal").get_weights(), strict=True):
        np.testing.assert_array_equal(before, after)
    # A model with other settings has another backbone: refused, not half copied.
    with pytest.raises(ValueError, match="same model settings"):
        transfer_backbone_weights(source_model, build_model(ExperimentConfig(**(TINY | {"depth": 3}))))


def test_run_key_changes_with_task_and_init_from(cnn_source):
    plain = ExperimentConfig(**TINY)
    keys = {
        run_key(plain, "data"),
        run_key(plain.replace(task="study_type"), "data"),
        run_key(plain.replace(init_from=cnn_source.key), "data"),
        run_key(plain.replace(init_from="0" * 16), "data"),
    }
    assert len(keys) == 4


def test_missing_or_unfinished_source_is_explained(dataset, cache_dir, tmp_path):
    store = RunStore(tmp_path)
    with pytest.raises(LookupError, match=r"0123456789abcdef, which is not in it .*train the source run first"):
        run_experiment(
            ExperimentConfig(**TINY, init_from="0123456789abcdef"),
            dataset,
            store=store,
            cache_dir=cache_dir,
            verbose="silent",
        )
    assert store.list().empty  # nothing was started
    store.start("fedcba9876543210", ExperimentConfig(**TINY).to_dict(), name="interrupted", data_root="x")
    with pytest.raises(LookupError, match="fedcba9876543210, which has not finished"):
        run_experiment(
            ExperimentConfig(**TINY, init_from="fedcba9876543210"),
            dataset,
            store=store,
            cache_dir=cache_dir,
            verbose="silent",
        )


def test_source_of_another_architecture_is_refused(cnn_source, dataset, cache_dir, store):
    with pytest.raises(ValueError, match="trained a 'cnn' model, but this configuration builds 'vgg16'"):
        run_experiment(
            ExperimentConfig(**VGG, init_from=cnn_source.key),
            dataset,
            store=store,
            cache_dir=cache_dir,
            verbose="silent",
        )


def test_invalid_task_and_init_from_are_explained():
    with pytest.raises(ValueError, match="task must be one of"):
        ExperimentConfig(task="fracture")
    with pytest.raises(ValueError, match="16-character key"):
        ExperimentConfig(init_from="runs/abc")
    with pytest.raises(ValueError, match="give only one of them"):
        ExperimentConfig(model="vgg16", weights="imagenet", init_from="0" * 16)


@pytest.fixture(scope="module")
def plan(synthetic_root, store, tmp_path_factory):
    """The plan's transfer experiment at a tiny scale: VGG16 pretrained on the study types of a
    small source corpus of its own, then frozen or fine-tuned, against VGG16 from random weights."""
    from mura_thesis.plan import ExperimentPlan, PlanSettings

    settings = PlanSettings(
        image_size=32,
        epochs=1,
        seeds=(0,),
        image_sizes=(32,),
        regularisation=False,
        development=False,
        backbones=("vgg16",),
        source_scale=0.005,
        n_resamples=100,
    )
    return ExperimentPlan(settings, synthetic_root, store.root, tmp_path_factory.mktemp("data") / "cache")


@pytest.fixture(scope="module")
def vgg_runs(plan):
    names = {"random init": "VGG16 random init", "source, frozen": "VGG16 source, frozen"}
    names["source, fine-tuned"] = "VGG16 source, fine-tuned"
    return plan.run("VGG16 source task"), {label: plan.run(name) for label, name in names.items()}


def test_source_corpus_is_its_own(plan, vgg_runs):
    source, _ = vgg_runs
    corpus = plan.source_dataset
    assert (
        corpus.root.parent.name == "source-scale0.005-seed1000"
        and corpus.root.parent.parent == plan.cache_dir.parent / "synthetic"
    )
    assert source.info["data_root"] == str(corpus.root) and source.config.task == "study_type"
    assert not set(corpus.images["relpath"].map(lambda p: (corpus.root / p).read_bytes())) & set(
        plan.dataset.images["relpath"].head(50).map(lambda p: (plan.dataset.root / p).read_bytes())
    )


def test_frozen_transfer_keeps_source_backbone_fine_tuned_changes_it(vgg_runs):
    source, runs = vgg_runs
    frozen, tuned, scratch = runs["source, frozen"], runs["source, fine-tuned"], runs["random init"]
    source_model = source.load_model()
    names = [layer.name for layer in backbone_layers(source_model)]
    assert names[0] == "block1_conv1" and len(names) == 13
    source_weights = _weights(source_model, names)
    _assert_same(_weights(frozen.load_model(), names), source_weights)
    tuned_weights = _weights(tuned.load_model(), names)
    assert any(not np.array_equal(tuned_weights[n][0], source_weights[n][0]) for n in names)
    assert frozen.training["init_from"] == {"key": source.key, "name": source.name, "layers": 13}
    assert frozen.config.init_from == tuned.config.init_from == source.key and scratch.config.init_from is None
    assert tuned.config.learning_rate == 1e-4 and tuned.config.fine_tune and not frozen.config.fine_tune
    assert len({frozen.key, tuned.key, scratch.key}) == 3
    assert all(0 <= run.metrics["auroc"] <= 1 for run in runs.values())


def test_frozen_cnn_transfer_trains_only_the_head(cnn_source, dataset, cache_dir, store):
    frozen = run_experiment(
        ExperimentConfig(**(TINY | {"epochs": 1}), init_from=cnn_source.key),
        dataset,
        store=store,
        cache_dir=cache_dir,
        verbose="silent",
    )
    names = ["conv1", "bn1", "conv2", "bn2"]
    _assert_same(_weights(frozen.load_model(), names), _weights(cnn_source.load_model(), names))


def test_constant_predictions_are_flagged():
    varied = pd.DataFrame({"probability": [0.2, 0.4, 0.7, 0.9]})
    assert not is_constant(varied)
    assert "every probability is 0.5" in constant_predictions(pd.DataFrame({"probability": [0.5] * 4}))
    assert "every image is predicted normal" in constant_predictions(pd.DataFrame({"probability": [0.1, 0.2, 0.45]}))
    assert is_constant(pd.DataFrame({"probability": [0.3, 0.3 + 1e-8]}), tolerance=1e-6)
    types = pd.DataFrame({"p_XR_HAND": [0.9, 0.8], "p_XR_WRIST": [0.1, 0.2], "predicted_type": ["XR_HAND"] * 2})
    assert constant_predictions(types) == "every image is predicted XR_HAND"
    assert not is_constant(types.assign(predicted_type=["XR_HAND", "XR_WRIST"]))


def test_run_reports_constant_predictions(cnn_source, tmp_path):
    import shutil

    from mura_lib.runs import Run

    folder = tmp_path / "copy"
    shutil.copytree(cnn_source.directory, folder)
    predictions = cnn_source.predictions.assign(predicted_type="XR_WRIST")
    predictions.to_csv(folder / "predictions.csv", index=False)
    assert Run(folder).constant_predictions
    assert Run(folder).constant_note() == "every image is predicted XR_WRIST"
    test = predictions["subset"] == "test"
    predictions.loc[test, "predicted_type"] = np.resize(STUDY_TYPES, test.sum())
    predictions.to_csv(folder / "predictions.csv", index=False)
    assert not Run(folder).constant_predictions
