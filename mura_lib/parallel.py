"""Process pools that are safe to start from a process that already runs threads, whose workers
do not outlive their parent, and the clean-up of what a killed process left half-written."""

from __future__ import annotations

import multiprocessing
import os
import re
import secrets
import shutil
import signal
import sys
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from pathlib import Path


def _exit_with_parent(parent: int) -> None:
    """Pool initializer: end this worker as soon as the process that started it is gone.

    A pool's workers otherwise live on after their parent is killed (``kill -9``): they wait
    for work on a pipe that nobody closes.  On Linux the kernel sends them SIGTERM when their
    parent (the fork server, which itself exits with the main process) dies; elsewhere, and as
    a fallback, a daemon thread checks once a second that the parent process is still there.
    """
    if sys.platform.startswith("linux"):
        try:
            import ctypes

            PR_SET_PDEATHSIG = 1
            ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
        except (OSError, AttributeError):
            pass
    started_by = os.getppid()

    def watch():
        while True:
            if os.getppid() != started_by or not pid_alive(parent):
                os._exit(1)
            time.sleep(1.0)

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()


@contextmanager
def _main_module_hidden():
    """``__main__`` without its file and module name, for as long as the block runs.

    A fork server or spawned worker runs the parent's main script again (as ``__mp_main__``)
    unless it cannot find it.  A plain script without an ``if __name__ == "__main__":`` guard
    then starts its pool again in every worker, and hangs; a script read from standard input
    (``python -``) fails with ``FileNotFoundError: '<stdin>'``.  The pools' work is in the
    library's own modules, so their workers never need the main script: hidden, it is not run.
    """
    main = sys.modules.get("__main__")
    saved = {name: main.__dict__[name] for name in ("__file__", "__spec__") if main and name in main.__dict__}
    try:
        if main is not None:
            main.__dict__.pop("__file__", None)
            if "__spec__" in saved:
                main.__spec__ = None
        yield
    finally:
        if main is not None:
            main.__dict__.update(saved)


class _SpawnProcess(multiprocessing.context.SpawnProcess):
    def start(self):
        with _main_module_hidden():
            super().start()


class _SpawnContext(multiprocessing.context.SpawnContext):
    Process = _SpawnProcess


_CONTEXTS = {"spawn": _SpawnContext}
if hasattr(multiprocessing.context, "ForkServerContext"):  # not on Windows

    class _ForkServerProcess(multiprocessing.context.ForkServerProcess):
        def start(self):
            with _main_module_hidden():
                super().start()

    class _ForkServerContext(multiprocessing.context.ForkServerContext):
        Process = _ForkServerProcess

    _CONTEXTS["forkserver"] = _ForkServerContext


def process_pool(workers: int) -> ProcessPoolExecutor:
    """A pool of ``workers`` processes started by a fork server where the platform has one.

    Forking a process that already runs threads can deadlock the child: JAX's runtime, for
    one, hangs a pool forked after ``import keras`` on the JAX backend.  The fork server is a
    fresh single-threaded process, so its children start clean, and faster than ``spawn``.
    The workers exit when the process that made the pool dies, and do not run the main script
    again (:func:`_main_module_hidden`): a script without a ``__main__`` guard, or one read from
    standard input, can use a pool.
    """
    method = "forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else "spawn"
    return ProcessPoolExecutor(
        max_workers=workers,
        mp_context=_CONTEXTS[method](),
        initializer=_exit_with_parent,
        initargs=(os.getpid(),),
    )


def pid_alive(pid: int) -> bool:
    """Whether a process with this id exists on this machine."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # it exists, owned by another user
    return True


def partial_name(name: str) -> str:
    """A temporary name for ``name`` unique to this process: ``.NAME.partial-PID-RANDOM``."""
    return f".{name}.partial-{os.getpid()}-{secrets.token_hex(4)}"


_PARTIAL = re.compile(r"^\..+\.partial-(?P<pid>\d+)(-[0-9a-f]+)?(\.[A-Za-z0-9]+)?$")


def remove_stale_partials(folder: str | os.PathLike) -> list[Path]:
    """Remove the ``.*.partial-PID-*`` files and folders in ``folder`` whose process is gone.

    Such leftovers are what a killed cache build, dataset generation or chapter leaves behind;
    those of a process that is still running (another build) are left alone.
    """
    folder = Path(folder)
    removed = []
    if not folder.is_dir():
        return removed
    for path in folder.glob(".*.partial-*"):
        match = _PARTIAL.match(path.name)
        if match is None or pid_alive(int(match["pid"])):
            continue
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
        removed.append(path)
    return removed
