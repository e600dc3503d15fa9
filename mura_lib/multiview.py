"""Study-level inputs for the multi-view model: each study's views, in view order, as rows of
the preprocessing cache, and batches of whole studies read from the cache."""

from __future__ import annotations

import numpy as np
import pandas as pd

from .inputs import PreparedData, SeededBatches


def study_rows(prepared: PreparedData, subset: str, max_views: int) -> tuple[pd.DataFrame, np.ndarray]:
    """``(studies, rows)`` of one subset.

    ``studies`` has one row per study (``study_path``, ``study_type``, ``label``, ``views``);
    ``rows`` (studies, max_views) holds the cache rows of its views in view order, -1 where a
    study has fewer views.  Studies with more than ``max_views`` views keep their first
    ``max_views``.
    """
    if max_views < 1:
        raise ValueError(f"max_views must be at least 1, got {max_views}")
    part = prepared.subset(subset).sort_values(["study_path", "view"])
    if part.empty:
        raise ValueError(f"The subset {subset!r} has no images.")
    studies = part.groupby("study_path", sort=True).agg(
        study_type=("study_type", "first"), label=("label", "first"), views=("view", "size")
    )
    rows = np.full((len(studies), max_views), -1, dtype="int64")
    position = pd.Series(np.arange(len(studies)), index=studies.index)
    slot = part.groupby("study_path").cumcount().to_numpy()
    keep = slot < max_views
    study_index = position.loc[part["study_path"]].to_numpy()
    rows[study_index[keep], slot[keep]] = part["cache_row"].to_numpy()[keep]
    return studies.reset_index(), rows


class StudyBatches(SeededBatches):
    """Batches of whole studies from the memory-mapped cache: ``([views, mask], labels[, weights])``;
    ``rows`` holds each study's cache rows (-1 for padding)."""

    def __getitem__(self, index):
        chosen, rows = self._batch(index)
        mask = (rows >= 0).astype("float32")
        views = np.zeros((*rows.shape, *self.images.shape[1:], 1), dtype="float32")
        real = np.nonzero(rows >= 0)
        flat = rows[real]
        sorter = np.argsort(flat, kind="stable")  # sorted reads are faster on a memory map
        read = np.empty((len(flat), *self.images.shape[1:]), dtype="float32")
        read[sorter] = self.images[flat[sorter]]
        views[real[0], real[1], ..., 0] = read
        return self._with_targets((views, mask), chosen)
