"""Process pools that are safe to start from a process that already runs threads."""

from __future__ import annotations

import multiprocessing
from concurrent.futures import ProcessPoolExecutor


def process_pool(workers: int) -> ProcessPoolExecutor:
    """A pool of ``workers`` processes started by a fork server where the platform has one.

    Forking a process that already runs threads can deadlock the child: JAX's runtime, for
    one, hangs a pool forked after ``import keras`` on the JAX backend.  The fork server is a
    fresh single-threaded process, so its children start clean, and faster than ``spawn``.
    """
    method = "forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else "spawn"
    return ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context(method))
