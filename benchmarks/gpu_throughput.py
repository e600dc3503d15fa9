"""GPU training throughput: the library's Keras models (JAX or PyTorch backend) beside a plain
PyTorch training loop of the same networks on the same card, in the same process.

For a machine with an NVIDIA GPU and JAX and/or PyTorch (TensorFlow is not needed):

    KERAS_BACKEND=jax   python benchmarks/gpu_throughput.py --models cnn vgg16 resnet50 --sizes 224 320
    KERAS_BACKEND=torch python benchmarks/gpu_throughput.py --models cnn vgg16 resnet50
    KERAS_BACKEND=jax   python benchmarks/gpu_throughput.py --dry-run   # tiny, on any device

What is measured: training images/s (default 224 px, batch 64), bf16 mixed precision, Adam,
binary cross-entropy, no augmentation, after a warm-up that includes compilation.  The Keras
models are the ones the thesis trains (grayscale input mapped to RGB and normalised inside
the model), fed by ``model.fit`` from host arrays as in training.  The reference is a
hand-written PyTorch loop (torchvision's VGG16 and ResNet-50, and the same ab-initio CNN in
plain ``torch.nn``) under ``torch.autocast(bfloat16)`` with channels-last tensors already on
the device, which is the usual fast PyTorch recipe, run eagerly and through
``torch.compile``.  The ratio is Keras / the faster of the two PyTorch loops.
"""

from __future__ import annotations

import argparse
import json
import os
import time
import traceback

# JAX would otherwise take 75% of the card up front and leave PyTorch too little.
os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from fit_timing import random_image_rate


def keras_rate(name: str, size: int, batch: int, steps: int, *, augment: bool = False) -> float:
    import keras

    from mura_lib.config import ExperimentConfig
    from mura_lib.models import build_cnn, build_pretrained
    from mura_lib.training import compile_model

    keras.config.set_dtype_policy("mixed_bfloat16")
    try:
        if name == "cnn":
            model = build_cnn(size, augment=augment)
        else:
            model = build_pretrained(name, size, weights=None, fine_tune=True, augment=augment)
        compile_model(model, ExperimentConfig(model=name, image_size=size))
        return random_image_rate(model, size, batch, steps, batches_per_epoch=16, warmup_epochs=2)
    finally:
        keras.config.set_dtype_policy("float32")


def torch_network(name: str):
    import torch

    if name == "cnn":  # the library's build_cnn defaults: 4 blocks, width 32 doubling to 256
        blocks, channels = [], 3
        for block in range(4):
            filters = 32 * 2 ** min(block, 3)
            blocks += [
                torch.nn.Conv2d(channels, filters, 3, padding=1, bias=False),
                torch.nn.BatchNorm2d(filters, momentum=0.1),
                torch.nn.ReLU(inplace=True),
                torch.nn.MaxPool2d(2),
            ]
            channels = filters
        return torch.nn.Sequential(
            *blocks,
            torch.nn.AdaptiveAvgPool2d(1),
            torch.nn.Flatten(),
            torch.nn.Dropout(0.3),
            torch.nn.Linear(channels, 1),
        )
    import torchvision

    return {
        "vgg16": torchvision.models.vgg16,
        "resnet50": torchvision.models.resnet50,
        "densenet169": torchvision.models.densenet169,
    }[name](num_classes=1)


def torch_rate(name: str, size: int, batch: int, steps: int, *, compiled: bool = False) -> float:
    """Images/s of a plain PyTorch training loop, eager or through ``torch.compile``."""
    import torch

    device = "cuda" if torch.cuda.is_available() else "cpu"
    network = torch_network(name).to(device).to(memory_format=torch.channels_last)
    optimiser = torch.optim.Adam(network.parameters(), lr=1e-4)
    x = torch.rand(batch, 3, size, size, device=device).to(memory_format=torch.channels_last)
    y = torch.randint(0, 2, (batch, 1), device=device).float()
    loss_fn = torch.nn.BCEWithLogitsLoss()
    torch.backends.cudnn.benchmark = True
    forward = torch.compile(network) if compiled else network

    def step():
        optimiser.zero_grad(set_to_none=True)
        with torch.autocast(device, dtype=torch.bfloat16):
            loss = loss_fn(forward(x), y)
        loss.backward()
        optimiser.step()

    def synchronise():
        if device == "cuda":
            torch.cuda.synchronize()

    for _ in range(15):  # warm-up: cuDNN autotuning, and compilation for torch.compile
        step()
    synchronise()
    started = time.perf_counter()
    for _ in range(steps):
        step()
    synchronise()
    rate = batch * steps / (time.perf_counter() - started)
    del network, forward, optimiser, x, y
    if device == "cuda":
        torch.cuda.empty_cache()
    return rate


STRICT = False  # a dry run stops at the first error


def attempt(function, *args, **kwargs) -> float | None:
    try:
        return function(*args, **kwargs)
    except Exception:  # one failing model must not lose the others' figures
        if STRICT:
            raise
        traceback.print_exc()
        return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=["cnn", "vgg16", "resnet50"])
    parser.add_argument("--sizes", type=int, nargs="+", default=[224])
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--steps", type=int, default=64, help="timed training steps per measurement")
    parser.add_argument("--no-reference", action="store_true", help="skip the plain PyTorch loops")
    parser.add_argument("--no-compile", action="store_true", help="skip the torch.compile loop (eager only)")
    parser.add_argument(
        "--augment", action="store_true", help="also time the ab-initio CNN with on-device augmentation"
    )
    parser.add_argument(
        "--dry-run", action="store_true", help="the ab-initio CNN at 32 px, batch 4, 2 steps: checks that it runs"
    )
    parser.add_argument("--json", help="also write the figures to this JSON file")
    args = parser.parse_args()
    if args.dry_run:
        global STRICT
        STRICT = True
        args.models, args.sizes, args.batch, args.steps = ["cnn"], [32], 4, 2

    import keras

    from mura_lib import device

    backend = keras.backend.backend()
    print(f"keras {keras.__version__}, backend {backend}, device: {device.device_description()}")
    print(f"batch {args.batch}, bf16 mixed precision, {args.steps} timed steps", flush=True)
    print(
        f"{'model':<14} {'size':>5} {'keras img/s':>12} {'torch eager':>12} {'torch compiled':>15} {'ratio':>7}",
        flush=True,
    )
    results = []
    for size in args.sizes:
        for name in args.models:
            ours = attempt(keras_rate, name, size, args.batch, args.steps)
            eager = None if args.no_reference else attempt(torch_rate, name, size, args.batch, args.steps)
            compiled = None
            if not (args.no_reference or args.no_compile):
                compiled = attempt(torch_rate, name, size, args.batch, args.steps, compiled=True)
            fastest = max((rate for rate in (eager, compiled) if rate), default=None)
            ratio = ours / fastest if ours and fastest else None
            results.append(
                {
                    "model": name,
                    "size": size,
                    "backend": backend,
                    "keras": ours,
                    "torch": eager,
                    "torch_compiled": compiled,
                    "ratio": ratio,
                }
            )
            print(
                f"{name:<14} {size:>5} {ours or float('nan'):>12.0f} {eager or float('nan'):>12.0f} "
                f"{compiled or float('nan'):>15.0f} {format(ratio, '.0%') if ratio else 'n/a':>7}",
                flush=True,
            )
        if args.augment:
            ours = attempt(keras_rate, "cnn", size, args.batch, args.steps, augment=True)
            results.append(
                {
                    "model": "cnn+augment",
                    "size": size,
                    "backend": backend,
                    "keras": ours,
                    "torch": None,
                    "torch_compiled": None,
                    "ratio": None,
                }
            )
            print(f"{'cnn+augment':<14} {size:>5} {ours or float('nan'):>12.0f}", flush=True)
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(
                {"device": device.device_description(), "batch": args.batch, "results": results}, handle, indent=1
            )


if __name__ == "__main__":
    main()
