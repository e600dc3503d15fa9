"""GPU training throughput: the library's Keras models (JAX or PyTorch backend) beside a plain
PyTorch training loop of the same networks on the same card, in the same process.

For a machine with an NVIDIA GPU and JAX and/or PyTorch (TensorFlow is not needed):

    KERAS_BACKEND=jax   python benchmarks/gpu_throughput.py --models cnn vgg16 resnet50
    KERAS_BACKEND=torch python benchmarks/gpu_throughput.py --models cnn vgg16 resnet50

What is measured: training images/s at 224 px, batch 64, bf16 mixed precision, Adam, binary
cross-entropy, no augmentation, after a warm-up that includes compilation.  The Keras models
are the ones the thesis trains (grayscale input mapped to RGB and normalised inside the
model), fed by ``model.fit`` from host arrays as in training.  The reference is a
hand-written PyTorch loop (torchvision's VGG16 and ResNet-50, and the same ab-initio CNN in
plain ``torch.nn``) under ``torch.autocast(bfloat16)`` with channels-last tensors already on
the device, which is the usual fast PyTorch recipe.  The ratio is Keras / PyTorch.
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

    from mura_lib.models import build_cnn, build_pretrained
    from mura_lib.training import ExperimentConfig, compile_model

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
    import torchvision

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
            *blocks, torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Dropout(0.3), torch.nn.Linear(channels, 1)
        )
    return {"vgg16": torchvision.models.vgg16, "resnet50": torchvision.models.resnet50,
            "densenet169": torchvision.models.densenet169}[name](num_classes=1)


def torch_rate(name: str, size: int, batch: int, steps: int) -> float:
    import torch

    device = "cuda"
    network = torch_network(name).to(device).to(memory_format=torch.channels_last)
    optimiser = torch.optim.Adam(network.parameters(), lr=1e-4)
    x = torch.rand(batch, 3, size, size, device=device).to(memory_format=torch.channels_last)
    y = torch.randint(0, 2, (batch, 1), device=device).float()
    loss_fn = torch.nn.BCEWithLogitsLoss()
    torch.backends.cudnn.benchmark = True

    def step():
        optimiser.zero_grad(set_to_none=True)
        with torch.autocast("cuda", dtype=torch.bfloat16):
            loss = loss_fn(network(x), y)
        loss.backward()
        optimiser.step()

    for _ in range(15):
        step()
    torch.cuda.synchronize()
    started = time.perf_counter()
    for _ in range(steps):
        step()
    torch.cuda.synchronize()
    rate = batch * steps / (time.perf_counter() - started)
    del network, optimiser, x, y
    torch.cuda.empty_cache()
    return rate


def attempt(function, *args, **kwargs) -> float | None:
    try:
        return function(*args, **kwargs)
    except Exception:  # one failing model must not lose the others' figures
        traceback.print_exc()
        return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=["cnn", "vgg16", "resnet50"])
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--steps", type=int, default=64, help="timed training steps per measurement")
    parser.add_argument("--no-reference", action="store_true", help="skip the plain PyTorch loop")
    parser.add_argument("--augment", action="store_true", help="also time the ab-initio CNN with on-device augmentation")
    parser.add_argument("--json", help="also write the figures to this JSON file")
    args = parser.parse_args()

    import keras

    from mura_lib import device

    backend = keras.backend.backend()
    print(f"keras {keras.__version__}, backend {backend}, device: {device.device_description()}")
    print(f"{args.size}px, batch {args.batch}, bf16 mixed precision, {args.steps} timed steps", flush=True)
    print(f"{'model':<14} {'keras img/s':>12} {'torch img/s':>12} {'ratio':>7}", flush=True)
    results = []
    for name in args.models:
        ours = attempt(keras_rate, name, args.size, args.batch, args.steps)
        theirs = None if args.no_reference else attempt(torch_rate, name, args.size, args.batch, args.steps)
        ratio = ours / theirs if ours and theirs else None
        results.append({"model": name, "backend": backend, "keras": ours, "torch": theirs, "ratio": ratio})
        print(
            f"{name:<14} {ours or float('nan'):>12.0f} {theirs or float('nan'):>12.0f} "
            f"{format(ratio, '.0%') if ratio else 'n/a':>7}",
            flush=True,
        )
    if args.augment:
        ours = attempt(keras_rate, "cnn", args.size, args.batch, args.steps, augment=True)
        results.append({"model": "cnn+augment", "backend": backend, "keras": ours, "torch": None, "ratio": None})
        print(f"{'cnn+augment':<14} {ours or float('nan'):>12.0f}", flush=True)
    if args.json:
        with open(args.json, "w") as handle:
            json.dump({"device": device.device_description(), "size": args.size, "batch": args.batch, "results": results}, handle, indent=1)


if __name__ == "__main__":
    main()
