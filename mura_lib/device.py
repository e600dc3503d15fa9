"""What the computation runs on: backend, accelerators, precision and distribution.

Keras (and with it TensorFlow) is imported only by the functions that need it, so that the
build process can describe the machine (:func:`cpu_name`) without loading a framework."""

from __future__ import annotations

import contextlib
import os
import platform
from importlib import metadata


def backend() -> str:
    import keras

    return keras.backend.backend()


def accelerators() -> list[str]:
    """Names of the GPUs the active Keras backend can use (empty on a CPU-only machine)."""
    name = backend()
    try:
        if name == "tensorflow":
            import tensorflow as tf

            devices = tf.config.list_physical_devices("GPU")
            names = []
            for device in devices:
                details = tf.config.experimental.get_device_details(device)
                names.append(details.get("device_name", device.name))
            return names
        if name == "jax":
            import jax

            return [d.device_kind for d in jax.devices() if d.platform == "gpu"]
        if name == "torch":
            import torch

            return [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    except Exception:  # a broken driver must not stop a CPU run
        return []
    return []


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def device_description() -> str:
    gpus = accelerators()
    if gpus:
        return f"{len(gpus)} x {gpus[0]}" if len(set(gpus)) == 1 else ", ".join(gpus)
    return f"CPU: {cpu_name()} ({os.cpu_count()} cores)"


def resolve_precision(precision: str = "auto") -> str:
    """``auto`` means mixed bfloat16 on a GPU and float32 on a CPU."""
    allowed = ("auto", "float32", "mixed_float16", "mixed_bfloat16")
    if precision not in allowed:
        raise ValueError(f"precision must be one of {allowed}, got {precision!r}")
    if precision != "auto":
        return precision
    return "mixed_bfloat16" if accelerators() else "float32"


@contextlib.contextmanager
def distribution_scope():
    """Spread training over all local GPUs with the backend's own data parallelism."""
    gpus = accelerators()
    if len(gpus) > 1 and backend() == "tensorflow":
        import tensorflow as tf

        with tf.distribute.MirroredStrategy().scope():
            yield len(gpus)
        return
    if len(gpus) > 1 and backend() == "jax":
        import keras

        previous = keras.distribution.distribution()
        keras.distribution.set_distribution(keras.distribution.DataParallel())
        try:
            yield len(gpus)
        finally:
            keras.distribution.set_distribution(previous)
        return
    yield max(1, len(gpus))


def package_versions() -> dict[str, str]:
    names = ["keras", "tensorflow", "tensorflow-cpu", "jax", "torch", "numpy", "pandas", "scikit-learn", "scipy"]
    versions = {"python": platform.python_version()}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


def environment() -> dict:
    """A record of where a run happened, stored with every run."""
    return {
        "backend": backend(),
        "device": device_description(),
        "accelerators": accelerators(),
        "platform": platform.platform(),
        "versions": package_versions(),
    }
