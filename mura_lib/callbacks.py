"""The callbacks of a training run: exact resumption (reseeding, checkpoints, callback state),
study-level validation, the plateau rules and the progress lines."""

from __future__ import annotations

import json
import math
import os
import sys
import time
from pathlib import Path

import keras
import numpy as np
import pandas as pd

from .files import atomic_write_text
from .inputs import CacheBatches, study_type_indices


def seed_generators(model: keras.Model):
    """``(generator, initial seed)`` of every random layer of ``model``, nested layers included.

    Keras 3 has no public way to list a model's SeedGenerators or to read a generator's initial
    seed, and exact resumption needs both: this is the one place that uses Keras' private
    attributes (``_flatten_layers``, ``_seed_generators``, ``_initial_seed``), so that a Keras
    release that renames them breaks one function, which the resume tests of
    tests/test_training.py exercise.
    """
    for layer in model._flatten_layers(include_self=True, recursive=True):
        for generator in getattr(layer, "_seed_generators", []):
            yield generator, generator._initial_seed or 0


class _ReseedEachEpoch(keras.callbacks.Callback):
    """Sets the state of every random layer (augmentation, dropout) from (seed, epoch) at the
    start of each epoch, so that a resumed run draws the same random numbers."""

    def on_epoch_begin(self, epoch, logs=None):
        for generator, initial in seed_generators(self.model):
            state = np.array([initial, epoch * 1_000_003], dtype=keras.backend.standardize_dtype(generator.state.dtype))
            generator.state.assign(state)


MONITOR = "val_study_auroc_smooth"


class _StudyValidation(keras.callbacks.Callback):
    """Scores the validation subset after each epoch as the thesis scores its test set: the
    weighted loss, the image-level AUROC, the study-level AUROC (mean over a study's views) and
    that AUROC smoothed over epochs, which the plateau rules watch.  Runs first, so that the
    callbacks after it see these values in ``logs``."""

    def __init__(self, batches: "CacheBatches", images: pd.DataFrame, weights: pd.Series, smoothing: float):
        super().__init__()
        self.batches = batches
        self.images = images[["study_path", "study_type", "label"]].reset_index(drop=True)
        self.weights = np.asarray(weights, dtype="float64")
        self.smoothing = smoothing
        self.smoothed = None

    def on_epoch_end(self, epoch, logs=None):
        from sklearn.metrics import roc_auc_score

        from .scoring import aggregate_studies

        probability = self.model.predict(self.batches, verbose=0).reshape(-1).astype("float64")
        labels = self.images["label"].to_numpy()
        clipped = np.clip(probability, 1e-7, 1 - 1e-7)
        loss = (
            -(self.weights * (labels * np.log(clipped) + (1 - labels) * np.log(1 - clipped))).sum() / self.weights.sum()
        )
        studies = aggregate_studies(self.images.assign(probability=probability))
        auroc = float(roc_auc_score(studies["label"], studies["probability"]))
        self.record(logs, loss=float(loss), image_auroc=float(roc_auc_score(labels, probability)), study_auroc=auroc)

    def record(self, logs, *, loss: float, image_auroc: float, study_auroc: float) -> None:
        """Put one epoch's validation scores and the smoothed AUROC into ``logs``."""
        previous = self.smoothed
        self.smoothed = (
            study_auroc if previous is None else self.smoothing * study_auroc + (1 - self.smoothing) * previous
        )
        if logs is not None:
            logs.update(
                {"val_loss": loss, "val_auc": image_auroc, "val_study_auroc": study_auroc, MONITOR: self.smoothed}
            )


class _StudyTypeValidation(_StudyValidation):
    """The source task's counterpart of :class:`_StudyValidation`: the weighted cross-entropy,
    the image-level accuracy and macro one-vs-rest AUROC over the study types, the study-level
    macro AUROC (class probabilities averaged over a study's views) and that AUROC smoothed
    over epochs, under the same names, so that the plateau rules work unchanged."""

    def on_epoch_end(self, epoch, logs=None):
        from .scoring import study_type_scores

        probabilities = self.model.predict(self.batches, verbose=0).astype("float64")
        labels = study_type_indices(self.images)
        chosen = np.clip(probabilities[np.arange(len(labels)), labels], 1e-7, 1.0)
        loss = -(self.weights * np.log(chosen)).sum() / self.weights.sum()
        image, study = study_type_scores(self.images, probabilities)
        self.record(logs, loss=float(loss), image_auroc=image["macro_auroc"], study_auroc=study["macro_auroc"])
        if logs is not None:
            logs["val_accuracy"] = image["accuracy"]


class _PersistState(keras.callbacks.Callback):
    """Saves and restores the counters of stateful callbacks (plateau waits, best values),
    so that a resumed run makes the same learning-rate and stopping decisions."""

    FIELDS = ("wait", "best", "cooldown_counter", "stopped_epoch", "best_epoch", "smoothed")

    def __init__(self, path: Path, callbacks):
        super().__init__()
        self.path = Path(path)
        self.tracked = callbacks

    def on_train_begin(self, logs=None):
        if self.path.exists():
            states = json.loads(self.path.read_text())
            for callback, state in zip(self.tracked, states):
                for name, value in state.items():
                    setattr(callback, name, value)

    def on_epoch_end(self, epoch, logs=None):
        states = [{name: _to_json(getattr(c, name)) for name in self.FIELDS if hasattr(c, name)} for c in self.tracked]
        atomic_write_text(self.path, json.dumps(states))


class _PlateauAfter(keras.callbacks.ReduceLROnPlateau):
    """Keras' ReduceLROnPlateau, counting only from ``start_from_epoch`` on (as EarlyStopping's
    argument of that name does): the first epochs' noisy rise must not cut the learning rate."""

    def __init__(self, start_from_epoch: int = 0, **kwargs):
        super().__init__(**kwargs)
        self.start_from_epoch = start_from_epoch

    def on_epoch_end(self, epoch, logs=None):
        if epoch < self.start_from_epoch:
            # Log the rate all the same: the CSV logger fixes its columns from each fit() call's
            # first epoch, so a column that appears later would shift the rows of history.csv.
            if logs is not None:
                logs["learning_rate"] = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))
            return
        super().on_epoch_end(epoch, logs)


class _Checkpoint(keras.callbacks.Callback):
    """After each epoch, the weights and optimizer state (atomically) and the epoch number."""

    def __init__(self, directory: Path):
        super().__init__()
        self.directory = Path(directory)

    @property
    def weights_path(self) -> Path:
        return self.directory / "latest.weights.h5"

    def completed_epochs(self) -> int:
        state = self.directory / "state.json"
        if state.exists() and self.weights_path.exists():
            return int(json.loads(state.read_text())["epochs_completed"])
        return 0

    def restore(self, model: keras.Model) -> int:
        # The optimizer is built the same way whether or not there is a checkpoint, so that a
        # fresh and a resumed run hold their optimizer state in the same order.
        if not model.optimizer.built:
            model.optimizer.build(model.trainable_variables)
        epochs = self.completed_epochs()
        if epochs:
            model.load_weights(self.weights_path)
        return epochs

    def on_epoch_end(self, epoch, logs=None):
        self.directory.mkdir(parents=True, exist_ok=True)
        temporary = self.directory / ".latest.tmp.weights.h5"
        self.model.save_weights(temporary)
        os.replace(temporary, self.weights_path)
        atomic_write_text(self.directory / "state.json", json.dumps({"epochs_completed": epoch + 1}))


class _LogRate(keras.callbacks.Callback):
    """Logs the learning rate in effect at each epoch's end (a schedule sets it step by step;
    the plateau rules log it themselves), so that every history has that column."""

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["learning_rate"] = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))


class _KeepLast(keras.callbacks.Callback):
    """Keeps the weights of the last ``count`` of ``epochs`` epochs as files (so that a resumed
    run still has them) and averages them: the weights a fixed-budget run ends with."""

    def __init__(self, directory: Path, count: int, epochs: int):
        super().__init__()
        self.directory = Path(directory)
        self.count = count
        self.epochs = epochs

    def path(self, epoch: int) -> Path:
        return self.directory / f"epoch-{epoch + 1:04d}.weights.h5"

    def on_epoch_end(self, epoch, logs=None):
        if epoch >= self.epochs - self.count:
            self.directory.mkdir(parents=True, exist_ok=True)
            temporary = self.directory / ".epoch.tmp.weights.h5"
            self.model.save_weights(temporary)
            os.replace(temporary, self.path(epoch))

    def average_into(self, model: keras.Model) -> list[int]:
        """Sets ``model``'s weights (batch-normalisation statistics included) to the mean of the
        kept epochs' weights; returns those epochs, counted from 1."""
        epochs = list(range(self.epochs - self.count, self.epochs))
        total = None
        for epoch in epochs:
            model.load_weights(self.path(epoch))
            values = model.get_weights()
            dtypes = [v.dtype for v in values]
            values = [np.asarray(v, dtype="float64") for v in values]
            total = values if total is None else [t + v for t, v in zip(total, values)]
        model.set_weights([(t / len(epochs)).astype(d) for t, d in zip(total, dtypes)])
        return [epoch + 1 for epoch in epochs]


def progress_stream():
    """Where training reports its progress lines.  In a chapter executed by the build, stdout is
    the notebook's cell; the kernel process's own stderr also reaches the build's terminal, so
    a long chapter is never silent there."""
    if "ipykernel" in sys.modules and sys.stdout is not sys.__stdout__ and sys.__stderr__ is not None:
        return sys.__stderr__
    return sys.stdout


class _EpochLines(keras.callbacks.Callback):
    """One line per epoch (for the terminal, notebooks and logs), instead of a progress bar."""

    def __init__(self, label: str, epochs: int):
        super().__init__()
        self.label = label
        self.epochs = epochs

    def on_epoch_begin(self, epoch, logs=None):
        self.started = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        parts = [f"{name} {value:.4f}" for name, value in logs.items() if name != "learning_rate"]
        rate = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))
        print(
            f"[{self.label}] epoch {epoch + 1}/{self.epochs}  "
            + "  ".join(parts)
            + f"  lr {rate:.1e}  ({time.perf_counter() - self.started:.1f}s)",
            file=progress_stream(),
            flush=True,
        )


def _to_json(value):
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return value if not math.isnan(value) else None
    return value
