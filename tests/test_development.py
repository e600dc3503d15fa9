"""The model-development chapter's tables and numbers (mura_thesis.development), on tiny inputs."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from sklearn.metrics import roc_auc_score

from mura_lib.config import ExperimentConfig
from mura_lib.dataset import load_mura
from mura_lib.models import build_cnn, build_model
from mura_thesis import development

TINY = dict(image_size=16, depth=2, width=4, epochs=1, batch_size=8, seed=3)


def test_environment_table_lists_each_item_and_package_version():
    environment = {
        "backend": "tensorflow",
        "device": "CPU: test (2 cores)",
        "platform": "Linux-test",
        "versions": {"python": "3.11.7", "keras": "3.0.0"},
    }
    table = development.environment_table(environment, precision="mixed_float16")
    assert table.index.name == "item" and list(table.columns) == ["value"]
    assert table["value"].to_dict() == {
        "Keras backend": "tensorflow",
        "compute device": "CPU: test (2 cores)",
        "numeric precision": "mixed_float16",
        "platform": "Linux-test",
        "python version": "3.11.7",
        "keras version": "3.0.0",
    }


def test_environment_table_describes_this_machine_by_default():
    table = development.environment_table()
    assert table.loc["numeric precision", "value"] in ("float32", "mixed_float16", "mixed_bfloat16")
    assert "python version" in table.index


def test_example_image_is_the_seeded_sample_at_its_stored_size(synthetic_root):
    dataset = load_mura(synthetic_root)
    image = development.example_image(dataset, seed=5)
    assert image.dtype == np.uint8 and image.ndim == 2
    path = dataset.images.sample(1, random_state=5).iloc[0]["path"]
    with Image.open(path) as stored:
        np.testing.assert_array_equal(image, np.asarray(stored.convert("L")))
    assert max(image.shape) == 64  # the fixture's images are stored at 64 px on their long side


def test_layer_table_and_parameter_counts_follow_the_architecture():
    model = build_cnn(16, depth=2, width=4, dropout=0.5, l2=1e-4, batch_norm=True, augment=True, seed=0)
    table = development.layer_table(model)
    assert list(table.columns) == ["type", "output shape", "parameters"]
    assert table.loc["conv1", "output shape"] == "16 x 16 x 4" and table.loc["pool2", "output shape"] == "4 x 4 x 8"
    # 3x3 kernels without bias (batch normalisation follows), four numbers per batch-norm channel, 8 + 1 in the head.
    expected = {"conv1": 3 * 3 * 1 * 4, "bn1": 4 * 4, "conv2": 3 * 3 * 4 * 8, "bn2": 4 * 8, "abnormal": 8 + 1}
    assert table.loc[list(expected), "parameters"].to_dict() == expected
    assert table["parameters"].sum() == sum(expected.values()) == model.count_params()
    # The running means and variances of batch normalisation (2 per channel) are not trained.
    assert development.trainable_parameters(model) == sum(expected.values()) - 2 * (4 + 8)


def test_model_facts_read_the_settings_and_the_compiled_optimiser():
    config = ExperimentConfig(**TINY, learning_rate=3e-4)
    model = build_model(config)
    facts = development.model_facts(model, config)
    assert facts["beta1"] == pytest.approx(0.9) and facts["beta2"] == pytest.approx(0.999)
    assert facts["lr"] == 3e-4 and facts["depth"] == 2 and facts["width"] == 4 and facts["image-size"] == 16
    assert facts["epochs"] == "1 epoch"
    assert facts["parameters"] == model.count_params()
    # The plateau rules' patiences, in words that agree with their counts.
    plateau = ExperimentConfig(**TINY, min_epochs=1, lr_patience=2, early_stopping_patience=3)
    words = development.model_facts(build_model(plateau), plateau)
    assert (words["min-epochs"], words["stop-after-cut"], words["stop-after-cut-any"]) == ("1 epoch", "1 epoch", "yes")
    even = ExperimentConfig(**TINY, lr_patience=1, early_stopping_patience=1)
    words = development.model_facts(build_model(even), even)
    assert (words["stop-after-cut"], words["stop-after-cut-any"]) == ("0 epochs", "no")
    assert facts["trainable"] < facts["parameters"]
    assert model.optimizer is not None


def test_loss_weights_give_each_class_the_share_of_the_other():
    train = pd.DataFrame(
        {
            "study_type": ["XR_HAND"] * 4 + ["XR_WRIST"] * 5,
            "label": [0, 0, 0, 1, 0, 0, 1, 1, 1],
        }
    )
    table = development.loss_weights(train)
    assert list(table.columns) == ["normal images", "abnormal images", "normal weight", "abnormal weight"]
    assert table.index.name == "study type" and list(table.index) == ["hand", "wrist"]
    assert table.loc["hand", ["normal images", "abnormal images"]].tolist() == [3, 1]
    assert table.loc["hand", "normal weight"] == pytest.approx(1 / 4)
    assert table.loc["hand", "abnormal weight"] == pytest.approx(3 / 4)
    assert table.loc["wrist", "normal weight"] == pytest.approx(3 / 5)
    assert table.loc["wrist", "abnormal weight"] == pytest.approx(2 / 5)


def test_training_loss_weights_count_the_training_subset(synthetic_root, tmp_path):
    dataset = load_mura(synthetic_root)
    config = ExperimentConfig(**TINY)
    table = development.training_loss_weights(dataset, config, tmp_path)
    counted = table[["normal images", "abnormal images"]].to_numpy().sum()
    train_images = len(dataset.images.loc[dataset.images["split"] == "train"])
    validation = int(round(config.validation_fraction * train_images))
    assert 0 < counted < train_images and abs((train_images - counted) - validation) < 0.5 * validation
    np.testing.assert_allclose(table["normal weight"] + table["abnormal weight"], 1.0, rtol=1e-6)


def _predictions(seed: int = 0, studies: int = 40) -> pd.DataFrame:
    """Image predictions of a validation and a test subset: 1 to 3 views per study."""
    rng = np.random.default_rng(seed)
    rows = []
    for subset in ("validation", "test"):
        for number in range(studies):
            label = number % 2
            for _ in range(rng.integers(1, 4)):
                rows.append(
                    {
                        "subset": subset,
                        "study_path": f"{subset}/XR_HAND/patient{number}/study1",
                        "study_type": "XR_HAND",
                        "label": label,
                        "probability": float(np.clip(0.35 + 0.3 * label + rng.normal(0, 0.2), 0, 1)),
                    }
                )
    return pd.DataFrame(rows)


def test_compare_rules_scores_each_rule_on_the_validation_subset_only():
    predictions = _predictions()
    rules = development.compare_rules(predictions, n_resamples=200, seed=0)
    validation = predictions.loc[predictions["subset"] == "validation"]
    assert list(rules.table.index) == [("single images", "none")] + [
        ("studies", rule) for rule in ("mean", "max", "median", "vote")
    ]
    assert rules.table.loc[("single images", "none"), "AUROC"] == pytest.approx(
        roc_auc_score(validation["label"], validation["probability"])
    )
    assert rules.table.loc[("single images", "none"), "Count"] == len(validation)
    grouped = validation.groupby("study_path")
    for rule, values in (("mean", grouped["probability"].mean()), ("max", grouped["probability"].max())):
        labels = grouped["label"].first()
        assert rules.table.loc[("studies", rule), "AUROC"] == pytest.approx(roc_auc_score(labels, values))
        assert rules.table.loc[("studies", rule), "Count"] == 40
    assert set(rules.comparisons) == {"max", "median", "vote"}
    assert rules.comparisons["max"].name_a == "the max" and rules.comparisons["max"].name_b == "the mean"
    assert rules.comparisons["max"].studies == 40

    facts = rules.facts()
    assert facts["validation-studies"] == 40
    assert facts["mean-auroc"] == rules.table.loc[("studies", "mean"), "AUROC"]
    assert set(facts) == {"validation-studies", "mean-auroc", "image-auroc"}


def test_compare_rules_names_a_missing_subset():
    predictions = _predictions()
    with pytest.raises(ValueError, match="no images of the subset 'validation'.*'test'"):
        development.compare_rules(predictions.loc[predictions["subset"] == "test"], n_resamples=200, seed=0)
