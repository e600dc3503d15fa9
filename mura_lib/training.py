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

import sys
import time
from pathlib import Path

import keras
import numpy as np
import pandas as pd

from . import config as _config
from . import device, numerics
from .callbacks import (
    MONITOR,
    _Checkpoint,
    _EpochLines,
    _KeepLast,
    _LogRate,
    _PersistState,
    _PlateauAfter,
    _ReseedEachEpoch,
    _StudyTypeValidation,
    _StudyValidation,
    progress_stream,
)
from .config import ExperimentConfig
from .dataset import STUDY_TYPES, MuraDataset
from .inputs import CacheBatches, PreparedData, prepare_for, sample_weights, task_labels
from .models import build_model, build_multiview, transfer_backbone_weights
from .multiview import StudyBatches, study_rows
from .preprocess import DEFAULT_CACHE_DIR
from .runs import Run, RunStore, default_store


def run_key(config: ExperimentConfig, data_hash: str) -> str:
    """The key of ``config`` trained on data with manifest hash ``data_hash`` here: the
    configuration with the precision it resolves to, the source of the result modules, the
    backend and the numerical settings in effect (:func:`mura_lib.config.run_key`)."""
    return _config.run_key(
        config,
        data_hash=data_hash,
        library=_config.library_source_hash(),
        backend=device.backend(),
        precision=device.resolve_precision(config.precision),
        numerics=numerics.in_effect(device.backend()),
    )


def _verbosity(verbose) -> str:
    if verbose == "auto":
        return "bar" if sys.stdout.isatty() else "lines"
    if verbose in (0, False, None, "silent"):
        return "silent"
    if verbose in ("bar", "lines"):
        return verbose
    raise ValueError(f"verbose must be 'auto', 'bar', 'lines' or 'silent', got {verbose!r}")


def compile_model(model: keras.Model, config: ExperimentConfig, steps_per_epoch: int | None = None) -> None:
    """Compiles ``model`` with Adam at ``config.learning_rate``; under the "cosine" schedule, given
    ``steps_per_epoch``, the rate decays to zero over ``config.epochs`` epochs of that many steps
    (without it the rate stays constant: a model compiled to be shown or timed, not trained as a
    run, which :func:`run_experiment` does)."""
    if config.task == "abnormality":
        loss = keras.losses.BinaryCrossentropy()
        metrics = [keras.metrics.AUC(name="auc"), keras.metrics.BinaryAccuracy(name="accuracy")]
    else:
        loss = keras.losses.SparseCategoricalCrossentropy()
        metrics = [keras.metrics.SparseCategoricalAccuracy(name="accuracy")]
    rate = config.learning_rate
    if config.schedule == "cosine" and steps_per_epoch:
        rate = keras.optimizers.schedules.CosineDecay(rate, decay_steps=config.epochs * steps_per_epoch)
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=rate, beta_1=0.9, beta_2=0.999),
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
    if config.model == "multiview":
        if source.config.model != "cnn" or source.task != "abnormality":
            raise ValueError(
                f"init_from run {config.init_from} is a {source.config.model!r} {source.task} run; the multi-view model "
                "wraps the image network of an ab-initio CNN trained for abnormality."
            )
        return source
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
    if config.model == "multiview" and not config.init_from:
        raise ValueError(
            "model 'multiview' wraps the image network of a finished run: give that run's key as init_from"
        )
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
    prepared = prepare_for(dataset, config, cache_dir=cache_dir, progress=mode != "silent")
    train = prepared.subset("train")
    validation = prepared.subset("validation")
    if config.model == "multiview":
        # Whole studies are the samples: the views of one study go through the network together.
        train_batches, _ = _study_batches(prepared, "train", config, shuffle=True)
        validation_batches, validation_scored = _study_batches(prepared, "validation", config)
        validation_weights = sample_weights(validation_scored, config)
    else:
        train_batches = CacheBatches(
            prepared.cache_images,
            train["cache_row"],
            task_labels(train, config.task),
            sample_weights(train, config),
            batch_size=config.batch_size,
            shuffle=True,
            seed=config.seed,
        )
        validation_scored = validation
        validation_weights = sample_weights(validation, config)
        validation_batches = CacheBatches(
            prepared.cache_images,
            validation["cache_row"],
            task_labels(validation, config.task),
            validation_weights,
            batch_size=config.batch_size,
        )

    try:
        with device.distribution_scope():
            if config.model == "multiview":
                # The image network of the source run, every weight, wrapped to read whole studies.
                model = build_multiview(source.load_model(), config.max_views)
            else:
                model = build_model(config)
            compile_model(model, config, steps_per_epoch=len(train_batches))
        if config.model == "multiview":
            transferred = [layer.name for layer in model.get_layer("per_view").layer.layers if layer.weights]
        else:
            model.build((None, config.image_size, config.image_size, 1))
            transferred = initialise_from(model, source) if source is not None else []
        validating = _StudyValidation if config.task == "abnormality" else _StudyTypeValidation
        validation_check = validating(validation_batches, validation_scored, validation_weights, config.smoothing)
        checkpoint = _Checkpoint(directory / "checkpoint")
        callbacks = [_ReseedEachEpoch(), validation_check]
        if config.schedule == "plateau":
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
            stateful = [plateau, stopping, best, validation_check]
            callbacks += [plateau, stopping, best]
        else:
            stopping = None
            kept = _KeepLast(directory / "checkpoint", config.average_epochs, config.epochs)
            stateful = [validation_check]
            callbacks += [_LogRate(), kept]
        callbacks += [
            keras.callbacks.CSVLogger(str(directory / "history.csv"), append=True),
            checkpoint,
            _PersistState(directory / "checkpoint" / "callbacks.json", stateful),
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
            "schedule": config.schedule,
            # Early stopping may fire on the last allowed epoch: that is a plateau, not the cap.
            "stopped_early": bool(
                stopping is not None and (len(history) < config.epochs or stopping.stopped_epoch > 0)
            ),
            "best_epoch": int(history.loc[history[MONITOR].idxmax(), "epoch"]) + 1,
        }
        if stopping is None:
            # A fixed budget keeps its last epochs, whatever the validation says.
            training["kept_epochs"] = kept.average_into(model)
        else:
            model.load_weights(directory / "best.weights.h5")
        predictions = predict_images(
            model, prepared, ("validation", "test"), batch_size=config.batch_size, task=config.task, config=config
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


def _study_batches(prepared: PreparedData, subset: str, config: ExperimentConfig, *, shuffle: bool = False):
    """Batches of whole studies of ``subset`` for the multi-view model, and the study table."""
    studies, rows = study_rows(prepared, subset, config.max_views)
    batches = StudyBatches(
        prepared.cache_images,
        rows,
        studies["label"],
        sample_weights(studies, config),
        batch_size=max(1, config.batch_size // config.max_views),
        shuffle=shuffle,
        seed=config.seed,
    )
    return batches, studies


def predict_images(
    model: keras.Model,
    prepared: PreparedData,
    subsets,
    *,
    batch_size: int = 64,
    task: str = "abnormality",
    config: ExperimentConfig | None = None,
) -> pd.DataFrame:
    """Image-level predictions for the given subsets.

    For the abnormality task, ``probability`` is the abnormality probability.  For the study-type
    task, ``p_XR_ELBOW`` ... ``p_XR_WRIST`` are the probabilities of the study types,
    ``predicted_type`` the most probable one and ``probability`` its probability.
    """
    frames = []
    for subset in subsets:
        part = prepared.subset(subset)
        if config is not None and config.model == "multiview":
            # One probability per study, given to each of its images: the mean over a study's
            # images (how every run is read at study level) is then that probability.
            batches, studies = _study_batches(prepared, subset, config)
            batches.weights = None
            studies["probability"] = model.predict(batches, verbose=0).astype("float64").reshape(-1)
            frame = part[["relpath", "study_path", "study_type", "patient", "view", "label", "subset"]]
            frames.append(frame.merge(studies[["study_path", "probability"]], on="study_path", how="left"))
            continue
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
