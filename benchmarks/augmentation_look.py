"""What the training augmentation does to small images: a grid of cached training images of a
profile's data at each size, unchanged, after the warp alone (flip, rotation, zoom, with its
constant fill), and after the warp and the contrast step, as the model sees them.

    .venv/bin/python benchmarks/augmentation_look.py [--profile demo] [--sizes 48 64]
        [--out benchmarks/results/augmentation_look.png]

Also prints, per size, the share of each augmented image that the fill covers (pixels outside
the rotated and zoomed image) and how much the contrast step moves pixel values.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import matplotlib  # noqa: E402

matplotlib.use("Agg")
import keras  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from mura_lib.dataset import load_mura  # noqa: E402
from mura_lib.models import RandomAffine, augmentation  # noqa: E402
from mura_lib.preprocess import build_cache  # noqa: E402
from mura_thesis.profiles import load_profile, resolve_data  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", default="demo")
    parser.add_argument("--sizes", type=int, nargs="+", default=[48, 64])
    parser.add_argument("--images", type=int, default=4)
    parser.add_argument("--draws", type=int, default=256, help="images drawn for the printed shares")
    parser.add_argument("--out", default="benchmarks/results/augmentation_look.png")
    args = parser.parse_args()

    project = Path(__file__).resolve().parents[1]
    profile = load_profile(project, args.profile)
    _, root = resolve_data(project, profile, progress=False)
    dataset = load_mura(root)
    rows = []
    for size in args.sizes:
        cache = build_cache(dataset, size, cache_dir=project / "data" / "cache", progress=False)
        images = np.asarray(cache.images[: args.draws], dtype="float32")[..., None]
        warp = RandomAffine(30.0, 0.1, seed=0)
        full = augmentation(0)
        warped = keras.ops.convert_to_numpy(warp(images, training=True))
        augmented = keras.ops.convert_to_numpy(full(images, training=True))
        # The fill: pixels the warp sets to 0 that were not 0 before (the padding is already 0).
        marker = keras.ops.convert_to_numpy(warp(np.ones_like(images), training=True))
        filled = (marker < 0.5).mean(axis=(1, 2, 3))
        moved = np.abs(augmented - warped).mean(axis=(1, 2, 3))
        print(
            f"{size} px: the fill covers {filled.mean():.1%} of an image on average (max {filled.max():.1%}); "
            f"the contrast step moves a pixel by {moved.mean():.1f} grey levels on average (of 255)"
        )
        rows.append((size, images[: args.images], warped[: args.images], augmented[: args.images]))

    columns = args.images
    figure, axes = plt.subplots(3 * len(rows), columns, figsize=(1.6 * columns, 1.7 * 3 * len(rows)))
    for block, (size, *stages) in enumerate(rows):
        for stage, (title, batch) in enumerate(zip(("as cached", "warp", "warp + contrast"), stages)):
            for column in range(columns):
                axis = axes[3 * block + stage, column]
                axis.imshow(batch[column, ..., 0], cmap="gray", vmin=0, vmax=255, interpolation="nearest")
                axis.set_xticks([])
                axis.set_yticks([])
                if column == 0:
                    axis.set_ylabel(f"{size} px\n{title}", fontsize=8)
    figure.tight_layout()
    figure.savefig(args.out, dpi=120)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
