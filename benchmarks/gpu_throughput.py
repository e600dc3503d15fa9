"""GPU training throughput: Keras (JAX or PyTorch backend) against a plain PyTorch loop.

For a machine with an NVIDIA GPU, JAX and/or PyTorch (TensorFlow is not needed):

    KERAS_BACKEND=jax   python benchmarks/gpu_throughput.py --models cnn vgg16 resnet50
    KERAS_BACKEND=torch python benchmarks/gpu_throughput.py --models cnn vgg16 resnet50

Measures training images/s at 224 px, batch 64, bf16 mixed precision, on synthetic tensors
already on the device (so the input pipeline is not measured), for the library's models, and
for the same networks in a torchvision training loop under torch.autocast(bfloat16) when
PyTorch is installed. Prints the ratio Keras / PyTorch per model.
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np


def keras_rate(name: str, size: int, batch: int, steps: int) -> float:
    import keras

    from mura_lib.models import build_cnn, build_pretrained
    from mura_lib.training import ExperimentConfig, compile_model

    keras.config.set_dtype_policy("mixed_bfloat16")
    model = build_cnn(size, augment=False) if name == "cnn" else build_pretrained(name, size, weights=None, fine_tune=True, augment=False)
    compile_model(model, ExperimentConfig(model=name, image_size=size))
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 255, (batch * 8, size, size, 1)).astype("float32")
    y = rng.integers(0, 2, batch * 8).astype("float32")
    model.fit(x, y, batch_size=batch, epochs=1, verbose=0)  # compile
    repeats = max(1, steps // 8)
    started = time.perf_counter()
    model.fit(x, y, batch_size=batch, epochs=repeats, verbose=0)
    return batch * 8 * repeats / (time.perf_counter() - started)


def torch_rate(name: str, size: int, batch: int, steps: int) -> float | None:
    try:
        import torch
        import torchvision
    except ImportError:
        return None
    device = "cuda"
    if name == "cnn":
        return None
    network = {"vgg16": torchvision.models.vgg16, "resnet50": torchvision.models.resnet50, "densenet169": torchvision.models.densenet169}[name](num_classes=1)
    network = network.to(device).to(memory_format=torch.channels_last)
    optimiser = torch.optim.Adam(network.parameters(), lr=1e-4)
    x = torch.rand(batch, 3, size, size, device=device).to(memory_format=torch.channels_last)
    y = torch.randint(0, 2, (batch, 1), device=device).float()
    loss_fn = torch.nn.BCEWithLogitsLoss()

    def step():
        optimiser.zero_grad(set_to_none=True)
        with torch.autocast("cuda", dtype=torch.bfloat16):
            loss = loss_fn(network(x), y)
        loss.backward()
        optimiser.step()

    for _ in range(10):
        step()
    torch.cuda.synchronize()
    started = time.perf_counter()
    for _ in range(steps):
        step()
    torch.cuda.synchronize()
    return batch * steps / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--models", nargs="+", default=["cnn", "vgg16", "resnet50"])
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--steps", type=int, default=50)
    args = parser.parse_args()
    backend = os.environ.get("KERAS_BACKEND", "tensorflow")
    print(f"backend {backend}, {args.size}px, batch {args.batch}, bf16 mixed precision")
    print(f"{'model':<12} {'keras img/s':>12} {'torch img/s':>12} {'ratio':>7}")
    for name in args.models:
        ours = keras_rate(name, args.size, args.batch, args.steps)
        theirs = torch_rate(name, args.size, args.batch, args.steps)
        ratio = f"{ours / theirs:.0%}" if theirs else "n/a"
        print(f"{name:<12} {ours:>12.0f} {theirs or float('nan'):>12.0f} {ratio:>7}", flush=True)


if __name__ == "__main__":
    main()
