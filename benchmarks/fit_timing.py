"""Timing of ``model.fit`` shared by the training benchmarks (not a benchmark itself)."""

from __future__ import annotations

import time

import numpy as np


def timed_fit(model, data, epochs: int, *, warmup_epochs: int = 1, **fit_options) -> float:
    """Seconds for ``epochs`` epochs of ``model.fit(data, ...)``, after ``warmup_epochs`` untimed
    ones (tracing, compilation, autotuning)."""
    model.fit(data, epochs=warmup_epochs, verbose=0, **fit_options)
    started = time.perf_counter()
    model.fit(data, epochs=epochs, verbose=0, **fit_options)
    return time.perf_counter() - started


def random_image_rate(model, size: int, batch: int, steps: int, *, batches_per_epoch: int = 8, warmup_epochs: int = 1) -> float:
    """Training images/s of ``model`` (compiled) on random uint8-range images of ``size``²,
    fed from host arrays of ``batches_per_epoch`` batches, over about ``steps`` timed steps."""
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 255, (batch * batches_per_epoch, size, size, 1)).astype("float32")
    y = rng.integers(0, 2, len(x)).astype("float32")
    epochs = max(1, steps // batches_per_epoch)
    seconds = timed_fit(model, x, epochs, warmup_epochs=warmup_epochs, y=y, batch_size=batch)
    return len(x) * epochs / seconds
