"""Study-level inputs for the multi-view model: every study's views stacked and padded."""

from __future__ import annotations

import numpy as np
import pandas as pd

from .training import PreparedData


def study_stacks(prepared: PreparedData, subset: str, max_views: int) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """``(studies, views, mask)`` of one subset.

    ``studies`` has one row per study (``study_path``, ``study_type``, ``label``, ``views``);
    ``views`` is a float32 array (studies, max_views, size, size, 1) filled from the cache in
    view order and zero-padded; ``mask`` (studies, max_views) is 1 where a real view sits.
    Studies with more than ``max_views`` views keep their first ``max_views``.
    """
    if max_views < 1:
        raise ValueError(f"max_views must be at least 1, got {max_views}")
    part = prepared.subset(subset).sort_values(["study_path", "view"])
    if part.empty:
        raise ValueError(f"The subset {subset!r} has no images.")
    studies = part.groupby("study_path", sort=True).agg(
        study_type=("study_type", "first"), label=("label", "first"), views=("view", "size")
    )
    size = prepared.cache_images.shape[1]
    views = np.zeros((len(studies), max_views, size, size, 1), dtype="float32")
    mask = np.zeros((len(studies), max_views), dtype="float32")
    position = pd.Series(np.arange(len(studies)), index=studies.index)
    slot = part.groupby("study_path").cumcount().to_numpy()
    keep = slot < max_views
    study_index = position.loc[part["study_path"]].to_numpy()
    rows = part["cache_row"].to_numpy()
    views[study_index[keep], slot[keep], :, :, 0] = prepared.cache_images[rows[keep]]
    mask[study_index[keep], slot[keep]] = 1.0
    return studies.reset_index(), views, mask
