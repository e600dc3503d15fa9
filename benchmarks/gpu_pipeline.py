"""Does the input pipeline keep a GPU busy?  Training images/s and GPU utilisation of a model
fed from the preprocessing cache (the library's CacheBatches over the memory map, as in
training) against the same model fed the same batches already on the device, with and without
the on-device augmentation, at each size.  The gap (1 - cache / device) should be at most 10%.

    KERAS_BACKEND=jax   python benchmarks/gpu_pipeline.py --sizes 224 320 --json OUT.json
    KERAS_BACKEND=torch python benchmarks/gpu_pipeline.py --sizes 224 320
    python benchmarks/gpu_pipeline.py --dry-run     # tiny sizes on any device: checks that it runs

Both feeds go through the same ``model.fit`` over a ``keras.utils.PyDataset`` with the same
batches in the same order, so the difference is reading the memory map and copying each batch
to the device.  GPU utilisation is the share of time a kernel ran (NVML, or ``nvidia-smi``),
sampled every 0.2 s over the timed epochs only; "n/a" without an NVIDIA GPU.  On TensorFlow,
Keras feeds a PyDataset through ``tf.data.Dataset.from_generator``, which copies every batch
back to the host, so the device feed is not on the device there (JAX and PyTorch keep it).
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile

os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras
import numpy as np
from fit_timing import GpuUtilisation, timed_fit

from mura_lib.config import ExperimentConfig
from mura_lib.dataset import load_mura
from mura_lib.device import device_description, resolve_precision
from mura_lib.inputs import CacheBatches
from mura_lib.models import build_model
from mura_lib.preprocess import build_cache
from mura_lib.synthetic import generate_synthetic_mura
from mura_lib.training import compile_model


def on_device(array: np.ndarray):
    """``array`` as a tensor on the backend's default device (the GPU where there is one)."""
    backend = keras.backend.backend()
    if backend == "jax":
        import jax

        return jax.device_put(array)
    if backend == "torch":
        import torch
        from keras.src.backend.torch.core import get_device

        return torch.as_tensor(array, device=get_device())
    return keras.ops.convert_to_tensor(array)


class DeviceBatches(keras.utils.PyDataset):
    """The batches of a CacheBatches (its current epoch's order), copied to the device once."""

    def __init__(self, source: CacheBatches):
        super().__init__(workers=1, use_multiprocessing=False)
        self.batches = [tuple(on_device(part) for part in source[index]) for index in range(len(source))]

    def __len__(self):
        return len(self.batches)

    def __getitem__(self, index):
        return self.batches[index]


def measure(config: ExperimentConfig, data, epochs: int) -> tuple[float, float | None]:
    """(images/s, mean GPU utilisation in percent or None) of one fresh model trained on ``data``."""
    keras.utils.set_random_seed(0)
    model = build_model(config)
    compile_model(model, config)
    images = sum(len(data[index][1]) for index in range(len(data)))
    monitor = GpuUtilisation()
    seconds = timed_fit(model, data, epochs, monitor=monitor, shuffle=False)
    return images * epochs / seconds, monitor.mean


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[224, 320])
    parser.add_argument("--images", type=int, default=4096, help="training images per epoch")
    parser.add_argument("--epochs", type=int, default=3, help="timed epochs, after one untimed")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--model", default="cnn", help="cnn or a backbone name (random initialisation, fine-tuned)")
    parser.add_argument("--scale", type=float, default=0.1, help="synthetic dataset scale (1.0 = MURA's size)")
    parser.add_argument("--precision", default="auto", help="auto: mixed bfloat16 on a GPU, float32 on a CPU")
    parser.add_argument("--dry-run", action="store_true", help="32 px, 64 images, one epoch: only checks that it runs")
    parser.add_argument("--json", help="also write the figures to this JSON file")
    args = parser.parse_args()
    if args.dry_run:
        args.sizes, args.images, args.epochs, args.batch_size, args.scale = [32], 64, 1, 16, 0.005

    workdir = tempfile.mkdtemp(prefix="mura-pipeline-")
    root = generate_synthetic_mura(
        workdir, scale=args.scale, image_size=max(256, max(args.sizes)), seed=0, progress=False
    )
    dataset = load_mura(root)
    caches = {
        size: build_cache(dataset, size, cache_dir=os.path.join(workdir, "cache"), progress=False)
        for size in args.sizes
    }
    precision = resolve_precision(args.precision)
    keras.config.set_dtype_policy(precision)
    print(
        f"keras {keras.__version__}, backend {keras.backend.backend()}, {device_description()}, {os.cpu_count()} CPU cores"
    )
    print(
        f"model {args.model}, batch {args.batch_size}, {precision}, {args.epochs} timed epochs of {args.images} images, "
        f"GPU utilisation from {GpuUtilisation.available() or 'n/a'}"
    )
    print(
        f"{'size':>5} {'augment':>8} {'cache img/s':>12} {'GPU %':>6} {'device img/s':>13} {'GPU %':>6} {'gap':>7}",
        flush=True,
    )
    results = []
    for size in args.sizes:
        cache = caches[size]
        rows = np.arange(min(args.images, len(cache.index)))
        labels = dataset.images["label"].to_numpy()[rows].astype("float32")
        batches = CacheBatches(cache.images, rows, labels, batch_size=args.batch_size, shuffle=True)
        for augment in (False, True):
            config = ExperimentConfig(model=args.model, image_size=size, augment=augment, batch_size=args.batch_size)
            config = config.replace(weights=None, fine_tune=True) if args.model != "cnn" else config
            row = {"size": size, "augment": augment, "backend": keras.backend.backend()}
            for feed in ("cache", "device"):
                data = batches if feed == "cache" else DeviceBatches(batches)
                row[f"{feed}_rate"], row[f"{feed}_gpu"] = measure(config, data, args.epochs)
                del data
            row["gap"] = 1 - row["cache_rate"] / row["device_rate"]
            results.append(row)
            gpu = {
                feed: "n/a" if row[f"{feed}_gpu"] is None else f"{row[f'{feed}_gpu']:.0f}"
                for feed in ("cache", "device")
            }
            print(
                f"{size:>5} {'on' if augment else 'off':>8} {row['cache_rate']:>12.0f} {gpu['cache']:>6} "
                f"{row['device_rate']:>13.0f} {gpu['device']:>6} {row['gap']:>7.1%}",
                flush=True,
            )
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(
                {
                    "device": device_description(),
                    "model": args.model,
                    "batch": args.batch_size,
                    "precision": precision,
                    "images": args.images,
                    "epochs": args.epochs,
                    "results": results,
                },
                handle,
                indent=1,
            )


if __name__ == "__main__":
    main()
