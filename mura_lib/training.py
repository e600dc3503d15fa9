"""Training an experiment from the preprocessing cache into the run store.

``run_experiment(config, dataset)`` is the one entry point: it returns the finished run if the
store already has it, resumes an interrupted one from its last completed epoch, and otherwise
trains from scratch.  Everything that determines the result (the configuration, the source of
the modules that shape training, the data manifest, the numeric precision) goes into the
run's key.

A run is trained for one of two tasks: ``abnormality`` (the thesis' task: is the study
abnormal?) or ``study_type`` (which of the seven body parts does an image show?), a source task
whose backbone weights can initialise an abnormality model (``init_from``: the key of the
finished source run).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np
import pandas as pd

from . import device, numerics
from .dataset import STUDY_TYPES, MuraDataset, split_by_patient
from .models import MODEL_NAMES, TASKS, build_model, transfer_backbone_weights
from .preprocess import DEFAULT_CACHE_DIR, POLICIES, build_cache, check_exclusions
from .runs import Run, RunStore, atomic_write_text, default_store

# Modules whose source shapes a run's result: a change to any of them retrains.  Plotting,
# evaluation and the book pipeline are deliberately left out: restyling a figure never retrains.
RESULT_MODULES = ("dataset.py", "preprocess.py", "models.py", "training.py")


@dataclass(frozen=True)
class ExperimentConfig:
    """Everything that defines one training run (one frozen object per experiment)."""

    model: str = "cnn"
    image_size: int = 64
    policy: str = "pad"
    depth: int = 4
    width: int = 32
    dropout: float = 0.3
    l2: float = 1e-4
    batch_norm: bool = True
    augment: bool = True
    weights: str | None = None
    fine_tune: bool = False
    epochs: int = 30  # the cap; training normally stops earlier, on the plateau rules below
    batch_size: int = 32
    learning_rate: float = 1e-3
    # Plateau rules watch the study-level validation AUROC, smoothed over epochs (an exponential
    # moving average with weight ``smoothing`` on the newest epoch), and act only after
    # ``min_epochs``: a small validation subset gives noisy per-epoch values.
    min_epochs: int = 8
    lr_patience: int = 3
    early_stopping_patience: int = 6
    smoothing: float = 0.5
    class_weighting: str = "paper"
    validation_fraction: float = 0.1
    precision: str = "auto"
    seed: int = 0
    # "abnormality" (a sigmoid unit: is the image abnormal?) or "study_type" (a softmax over the
    # seven study types, a source task for pretraining backbones).
    task: str = "abnormality"
    # The key of a finished run in the same run store whose backbone weights initialise this
    # model's backbone (its head starts afresh); ``fine_tune`` decides whether they then train.
    init_from: str | None = None

    def __post_init__(self):
        if self.model not in MODEL_NAMES:
            raise ValueError(f"model must be one of {MODEL_NAMES}, got {self.model!r}")
        if self.policy not in POLICIES:
            raise ValueError(f"policy must be one of {POLICIES}, got {self.policy!r}")
        if self.class_weighting not in ("paper", "none"):
            raise ValueError(f"class_weighting must be 'paper' or 'none', got {self.class_weighting!r}")
        for name in ("image_size", "epochs", "batch_size", "lr_patience", "early_stopping_patience"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be a positive integer, got {getattr(self, name)}")
        if self.min_epochs < 0:
            raise ValueError(f"min_epochs must be zero or positive, got {self.min_epochs}")
        if not 0 < self.smoothing <= 1:
            raise ValueError(f"smoothing must be in (0, 1], got {self.smoothing}")
        if not 0 < self.validation_fraction < 1:
            raise ValueError(f"validation_fraction must be in (0, 1), got {self.validation_fraction}")
        if self.learning_rate <= 0:
            raise ValueError(f"learning_rate must be positive, got {self.learning_rate}")
        if self.task not in TASKS:
            raise ValueError(f"task must be one of {tuple(TASKS)}, got {self.task!r}")
        if self.init_from is not None:
            if not isinstance(self.init_from, str) or not re.fullmatch(r"[0-9a-f]{16}", self.init_from):
                raise ValueError(
                    f"init_from must be the 16-character key of a finished run (e.g. run.key), got {self.init_from!r}"
                )
            if self.weights is not None:
                raise ValueError(
                    f"init_from ({self.init_from}) and weights ({self.weights!r}) both initialise the backbone: "
                    "give only one of them."
                )

    def replace(self, **changes) -> "ExperimentConfig":
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> "ExperimentConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(values) - known
        if unknown:
            raise ValueError(f"Unknown experiment settings: {sorted(unknown)}; known: {sorted(known)}")
        return cls(**values)


def library_source_hash() -> str:
    digest = hashlib.sha256()
    here = Path(__file__).parent
    for name in RESULT_MODULES:
        digest.update(name.encode())
        digest.update((here / name).read_bytes())
    return digest.hexdigest()[:16]


def run_key(config: ExperimentConfig, data_hash: str) -> str:
    payload = {
        "config": config.to_dict() | {"precision": device.resolve_precision(config.precision)},
        "library": library_source_hash(),
        "data": data_hash,
        "backend": device.backend(),
        "numerics": numerics.in_effect(device.backend()),
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


def paper_sample_weights(images: pd.DataFrame) -> pd.Series:
    """The MURA paper's per-study-type weights, from the training images' counts.

    For study type T with N_T normal and A_T abnormal training images, abnormal images weigh
    w1 = N_T / (N_T + A_T) and normal ones w0 = A_T / (N_T + A_T), so that both classes carry
    the same total weight within each type.
    """
    counts = images.groupby(["study_type", "label"]).size().unstack(fill_value=0)
    if 0 not in counts or 1 not in counts:
        raise ValueError("Class weights need both normal and abnormal training images.")
    total = counts[0] + counts[1]
    w1 = counts[0] / total
    w0 = counts[1] / total
    return pd.Series(
        np.where(images["label"] == 1, images["study_type"].map(w1), images["study_type"].map(w0)),
        index=images.index,
        name="weight",
    ).astype("float32")


def study_type_indices(images: pd.DataFrame) -> np.ndarray:
    """Each image's study type as its index in :data:`~mura_lib.dataset.STUDY_TYPES`."""
    return images["study_type"].map({name: index for index, name in enumerate(STUDY_TYPES)}).to_numpy(dtype="int64")


def task_labels(images: pd.DataFrame, task: str) -> np.ndarray:
    """The targets of ``task``: the abnormality label (0/1) or the study type's index."""
    return images["label"].to_numpy() if task == "abnormality" else study_type_indices(images)


def sample_weights(images: pd.DataFrame, config: "ExperimentConfig") -> pd.Series:
    """The training weights of ``images`` for ``config``'s task and class weighting.

    ``class_weighting="paper"`` gives the abnormality task the paper's weights
    (:func:`paper_sample_weights`) and the study-type task balanced weights, so that each study
    type carries the same total weight; ``"none"`` weighs every image 1.
    """
    if config.class_weighting == "none":
        return pd.Series(1.0, index=images.index, name="weight").astype("float32")
    if config.task == "abnormality":
        return paper_sample_weights(images)
    from sklearn.utils.class_weight import compute_sample_weight

    weights = compute_sample_weight("balanced", images["study_type"].to_numpy())
    return pd.Series(weights, index=images.index, name="weight").astype("float32")


class CacheBatches(keras.utils.PyDataset):
    """Batches straight from the memory-mapped cache: (images, labels[, weights]).

    The order of an epoch depends only on the seed and the epoch number, so a resumed run
    sees the same batches as an uninterrupted one.
    """

    def __init__(self, images, rows, labels, weights=None, *, batch_size=32, shuffle=False, seed=0):
        super().__init__(workers=1, use_multiprocessing=False)
        self.images = images
        self.rows = np.asarray(rows)
        self.labels = np.asarray(labels, dtype="float32")
        self.weights = None if weights is None else np.asarray(weights, dtype="float32")
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.seed = seed
        self.epoch = 0
        self._order = self._make_order()

    def _make_order(self):
        if not self.shuffle:
            return np.arange(len(self.rows))
        return np.random.default_rng([self.seed, self.epoch]).permutation(len(self.rows))

    def set_epoch(self, epoch: int) -> None:
        if epoch != self.epoch:
            self.epoch = epoch
            self._order = self._make_order()

    def __len__(self):
        return math.ceil(len(self.rows) / self.batch_size)

    def __getitem__(self, index):
        chosen = self._order[index * self.batch_size : (index + 1) * self.batch_size]
        rows = self.rows[chosen]
        # Sorted reads are faster on a memory map; restore the batch order afterwards.
        sorter = np.argsort(rows, kind="stable")
        batch = np.empty((len(rows), *self.images.shape[1:], 1), dtype="float32")
        batch[sorter, ..., 0] = self.images[rows[sorter]]
        if self.weights is None:
            return batch, self.labels[chosen]
        return batch, self.labels[chosen], self.weights[chosen]


class _ReseedEachEpoch(keras.callbacks.Callback):
    """Sets the state of every random layer (augmentation, dropout) from (seed, epoch) at the
    start of each epoch, so that a resumed run draws the same random numbers."""

    def on_epoch_begin(self, epoch, logs=None):
        for layer in self.model._flatten_layers(include_self=True, recursive=True):
            for generator in getattr(layer, "_seed_generators", []):
                initial = generator._initial_seed or 0
                state = np.array(
                    [initial, epoch * 1_000_003], dtype=keras.backend.standardize_dtype(generator.state.dtype)
                )
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

        from .evaluation import aggregate_studies

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
        from .evaluation import study_type_scores

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


@dataclass
class PreparedData:
    """A dataset at one image size: the image table with its subsets and cache rows."""

    images: pd.DataFrame
    cache_images: np.ndarray
    excluded: pd.DataFrame

    def subset(self, name: str) -> pd.DataFrame:
        return self.images.loc[self.images["subset"] == name]


def prepare_data(
    dataset: MuraDataset,
    image_size: int,
    *,
    policy: str = "pad",
    validation_fraction: float = 0.1,
    seed: int = 0,
    cache_dir: str | Path = DEFAULT_CACHE_DIR,
    progress: bool = True,
    max_excluded_fraction: float | None = None,
) -> PreparedData:
    """Cache the images at ``image_size``, drop undecodable ones, split by patient.

    ``excluded`` lists the dropped images with their ``reason``; more than
    ``max_excluded_fraction`` of them (default: the build's setting, else 1%) is an error.
    """
    cache = build_cache(dataset, image_size, policy=policy, cache_dir=cache_dir, progress=progress)
    ok = cache.index.set_index("relpath")["ok"]
    images = dataset.images.copy()
    images["cache_row"] = cache.rows_for(images["relpath"])
    good = images["relpath"].map(ok).astype(bool).to_numpy()
    excluded = cache.failures.loc[cache.failures["relpath"].isin(images["relpath"])].reset_index(drop=True)
    check_exclusions(excluded, len(images), max_excluded_fraction)
    images = images.loc[good].reset_index(drop=True)
    images["subset"] = split_by_patient(images, validation_fraction=validation_fraction, seed=seed).to_numpy()
    return PreparedData(images=images, cache_images=cache.images, excluded=excluded)


def _verbosity(verbose) -> str:
    if verbose == "auto":
        return "bar" if sys.stdout.isatty() else "lines"
    if verbose in (0, False, None, "silent"):
        return "silent"
    if verbose in ("bar", "lines"):
        return verbose
    raise ValueError(f"verbose must be 'auto', 'bar', 'lines' or 'silent', got {verbose!r}")


def compile_model(model: keras.Model, config: ExperimentConfig) -> None:
    if config.task == "abnormality":
        loss = keras.losses.BinaryCrossentropy()
        metrics = [keras.metrics.AUC(name="auc"), keras.metrics.BinaryAccuracy(name="accuracy")]
    else:
        loss = keras.losses.SparseCategoricalCrossentropy()
        metrics = [keras.metrics.SparseCategoricalAccuracy(name="accuracy")]
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=config.learning_rate, beta_1=0.9, beta_2=0.999),
        loss=loss,
        weighted_metrics=[],
        metrics=metrics,
    )


def source_run(config: ExperimentConfig, store: RunStore) -> Run:
    """The finished run that ``config.init_from`` names, checked to fit ``config``'s model."""
    if not store.is_complete(config.init_from):
        state = "has not finished" if store.path(config.init_from).exists() else "is not in it"
        raise LookupError(
            f"init_from names run {config.init_from}, which {state} (run store {store.root}): train the source run "
            "first (e.g. Thesis.pretrain) in the same run store, then start this one."
        )
    source = store.load(config.init_from)
    if source.config.model != config.model:
        raise ValueError(
            f"init_from run {config.init_from} trained a {source.config.model!r} model, but this configuration "
            f"builds {config.model!r}: a backbone's weights fit only the same architecture."
        )
    return source


def initialise_from(model: keras.Model, source: Run) -> list[str]:
    """Copy the backbone weights of the finished run ``source`` into ``model``; returns the
    names of the layers that received them."""
    return transfer_backbone_weights(source.load_model(), model)


def run_experiment(
    config: ExperimentConfig,
    dataset: MuraDataset,
    *,
    store: RunStore | None = None,
    cache_dir: str | Path = DEFAULT_CACHE_DIR,
    verbose="auto",
    name: str | None = None,
    extra_callbacks=(),
) -> Run:
    """Train ``config`` on ``dataset``, or return the stored run if it already finished.

    An interrupted run (killed process, lost kernel) resumes from its last completed epoch and
    ends with the same result as an uninterrupted one.  ``name`` labels the run in listings.
    With ``config.init_from`` the model's backbone starts from the weights of that finished run
    of ``store`` (an error if it is missing or unfinished).
    """
    store = store or default_store()
    key = run_key(config, dataset.manifest_hash())
    label = name or f"{config.model}@{config.image_size}px"
    if store.is_complete(key):
        return store.load(key)  # verified: a damaged run raises BrokenRunError with the fix
    with store.lock(key, name=label):
        # Another process may have finished this run while we waited for its lock.
        if store.is_complete(key):
            return store.load(key)
        return _train(config, dataset, key, store, label, cache_dir, verbose, extra_callbacks)


def _train(config, dataset, key, store, label, cache_dir, verbose, extra_callbacks) -> Run:
    # The source run must be finished before this one starts: its weights initialise the backbone.
    source = source_run(config, store) if config.init_from else None
    mode = _verbosity(verbose)
    if mode != "silent":
        print(
            f"[{label}] training run {key} (at most {config.epochs} epoch{'' if config.epochs == 1 else 's'})",
            file=progress_stream(),
            flush=True,
        )
    directory = store.start(key, config.to_dict(), name=label, data_root=str(dataset.root))

    precision = device.resolve_precision(config.precision)
    keras.config.set_dtype_policy(precision)
    keras.utils.set_random_seed(config.seed)
    prepared = prepare_data(
        dataset,
        config.image_size,
        policy=config.policy,
        validation_fraction=config.validation_fraction,
        seed=config.seed,
        cache_dir=cache_dir,
        progress=mode != "silent",
    )
    train = prepared.subset("train")
    validation = prepared.subset("validation")
    weights = sample_weights(train, config)
    validation_weights = sample_weights(validation, config)
    train_batches = CacheBatches(
        prepared.cache_images,
        train["cache_row"],
        task_labels(train, config.task),
        weights,
        batch_size=config.batch_size,
        shuffle=True,
        seed=config.seed,
    )
    validation_batches = CacheBatches(
        prepared.cache_images,
        validation["cache_row"],
        task_labels(validation, config.task),
        validation_weights,
        batch_size=config.batch_size,
    )

    try:
        with device.distribution_scope():
            model = build_model(config)
            compile_model(model, config)
        model.build((None, config.image_size, config.image_size, 1))
        transferred = initialise_from(model, source) if source is not None else []
        validating = _StudyValidation if config.task == "abnormality" else _StudyTypeValidation
        validation_check = validating(validation_batches, validation, validation_weights, config.smoothing)
        plateau = _PlateauAfter(
            config.min_epochs,
            monitor=MONITOR,
            mode="max",
            factor=0.1,
            patience=config.lr_patience,
            min_lr=1e-7,
            verbose=0,
        )
        stopping = keras.callbacks.EarlyStopping(
            monitor=MONITOR,
            mode="max",
            patience=config.early_stopping_patience,
            start_from_epoch=config.min_epochs,
            verbose=0,
        )
        best = keras.callbacks.ModelCheckpoint(
            str(directory / "best.weights.h5"),
            monitor=MONITOR,
            mode="max",
            save_best_only=True,
            save_weights_only=True,
            verbose=0,
        )
        checkpoint = _Checkpoint(directory / "checkpoint")
        callbacks = [
            _ReseedEachEpoch(),
            validation_check,
            plateau,
            stopping,
            best,
            keras.callbacks.CSVLogger(str(directory / "history.csv"), append=True),
            checkpoint,
            _PersistState(directory / "checkpoint" / "callbacks.json", [plateau, stopping, best, validation_check]),
        ]
        if mode == "lines":
            callbacks.append(_EpochLines(label, config.epochs))
        callbacks += list(extra_callbacks)
        started = time.perf_counter()
        # One fit() call per epoch: each epoch's batches are then drawn after its order is set
        # (tf.data would otherwise prefetch the next epoch early), and resuming is exact.
        # ``shuffle=False``: CacheBatches already orders each epoch from (seed, epoch); Keras'
        # own shuffle of a PyDataset permutes the batch indices with Python's global ``random``,
        # whose state a resumed process does not share with the interrupted one.
        for epoch in range(checkpoint.restore(model), config.epochs):
            train_batches.set_epoch(epoch)
            model.fit(
                train_batches,
                initial_epoch=epoch,
                epochs=epoch + 1,
                shuffle=False,
                callbacks=callbacks,
                verbose=1 if mode == "bar" else 0,
            )
            if model.stop_training:
                break
        seconds = time.perf_counter() - started
        history = pd.read_csv(directory / "history.csv").drop_duplicates("epoch", keep="last")
        training = {
            "epochs": int(len(history)),
            "cap": int(config.epochs),
            # Early stopping may fire on the last allowed epoch: that is a plateau, not the cap.
            "stopped_early": bool(len(history) < config.epochs or stopping.stopped_epoch > 0),
            "best_epoch": int(history.loc[history[MONITOR].idxmax(), "epoch"]) + 1,
        }
        model.load_weights(directory / "best.weights.h5")
        predictions = predict_images(
            model, prepared, ("validation", "test"), batch_size=config.batch_size, task=config.task
        )
        if source is not None:
            training["init_from"] = {"key": source.key, "name": source.name, "layers": len(transferred)}
    finally:
        keras.config.set_dtype_policy("float32")
    return store.finish(
        key,
        task=config.task,
        model=model,
        predictions=predictions,
        environment=device.environment()
        | {
            "precision": precision,
            "numerics": numerics.in_effect(device.backend()),
            "train_seconds_last_session": round(seconds, 2),
        },
        training=training,
        data_summary={
            "train_images": int(len(train)),
            "validation_images": int(len(validation)),
            "test_images": int(len(prepared.subset("test"))),
            "excluded_images": int(len(prepared.excluded)),
        },
    )


def predict_images(
    model: keras.Model, prepared: PreparedData, subsets, *, batch_size: int = 64, task: str = "abnormality"
) -> pd.DataFrame:
    """Image-level predictions for the given subsets.

    For the abnormality task, ``probability`` is the abnormality probability.  For the study-type
    task, ``p_XR_ELBOW`` ... ``p_XR_WRIST`` are the probabilities of the study types,
    ``predicted_type`` the most probable one and ``probability`` its probability.
    """
    frames = []
    for subset in subsets:
        part = prepared.subset(subset)
        batches = CacheBatches(prepared.cache_images, part["cache_row"], part["label"], batch_size=batch_size)
        output = model.predict(batches, verbose=0).astype("float64")
        frame = part[["relpath", "study_path", "study_type", "patient", "view", "label", "subset"]]
        if task == "abnormality":
            frame = frame.assign(probability=output.reshape(-1))
        else:
            columns = {f"p_{name}": output[:, index] for index, name in enumerate(STUDY_TYPES)}
            frame = frame.assign(
                **columns,
                predicted_type=np.asarray(STUDY_TYPES)[output.argmax(axis=1)],
                probability=output.max(axis=1),
            )
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)
