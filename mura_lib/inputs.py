"""The input pipeline: training weights and targets, batches from the preprocessing cache,
and a dataset prepared at one image size (cached, split by patient)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np
import pandas as pd

from .config import ExperimentConfig
from .dataset import STUDY_TYPES, MuraDataset, split_by_patient
from .preprocess import DEFAULT_CACHE_DIR, build_cache, check_exclusions


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


class SeededBatches(keras.utils.PyDataset):
    """Batches of samples (``rows``) with their labels and optional weights, in an order that
    depends only on the seed and the epoch number, so that a resumed run sees the same batches
    as an uninterrupted one.  Subclasses read a batch's inputs from the cache (``__getitem__``).
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

    def _batch(self, index):
        """The positions of batch ``index`` and its rows."""
        chosen = self._order[index * self.batch_size : (index + 1) * self.batch_size]
        return chosen, self.rows[chosen]

    def _with_targets(self, inputs, chosen):
        if self.weights is None:
            return inputs, self.labels[chosen]
        return inputs, self.labels[chosen], self.weights[chosen]


class CacheBatches(SeededBatches):
    """Batches of images straight from the memory-mapped cache: (images, labels[, weights])."""

    def __getitem__(self, index):
        chosen, rows = self._batch(index)
        # Sorted reads are faster on a memory map; restore the batch order afterwards.
        sorter = np.argsort(rows, kind="stable")
        batch = np.empty((len(rows), *self.images.shape[1:], 1), dtype="float32")
        batch[sorter, ..., 0] = self.images[rows[sorter]]
        return self._with_targets(batch, chosen)


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


def prepare_for(dataset: MuraDataset, config: ExperimentConfig, *, cache_dir=DEFAULT_CACHE_DIR, progress=False):
    """The data as the run of ``config`` sees them: cached at its image size and policy, split
    by its split seed (its seed unless ``split_seed`` is set) and validation fraction
    (:func:`prepare_data`)."""
    return prepare_data(
        dataset,
        config.image_size,
        policy=config.policy,
        validation_fraction=config.validation_fraction,
        seed=config.seed if config.split_seed is None else config.split_seed,
        cache_dir=cache_dir,
        progress=progress,
    )
