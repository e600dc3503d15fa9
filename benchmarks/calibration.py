"""Difficulty calibration of the synthetic radiographs.

Generates a synthetic MURA copy, trains a small CNN at two input sizes and prints the
study-level AUROC on the ``valid`` split (MURA's test set), with per-finding image-level
AUROCs against normal studies.  The targets (tuned with ``FINDING_STRENGTH`` in
``mura_lib/synthetic/findings.py``): at the demo scale a 64 px model lands clearly between
chance and perfect (about 0.75-0.92) and a 128 px model does measurably better.

``valid`` holds only about 60 studies at the demo scale, so its AUROC moves by several points
from one training seed to the next.  A second, independently seeded copy (``--holdout-seed``;
both of its splits, several hundred studies) gives a steadier figure for the same models.

    python benchmarks/calibration.py                      # demo scale, 64 and 128 px
    python benchmarks/calibration.py --sizes 64 --epochs 8 --repeats 3

This is a benchmark, not a test: it takes a few minutes on two CPU cores.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mura_lib.dataset import load_mura  # noqa: E402
from mura_lib.evaluation import bootstrap_interval  # noqa: E402
from mura_lib.synthetic import generate_synthetic_mura  # noqa: E402


def load_square(paths, size: int) -> np.ndarray:
    """Grayscale images resized with their aspect ratio kept and zero-padded to ``size``²."""
    out = np.zeros((len(paths), size, size, 1), np.float32)
    for i, path in enumerate(paths):
        with Image.open(path) as im:
            im = im.convert("L")
            w, h = im.size
            scale = size / max(w, h)
            nw, nh = max(1, round(w * scale)), max(1, round(h * scale))
            im = im.resize((nw, nh), Image.BILINEAR)
            y0, x0 = (size - nh) // 2, (size - nw) // 2
            out[i, y0 : y0 + nh, x0 : x0 + nw, 0] = np.asarray(im, np.float32) / 255.0
    return out


def small_cnn(size: int, width: int = 16, blocks: int | None = None):
    """Conv-BN-ReLU-MaxPool blocks, global average pooling, one sigmoid unit.

    By default the depth follows the input (64 px: 4 blocks, 128 px: 5), so that the last
    feature map and the receptive field cover the same share of the film at every size.
    """
    import keras
    from keras import layers

    if blocks is None:
        blocks = max(2, int(round(np.log2(size))) - 2)

    inputs = keras.Input((size, size, 1))
    x = inputs
    for b in range(blocks):
        x = layers.Conv2D(width * 2 ** min(b, 3), 3, padding="same", use_bias=False)(x)
        # Keras' default momentum (0.99) lets the moving statistics lag far behind the weights
        # in a short run of a few hundred steps, and inference-mode predictions then collapse.
        x = layers.BatchNormalization(momentum=0.9)(x)
        x = layers.ReLU()(x)
        x = layers.MaxPooling2D()(x)
    x = layers.GlobalAveragePooling2D()(x)
    outputs = layers.Dense(1, activation="sigmoid")(x)
    model = keras.Model(inputs, outputs)
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="binary_crossentropy")
    return model


def study_auroc(images: pd.DataFrame, prob: np.ndarray, ci: bool = False):
    """Study-level AUROC (image probabilities averaged per study); with a 95% bootstrap interval."""
    from sklearn.metrics import roc_auc_score

    frame = images.assign(prob=prob).groupby("study_path").agg(label=("label", "first"), prob=("prob", "mean"))
    auc = float(roc_auc_score(frame["label"], frame["prob"]))
    if not ci:
        return auc
    return (auc, *bootstrap_interval(frame["label"], frame["prob"], "auroc"))


def finding_aurocs(images: pd.DataFrame, prob: np.ndarray) -> dict[str, float]:
    """Image-level AUROC of each finding's images against the images of normal studies."""
    from sklearn.metrics import roc_auc_score

    frame = images.assign(prob=prob)
    normal = frame.loc[frame["label"] == 0, "prob"].to_numpy()
    out = {}
    for finding, group in frame.loc[frame["label"] == 1].groupby(frame["finding"].fillna("")):
        name = finding or "(not visible)"
        scores = np.concatenate([normal, group["prob"].to_numpy()])
        labels = np.concatenate([np.zeros(len(normal)), np.ones(len(group))])
        out[name] = float(roc_auc_score(labels, scores))
    return out


def with_findings(dataset) -> pd.DataFrame:
    findings = pd.read_csv(Path(dataset.root) / "synthetic_truth.csv", keep_default_na=False)[["relpath", "finding"]]
    return dataset.images.merge(findings, on="relpath", how="left")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dest", default=os.environ.get("MURA_CALIBRATION_DIR", "/tmp/mura_calibration"))
    parser.add_argument("--scale", type=float, default=0.05)
    parser.add_argument("--image-size", type=int, default=128)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--sizes", default="64,128", help="model input sizes, comma-separated")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--width", type=int, default=16, help="filters of the first block (doubles per block)")
    parser.add_argument("--repeats", type=int, default=1, help="training seeds per input size")
    parser.add_argument("--holdout-seed", type=int, default=1, help="seed of an extra evaluation copy; -1 for none")
    parser.add_argument("--reuse", action="store_true", help="reuse existing copies instead of regenerating them")
    args = parser.parse_args(argv)

    import keras

    started = time.perf_counter()
    t0 = time.perf_counter()
    if not args.reuse:
        # generate_synthetic_mura reuses a copy with the same specification, even when the
        # drawing code has changed since: start from scratch.
        for seed in {args.seed, args.holdout_seed} - {-1}:
            shutil.rmtree(Path(args.dest) / f"seed{seed}", ignore_errors=True)
    root = generate_synthetic_mura(
        Path(args.dest) / f"seed{args.seed}",
        scale=args.scale,
        image_size=args.image_size,
        seed=args.seed,
        overwrite=not args.reuse,
        progress=False,
    )
    data = with_findings(load_mura(root))
    holdout = None
    if args.holdout_seed >= 0:
        hroot = generate_synthetic_mura(
            Path(args.dest) / f"seed{args.holdout_seed}",
            scale=args.scale,
            image_size=args.image_size,
            seed=args.holdout_seed,
            overwrite=not args.reuse,
            progress=False,
        )
        holdout = with_findings(load_mura(hroot))
    t_gen = time.perf_counter() - t0
    train = data[data["split"] == "train"].reset_index(drop=True)
    valid = data[data["split"] == "valid"].reset_index(drop=True)
    print(
        f"data: scale={args.scale} image_size={args.image_size} seed={args.seed}: "
        f"train {len(train)} images / {train['study_path'].nunique()} studies, "
        f"valid {len(valid)} images / {valid['study_path'].nunique()} studies"
        + (
            f"; holdout (seed {args.holdout_seed}) {len(holdout)} images / {holdout['study_path'].nunique()} studies"
            if holdout is not None
            else ""
        )
        + f"  [{t_gen:.0f} s to generate]"
    )

    rows = []
    for size in [int(s) for s in args.sizes.split(",")]:
        x_train = load_square(train["path"], size)
        x_valid = load_square(valid["path"], size)
        x_hold = load_square(holdout["path"], size) if holdout is not None else None
        y_train = train["label"].to_numpy(np.float32)
        for repeat in range(args.repeats):
            keras.utils.set_random_seed(1000 + repeat)
            t0 = time.perf_counter()
            model = small_cnn(size, width=args.width)
            model.fit(x_train, y_train, epochs=args.epochs, batch_size=args.batch_size, shuffle=True, verbose=0)
            t_fit = time.perf_counter() - t0
            p_valid = model.predict(x_valid, batch_size=128, verbose=0)[:, 0]
            auc, lo, hi = study_auroc(valid, p_valid, ci=True)
            row = {
                "size": size,
                "repeat": repeat,
                "valid_study_auroc": auc,
                "valid_ci_low": lo,
                "valid_ci_high": hi,
                "fit_s": t_fit,
            }
            from sklearn.metrics import roc_auc_score

            row["valid_image_auroc"] = float(roc_auc_score(valid["label"], p_valid))
            p_train = model.predict(x_train, batch_size=128, verbose=0)[:, 0]
            row["train_image_auroc"] = float(roc_auc_score(y_train, p_train))
            if x_hold is not None:
                p_hold = model.predict(x_hold, batch_size=128, verbose=0)[:, 0]
                row["holdout_study_auroc"] = study_auroc(holdout, p_hold)
                row.update({f"holdout {k}": v for k, v in finding_aurocs(holdout, p_hold).items()})
            rows.append(row)
            print(" ".join(f"{k}={v:.3f}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items()), flush=True)

    table = pd.DataFrame(rows)
    print()
    print(
        f"Study-level AUROC (mean over {args.repeats} training seed(s)), {args.epochs} epochs, first block {args.width} filters:"
    )
    summary = table.drop(columns=["repeat"]).groupby("size").mean()
    with pd.option_context("display.width", 200, "display.max_columns", 30, "display.precision", 3):
        print(summary.T)
    print(f"\ntotal {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
