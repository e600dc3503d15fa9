import json
import shutil

import keras
import numpy as np
import pandas as pd
import pytest

from mura_lib.config import ExperimentConfig
from mura_lib.runs import RunStore
from mura_lib.training import run_experiment

TINY = dict(image_size=32, depth=2, width=8, epochs=3, batch_size=16, seed=1)


class Interrupt(Exception):
    pass


class InterruptAfter(keras.callbacks.Callback):
    """Stands in for a killed process: stops training after the given epoch was checkpointed."""

    def __init__(self, epoch):
        super().__init__()
        self.epoch = epoch

    def on_epoch_end(self, epoch, logs=None):
        if epoch == self.epoch:
            raise Interrupt()


@pytest.fixture(scope="module")
def reference(dataset, cache_dir, tmp_path_factory):
    store = RunStore(tmp_path_factory.mktemp("runs"))
    return run_experiment(ExperimentConfig(**TINY), dataset, store=store, cache_dir=cache_dir, verbose="silent")


def test_run_writes_complete_folder(reference):
    names = {p.name for p in reference.directory.iterdir()}
    assert {
        "config.json",
        "environment.json",
        "history.csv",
        "predictions.csv",
        "metrics.json",
        "model.weights.h5",
        "run.json",
    } <= names
    assert "checkpoint" not in names
    assert reference.info["status"] == "complete"
    assert len(reference.history) == TINY["epochs"]
    assert set(reference.predictions["subset"]) == {"validation", "test"}
    assert reference.predictions["probability"].between(0, 1).all()
    studies = reference.study_predictions("test")
    assert studies["study_path"].is_unique
    assert 0 <= reference.metrics["auroc"] <= 1


def test_finished_run_is_reused_not_retrained(reference, dataset, cache_dir):
    store = RunStore(reference.directory.parent)
    again = run_experiment(
        ExperimentConfig(**TINY),
        dataset,
        store=store,
        cache_dir=cache_dir,
        verbose="silent",
        extra_callbacks=[InterruptAfter(0)],
    )
    assert again.directory == reference.directory  # the interrupting callback never ran
    assert len(store.list()) == 1


def test_same_seed_same_result_on_cpu(reference, dataset, cache_dir, tmp_path):
    again = run_experiment(
        ExperimentConfig(**TINY), dataset, store=RunStore(tmp_path), cache_dir=cache_dir, verbose="silent"
    )
    pd.testing.assert_frame_equal(again.history, reference.history)
    np.testing.assert_allclose(again.predictions["probability"], reference.predictions["probability"], rtol=1e-6)


@pytest.fixture(scope="module")
def resumed(dataset, cache_dir, tmp_path_factory):
    """A run interrupted after its second epoch, then resumed by calling it again."""
    folder = tmp_path_factory.mktemp("resumed")
    store = RunStore(folder)
    config = ExperimentConfig(**TINY)
    with pytest.raises(Interrupt):
        run_experiment(
            config, dataset, store=store, cache_dir=cache_dir, verbose="silent", extra_callbacks=[InterruptAfter(1)]
        )
    (run_folder,) = [p for p in folder.iterdir() if p.is_dir()]  # beside it: the run's lock file
    interrupted = {
        "status": json.loads((run_folder / "run.json").read_text())["status"],
        "checkpoint": (run_folder / "checkpoint" / "state.json").exists(),
        "history": pd.read_csv(run_folder / "history.csv"),
    }
    return interrupted, run_experiment(config, dataset, store=store, cache_dir=cache_dir, verbose="silent")


def test_resume_continues_from_last_completed_epoch(reference, resumed):
    interrupted, run = resumed
    assert interrupted["status"] == "running" and interrupted["checkpoint"]
    assert len(interrupted["history"]) == 2
    assert run.info["status"] == "complete" and run.info["resumed"] == 1
    # The epochs before the interruption are kept, not retrained, and equal the reference's.
    pd.testing.assert_frame_equal(run.history.iloc[:2], reference.history.iloc[:2])
    assert run.history["epoch"].tolist() == list(range(TINY["epochs"]))


def test_resume_gives_same_result_as_uninterrupted(reference, resumed):
    _, run = resumed
    pd.testing.assert_frame_equal(run.history, reference.history)


def test_other_config_is_another_run(reference, dataset, cache_dir):
    store = RunStore(reference.directory.parent)
    other = run_experiment(
        ExperimentConfig(**(TINY | {"epochs": 1})), dataset, store=store, cache_dir=cache_dir, verbose="silent"
    )
    assert other.directory != reference.directory
    assert len(store.list()) == 2


def test_stored_model_reloads_with_same_predictions(reference, dataset, cache_dir):
    from mura_lib.inputs import prepare_data
    from mura_lib.training import predict_images

    model = reference.load_model()
    prepared = prepare_data(dataset, TINY["image_size"], seed=TINY["seed"], cache_dir=cache_dir, progress=False)
    again = predict_images(model, prepared, ("test",))
    expected = reference.predictions.query("subset == 'test'")["probability"].to_numpy()
    np.testing.assert_allclose(again["probability"], expected, rtol=1e-5, atol=1e-6)


def test_invalid_config_is_explained():
    with pytest.raises(ValueError, match="model must be one of"):
        ExperimentConfig(model="alexnet")
    with pytest.raises(ValueError, match="epochs"):
        ExperimentConfig(epochs=0)
    with pytest.raises(ValueError, match="Unknown experiment settings"):
        ExperimentConfig.from_dict({"lr": 0.1})


def test_pretrained_run_reloads_with_same_predictions(dataset, cache_dir, tmp_path):
    from mura_lib.inputs import prepare_data
    from mura_lib.training import predict_images

    config = ExperimentConfig(
        model="vgg16", image_size=32, epochs=1, batch_size=16, weights=None, fine_tune=False, augment=False
    )
    run = run_experiment(config, dataset, store=RunStore(tmp_path), cache_dir=cache_dir, verbose="silent")
    assert not (run.directory / "best.weights.h5").exists()
    model = run.load_model()
    prepared = prepare_data(dataset, 32, seed=config.seed, cache_dir=cache_dir, progress=False)
    again = predict_images(model, prepared, ("test",))
    expected = run.predictions.query("subset == 'test'")["probability"].to_numpy()
    np.testing.assert_allclose(again["probability"], expected, rtol=1e-5, atol=1e-6)


def _simulate_rules(aurocs, *, smoothing, min_epochs, lr_patience, stop_patience):
    """Feed a sequence of validation AUROCs through the training's plateau callbacks; return the
    number of epochs run and the epochs at which the learning rate was cut."""
    from mura_lib.callbacks import MONITOR, _PlateauAfter, _StudyValidation

    model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="mse")
    validation = _StudyValidation.__new__(_StudyValidation)
    validation.smoothing, validation.smoothed = smoothing, None
    plateau = _PlateauAfter(min_epochs, monitor=MONITOR, mode="max", factor=0.1, patience=lr_patience, min_lr=1e-7)
    stopping = keras.callbacks.EarlyStopping(
        monitor=MONITOR, mode="max", patience=stop_patience, start_from_epoch=min_epochs
    )
    cuts = []
    for callback in (plateau, stopping):
        callback.set_model(model)
        callback.on_train_begin()
    for epoch, auroc in enumerate(aurocs):
        logs = {}
        validation.record(logs, loss=0.5, image_auroc=auroc, study_auroc=auroc)
        before = float(keras.ops.convert_to_numpy(model.optimizer.learning_rate))
        plateau.on_epoch_end(epoch, logs)
        stopping.on_epoch_end(epoch, logs)
        if float(keras.ops.convert_to_numpy(model.optimizer.learning_rate)) < before:
            cuts.append(epoch + 1)
        if model.stop_training:
            return epoch + 1, cuts
    return len(aurocs), cuts


def test_plateau_rules_do_not_stop_on_noise():
    # A validation AUROC that keeps rising for 30 epochs, seen through a small, noisy validation
    # subset (as on ~100 validation images): the old rules (raw value, from the first epoch,
    # patience 2 and 4) cut the rate and stop early; the thesis' rules train on.
    rng = np.random.default_rng(0)
    epochs = np.arange(30)
    aurocs = 0.62 + 0.25 * (1 - np.exp(-epochs / 12)) + rng.normal(0, 0.05, epochs.size)
    old_epochs, old_cuts = _simulate_rules(aurocs, smoothing=1.0, min_epochs=0, lr_patience=2, stop_patience=4)
    config = ExperimentConfig()
    new_epochs, new_cuts = _simulate_rules(
        aurocs,
        smoothing=config.smoothing,
        min_epochs=config.min_epochs,
        lr_patience=config.lr_patience,
        stop_patience=config.early_stopping_patience,
    )
    assert old_epochs < 15 and old_cuts and old_cuts[0] < 8
    assert new_epochs >= 25
    assert not new_cuts or new_cuts[0] > config.min_epochs


def test_run_records_how_training_ended(reference):
    assert reference.training["epochs"] == len(reference.history) == TINY["epochs"]
    assert reference.training["cap"] == TINY["epochs"]
    assert reference.hit_cap  # three epochs are fewer than the minimum before the rules act
    assert 1 <= reference.training["best_epoch"] <= TINY["epochs"]
    assert {"val_loss", "val_study_auroc", "val_study_auroc_smooth"} <= set(reference.history.columns)


def test_plateau_rules_starting_mid_training_keep_the_history_readable(dataset, cache_dir, tmp_path):
    # The learning rate is logged from the first epoch on, also before the plateau rules start.
    run = run_experiment(
        ExperimentConfig(**TINY | {"min_epochs": 1}),
        dataset,
        store=RunStore(tmp_path),
        cache_dir=cache_dir,
        verbose="silent",
    )
    assert len(run.history) == TINY["epochs"]
    assert run.history["learning_rate"].notna().all()
    assert run.history["val_study_auroc_smooth"].between(0, 1).all()


COSINE = TINY | {"schedule": "cosine", "epochs": 4, "average_epochs": 2}


def test_fixed_budget_decays_to_zero_and_keeps_the_average_of_its_last_epochs(dataset, cache_dir, tmp_path):
    store = RunStore(tmp_path)
    run = run_experiment(ExperimentConfig(**COSINE), dataset, store=store, cache_dir=cache_dir, verbose="silent")
    assert len(run.history) == COSINE["epochs"] and not run.training["stopped_early"]
    assert run.training["schedule"] == "cosine" and run.training["kept_epochs"] == [3, 4]
    rates = run.history["learning_rate"].to_numpy()
    assert rates[0] < TINY.get("learning_rate", 1e-3) and np.all(np.diff(rates) < 0) and rates[-1] < 1e-5
    # The stored weights are the mean of the kept epochs' weights, which the run folder no longer holds.
    assert not (run.directory / "checkpoint").exists()
    model = run.load_model()
    weights = model.get_weights()
    assert any(np.abs(w).sum() > 0 for w in weights)


def test_fixed_budget_resumes_exactly(dataset, cache_dir, tmp_path):
    config = ExperimentConfig(**COSINE)
    whole = run_experiment(config, dataset, store=RunStore(tmp_path / "whole"), cache_dir=cache_dir, verbose="silent")
    store = RunStore(tmp_path / "cut")
    with pytest.raises(Interrupt):
        # Cut after epoch 3, the first of the two averaged: the resumed run must still average both.
        run_experiment(config, dataset, store=store, cache_dir=cache_dir, verbose="silent",
                       extra_callbacks=[InterruptAfter(2)])  # fmt: skip
    resumed = run_experiment(config, dataset, store=store, cache_dir=cache_dir, verbose="silent")
    assert resumed.info["resumed"] == 1
    pd.testing.assert_frame_equal(resumed.history, whole.history)
    np.testing.assert_array_equal(resumed.predictions["probability"], whole.predictions["probability"])


def test_plateau_rules_resume_exactly(dataset, cache_dir, tmp_path):
    """The plateau schedule's state (waits, best values, the cut learning rate) survives a resume."""
    config = ExperimentConfig(**TINY | {"schedule": "plateau", "epochs": 4, "min_epochs": 1, "lr_patience": 1})
    whole = run_experiment(config, dataset, store=RunStore(tmp_path / "whole"), cache_dir=cache_dir, verbose="silent")
    store = RunStore(tmp_path / "cut")
    with pytest.raises(Interrupt):
        run_experiment(config, dataset, store=store, cache_dir=cache_dir, verbose="silent",
                       extra_callbacks=[InterruptAfter(1)])  # fmt: skip
    resumed = run_experiment(config, dataset, store=store, cache_dir=cache_dir, verbose="silent")
    assert resumed.training["schedule"] == "plateau" and "kept_epochs" not in resumed.training
    pd.testing.assert_frame_equal(resumed.history, whole.history)
    np.testing.assert_array_equal(resumed.predictions["probability"], whole.predictions["probability"])


def test_schedule_settings_are_checked():
    with pytest.raises(ValueError, match="schedule must be one of"):
        ExperimentConfig(schedule="linear")
    with pytest.raises(ValueError, match="average_epochs must be between 1 and epochs"):
        ExperimentConfig(schedule="cosine", epochs=4, average_epochs=5)
    with pytest.raises(ValueError, match="needs schedule 'cosine'"):
        ExperimentConfig(schedule="plateau", average_epochs=2)


@pytest.fixture(scope="module")
def multiview_runs(reference, dataset, cache_dir, tmp_path_factory):
    """The multi-view model as a run: from the reference image run, in the same store; then the
    same configuration interrupted after its first epoch and resumed in a second store."""
    store = RunStore(reference.directory.parent)
    config = reference.config.replace(model="multiview", init_from=reference.key, max_views=3, epochs=2, min_epochs=0)
    run = run_experiment(config, dataset, store=store, cache_dir=cache_dir, verbose="silent")
    other = RunStore(tmp_path_factory.mktemp("multiview-resumed"))
    shutil.copytree(reference.directory, other.path(reference.key))
    with pytest.raises(Interrupt):
        run_experiment(
            config, dataset, store=other, cache_dir=cache_dir, verbose="silent", extra_callbacks=[InterruptAfter(0)]
        )
    return run, run_experiment(config, dataset, store=other, cache_dir=cache_dir, verbose="silent"), config, store


def test_multiview_model_is_a_stored_run_with_one_probability_per_study(multiview_runs, reference, dataset, cache_dir):
    run, _, config, store = multiview_runs
    assert run.info["status"] == "complete" and run.config.model == "multiview"
    assert run.training["init_from"]["key"] == reference.key
    spread = run.predictions.groupby("study_path")["probability"].agg(lambda p: p.max() - p.min())
    assert (spread == 0).all()
    studies = run.study_predictions("test")
    assert len(studies) == len(reference.study_predictions("test"))
    # Asked again, the store answers: nothing is retrained.
    again = run_experiment(config, dataset, store=store, cache_dir=cache_dir, verbose="silent")
    assert again.directory == run.directory and again.info["created"] == run.info["created"]


def test_multiview_run_reloads_and_resumes_exactly(multiview_runs, dataset, cache_dir):
    from mura_lib.inputs import prepare_data
    from mura_lib.training import predict_images

    run, resumed, config, _ = multiview_runs
    prepared = prepare_data(dataset, config.image_size, seed=config.seed, cache_dir=cache_dir, progress=False)
    again = predict_images(run.load_model(), prepared, ("test",), config=config)
    expected = run.predictions.query("subset == 'test'")["probability"].to_numpy()
    np.testing.assert_allclose(again["probability"], expected, rtol=1e-5, atol=1e-6)
    assert resumed.info["resumed"] == 1
    pd.testing.assert_frame_equal(resumed.history, run.history)
    np.testing.assert_array_equal(resumed.predictions["probability"], run.predictions["probability"])


def test_multiview_needs_the_image_run_it_wraps(reference):
    with pytest.raises(ValueError, match="abnormality"):
        reference.config.replace(model="multiview", task="study_type")
