"""Timing of ``model.fit`` shared by the training benchmarks (not a benchmark itself), and a
sampler of GPU utilisation for the GPU ones."""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import threading
import time

import numpy as np


def timed_fit(model, data, epochs: int, *, warmup_epochs: int = 1, monitor=None, **fit_options) -> float:
    """Seconds for ``epochs`` epochs of ``model.fit(data, ...)``, after ``warmup_epochs`` untimed
    ones (tracing, compilation, autotuning).  ``monitor``, a context manager such as
    :class:`GpuUtilisation`, is entered around the timed epochs only."""
    model.fit(data, epochs=warmup_epochs, verbose=0, **fit_options)
    with monitor or contextlib.nullcontext():
        started = time.perf_counter()
        model.fit(data, epochs=epochs, verbose=0, **fit_options)
        return time.perf_counter() - started


def random_image_rate(
    model, size: int, batch: int, steps: int, *, batches_per_epoch: int = 8, warmup_epochs: int = 1, monitor=None
) -> float:
    """Training images/s of ``model`` (compiled) on random uint8-range images of ``size``²,
    fed from host arrays of ``batches_per_epoch`` batches, over about ``steps`` timed steps
    (``monitor`` as in :func:`timed_fit`)."""
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 255, (batch * batches_per_epoch, size, size, 1)).astype("float32")
    y = rng.integers(0, 2, len(x)).astype("float32")
    epochs = max(1, steps // batches_per_epoch)
    seconds = timed_fit(model, x, epochs, warmup_epochs=warmup_epochs, monitor=monitor, y=y, batch_size=batch)
    return len(x) * epochs / seconds


class GpuUtilisation:
    """Samples the utilisation of GPU ``index`` (percent of time a kernel ran) while entered,
    through NVML (``pip install nvidia-ml-py``) or else ``nvidia-smi``.  ``mean`` is the average
    over the samples, or None where neither is available (no NVIDIA GPU)."""

    def __init__(self, index: int = 0, interval: float = 0.2):
        self.index = index
        self.interval = interval
        self.samples: list[float] = []
        self._stop = threading.Event()
        self._thread = None
        self._process = None

    @staticmethod
    def available() -> str | None:
        """``"nvml"``, ``"nvidia-smi"`` or None."""
        try:
            import pynvml

            pynvml.nvmlInit()
            return "nvml"
        except Exception:  # no module, no driver, no GPU
            return "nvidia-smi" if shutil.which("nvidia-smi") else None

    @property
    def mean(self) -> float | None:
        return float(np.mean(self.samples)) if self.samples else None

    def __enter__(self):
        self.samples = []
        self._stop.clear()
        source = self.available()
        if source == "nvml":
            self._thread = threading.Thread(target=self._poll_nvml, daemon=True)
            self._thread.start()
        elif source == "nvidia-smi":
            self._process = subprocess.Popen(
                [
                    "nvidia-smi",
                    f"--id={self.index}",
                    "--query-gpu=utilization.gpu",
                    "--format=csv,noheader,nounits",
                    f"-lms={int(self.interval * 1000)}",
                ],
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                text=True,
            )
        return self

    def _poll_nvml(self):
        import pynvml

        handle = pynvml.nvmlDeviceGetHandleByIndex(self.index)
        while not self._stop.wait(self.interval):
            self.samples.append(float(pynvml.nvmlDeviceGetUtilizationRates(handle).gpu))

    def __exit__(self, *exc):
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        if self._process is not None:
            self._process.terminate()
            output, _ = self._process.communicate(timeout=10)
            self.samples = [float(line) for line in output.split() if line.strip().replace(".", "", 1).isdigit()]
        return False
