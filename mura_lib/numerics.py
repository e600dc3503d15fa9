"""The numeric settings that decide a run's numbers, fixed once for every entry point.

A chapter, the CLI, a plain script, a test and a cluster worker all import ``mura_lib`` before
they import TensorFlow, so :func:`configure` (called by ``mura_lib/__init__.py``) sets the same
defaults everywhere:

- ``TF_ENABLE_ONEDNN_OPTS=1``: TensorFlow's oneDNN kernels on x86 CPUs, about 2.6 times faster
  than the Eigen kernels on the book's models and just as deterministic for a fixed thread
  count (two processes with the same settings give bit-identical predictions).
- TensorFlow's intra-op thread pool of one thread (``$MURA_THREADS`` sets another count):
  oneDNN's reductions depend on the number of threads, so the count is fixed explicitly and is
  part of every run key.  One thread, not one per core: the book's small models train about as
  fast on one thread as on two (532 and 533 images/s at 48 px,
  ``benchmarks/results/cpu_training_throughput_48px.txt``), so
  the build trains several runs side by side, one per core
  (``benchmarks/results/cpu_side_by_side.txt``); and a run's key no longer depends on how many
  cores the machine has.

A user who overrides a setting (``TF_ENABLE_ONEDNN_OPTS=0``, ``MURA_THREADS=2``) gets other runs,
not other numbers under the same key: :func:`in_effect` goes into the run key and into each
run's stored environment.  What is promised: the same machine, versions and settings give the
same numbers.  Not promised: the same numbers on another CPU model, another number of cores,
another TensorFlow version or a GPU.

The backend: where ``KERAS_BACKEND`` is unset and TensorFlow is not installed but JAX is (the
``gpu`` extra installs Keras with JAX only), :func:`choose_backend` sets ``KERAS_BACKEND=jax``
before Keras is imported; Keras itself would fall back to TensorFlow and fail to import.

This module imports nothing of the project and no framework.
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys

DEFAULTS = {"TF_ENABLE_ONEDNN_OPTS": "1"}
# Log levels change nothing numeric: quiet unless the user asked otherwise.
QUIET = {"TF_CPP_MIN_LOG_LEVEL": "3"}
THREADS_ENV_VAR = "MURA_THREADS"
TF_THREADS_ENV_VAR = "TF_NUM_INTRAOP_THREADS"

# The values TensorFlow was (or will be) imported with: captured before anyone can import it.
_AT_IMPORT: dict[str, str | None] = {}


def _keras_config_backend() -> str | None:
    """The backend named in Keras' own configuration file (``$KERAS_HOME/keras.json``), if any."""
    home = os.environ.get("KERAS_HOME") or os.path.join(os.path.expanduser("~"), ".keras")
    try:
        with open(os.path.join(home, "keras.json")) as handle:
            return json.load(handle).get("backend")
    except (OSError, ValueError, AttributeError):
        return None


def choose_backend() -> str | None:
    """Set ``KERAS_BACKEND=jax`` where nothing chose a backend, TensorFlow is not installed and
    JAX is; returns the backend set, or None where this changed nothing.  A backend chosen by
    ``$KERAS_BACKEND`` or in ``keras.json`` (other than Keras' default, TensorFlow) is kept, and
    nothing changes once Keras is imported."""
    if os.environ.get("KERAS_BACKEND") or "keras" in sys.modules:
        return None
    if _keras_config_backend() not in (None, "tensorflow"):
        return None
    if not _installed("tensorflow") and _installed("jax"):
        os.environ["KERAS_BACKEND"] = "jax"
        return "jax"
    return None


def _installed(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):  # an import hook that refuses it, a half-removed package
        return False


def configure() -> None:
    """Set the numeric defaults before TensorFlow is imported (a no-op after that)."""
    if _AT_IMPORT:
        return
    choose_backend()
    tensorflow_loaded = "tensorflow" in sys.modules
    for name, value in QUIET.items():
        os.environ.setdefault(name, value)
    for name, value in DEFAULTS.items():
        if not tensorflow_loaded:
            os.environ.setdefault(name, value)
        # Imported earlier without the variable, TensorFlow runs with its own default (oneDNN on).
        _AT_IMPORT[name] = os.environ.get(name, value)
    if not tensorflow_loaded:
        # TensorFlow sizes its thread pool from this variable when its runtime starts, whatever
        # starts it first (building a model to show it, say): $MURA_THREADS then holds in every
        # process, not only in one whose first TensorFlow call is a training run.
        try:
            os.environ[TF_THREADS_ENV_VAR] = str(cpu_threads())
        except ValueError:
            pass  # a bad $MURA_THREADS is reported where the threads are applied


def usable_cpus() -> int:
    """The CPUs this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


DEFAULT_THREADS = 1


def cpu_threads() -> int:
    """The intra-op thread count for TensorFlow: ``$MURA_THREADS``, else ``DEFAULT_THREADS``."""
    configured = os.environ.get(THREADS_ENV_VAR)
    if not configured:
        return DEFAULT_THREADS
    try:
        threads = int(configured)
    except ValueError:
        threads = 0
    if threads < 1:
        raise ValueError(f"${THREADS_ENV_VAR} must be a positive integer, got {configured!r}")
    return threads


def apply_threads(backend: str) -> int:
    """Size TensorFlow's thread pool (before its first operation); return the count in effect."""
    wanted = cpu_threads()
    if backend != "tensorflow":
        return wanted
    import tensorflow as tf

    try:
        tf.config.threading.set_intra_op_parallelism_threads(wanted)
        return wanted
    except RuntimeError:
        # The runtime already started (an earlier run in this process, or a model built before
        # it): its pool stays as it is, sized from $TF_NUM_INTRAOP_THREADS if that was set (as
        # configure does) and the usable CPUs otherwise; the key records that size.
        configured = tf.config.threading.get_intra_op_parallelism_threads()
        if configured:
            return configured
        try:
            return int(os.environ.get(TF_THREADS_ENV_VAR, "")) or usable_cpus()
        except ValueError:
            return usable_cpus()


def in_effect(backend: str) -> dict:
    """The numeric settings of this process that a run's key must include."""
    configure()
    settings = {"threads": apply_threads(backend)}
    if backend == "tensorflow":
        settings["onednn"] = _AT_IMPORT.get("TF_ENABLE_ONEDNN_OPTS", "1")
    if backend == "jax" and _jax_on_cpu():
        # XLA runs a CPU computation on every core the process may use, whatever $MURA_THREADS
        # says, and its sums depend on how many (the JAX tier's tiny run: test probabilities 3e-7
        # apart on one core and on two, with or without XLA's own thread flags): the key records
        # the cores.  On a GPU the computation does not run on them.
        settings["threads"] = usable_cpus()
    return settings


def _jax_on_cpu() -> bool:
    import jax

    return jax.default_backend() == "cpu"
