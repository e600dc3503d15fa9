"""The JAX tier's worker: the library's smoke runs on Keras' JAX backend, in a process of their own
(Keras chooses its backend once per process), with TensorFlow made unimportable, as it is where
only the `gpu` extra (Keras on JAX) is installed.  ``tests/test_jax.py`` starts it and checks
what it leaves in its output folder.

    python tests/jax_worker.py all DATA_ROOT OUT     # every part: training, resume, store, multi-view, Grad-CAM, evaluation
    python tests/jax_worker.py again DATA_ROOT OUT   # the reference run alone, to compare across processes
    python tests/jax_worker.py fit DATA_ROOT OUT     # fit_from OUT/initial.weights.h5, to compare with TensorFlow
"""

from __future__ import annotations

import importlib.abc
import json
import os
import sys
from pathlib import Path


class _NoTensorFlow(importlib.abc.MetaPathFinder):
    """Makes ``import tensorflow`` fail, as if it were not installed, without putting a stand-in
    into ``sys.modules`` (Keras reads the presence of that entry as "TensorFlow is loaded")."""

    def find_spec(self, name, path=None, target=None):
        if name == "tensorflow" or name.startswith("tensorflow."):
            raise ModuleNotFoundError(f"No module named {name!r} (the JAX tier runs without TensorFlow)", name=name)
        return None


if __name__ == "__main__":
    # Before anything imports Keras: as where only the `gpu` extra (Keras on JAX) is installed.
    # Without $KERAS_BACKEND, importing mura_lib must choose JAX (mura_lib.numerics.choose_backend).
    sys.meta_path.insert(0, _NoTensorFlow())
    if os.environ.get("KERAS_BACKEND"):
        raise SystemExit("run without KERAS_BACKEND: the library chooses JAX where TensorFlow is missing")

# First, as in every entry point: importing mura_lib fixes the backend and the numeric settings.
import mura_lib  # noqa: E402, F401

# isort: split
import keras  # noqa: E402
import numpy as np  # noqa: E402

from mura_lib import device, evaluation, explain  # noqa: E402
from mura_lib.config import ExperimentConfig  # noqa: E402
from mura_lib.dataset import load_mura  # noqa: E402
from mura_lib.inputs import prepare_for  # noqa: E402
from mura_lib.models import build_model  # noqa: E402
from mura_lib.runs import RunStore  # noqa: E402
from mura_lib.training import compile_model, predict_images, run_experiment  # noqa: E402

# The tiny run of tests/test_training.py, two epochs: enough for an interruption between them.
TINY = dict(image_size=32, depth=2, width=8, epochs=2, batch_size=16, seed=1)


class Interrupt(Exception):
    pass


class InterruptAfter(keras.callbacks.Callback):
    """Stands in for a killed process: stops training once the given epoch was checkpointed."""

    def __init__(self, epoch: int):
        super().__init__()
        self.epoch = epoch

    def on_epoch_end(self, epoch, logs=None):
        if epoch == self.epoch:
            raise Interrupt()


def interrupted_then_resumed(config, dataset, store, cache_dir):
    try:
        run_experiment(
            config, dataset, store=store, cache_dir=cache_dir, verbose="silent", extra_callbacks=[InterruptAfter(0)]
        )
    except Interrupt:
        pass
    else:
        raise AssertionError("the interrupting callback never ran")
    return run_experiment(config, dataset, store=store, cache_dir=cache_dir, verbose="silent")


def fit_from(weights: str | Path, data_root: str | Path, cache_dir: str | Path) -> np.ndarray:
    """Training numerics without randomness, for comparing backends (whose random number
    generators draw other initial weights, augmentations and dropout masks from one seed): the
    tiny CNN without augmentation and dropout, from the initial weights in ``weights``, trained
    for two epochs on the first 64 training images in a fixed order; its test predictions."""
    config = ExperimentConfig(**TINY, augment=False, dropout=0.0)
    prepared = prepare_for(load_mura(data_root), config, cache_dir=cache_dir)
    train = prepared.subset("train").iloc[:64]
    images = prepared.cache_images[train["cache_row"].to_numpy()].astype("float32")[..., None]
    model = build_model(config)
    model.load_weights(weights)
    compile_model(model, config)
    model.fit(images, train["label"].to_numpy().astype("float32"), batch_size=16, epochs=2, shuffle=False, verbose=0)
    return predict_images(model, prepared, ("test",))["probability"].to_numpy()


def main(mode: str, data_root: str, out: str) -> None:
    out = Path(out)
    if mode == "fit":  # the initial weights are in OUT/initial.weights.h5
        np.save(out / "fitted.npy", fit_from(out / "initial.weights.h5", data_root, out / "cache"))
        return
    cache_dir = out / "cache"
    dataset = load_mura(data_root)
    config = ExperimentConfig(**TINY)
    whole = RunStore(out / "whole")
    reference = run_experiment(config, dataset, store=whole, cache_dir=cache_dir, verbose="silent")
    summary = {
        "backend": keras.backend.backend(),
        "stored_backend": reference.environment["backend"],
        "reference": reference.key,
        "tensorflow_loaded": "tensorflow" in sys.modules,
        "accelerators": device.accelerators(),
        "device": device.device_description(),
        "precision": device.resolve_precision("auto"),
    }
    if mode == "all":
        # Exact resumption: the same run, cut after its first epoch and resumed, in a store of its own.
        cut = RunStore(out / "cut")
        resumed = interrupted_then_resumed(config, dataset, cut, cache_dir)
        summary["resumed"] = {"key": resumed.key, "count": resumed.info["resumed"]}

        # The run store: the stored run reloads, verified, and its model predicts what it stored.
        again = RunStore(out / "whole").load(reference.key)
        prepared = prepare_for(dataset, config, cache_dir=cache_dir)
        reloaded = predict_images(again.load_model(), prepared, ("test",))
        reloaded.to_csv(out / "reloaded.csv", index=False)

        # The multi-view model on the image run, and the same cut and resumed (on the resumed image run).
        multiview = config.replace(model="multiview", init_from=reference.key, max_views=3, epochs=2, min_epochs=0)
        viewed = run_experiment(multiview, dataset, store=whole, cache_dir=cache_dir, verbose="silent")
        viewed_resumed = interrupted_then_resumed(multiview, dataset, cut, cache_dir)
        summary["multiview"] = {"key": viewed.key, "resumed": viewed_resumed.info["resumed"]}

        # Grad-CAM of the trained image model.
        examples = explain.confident_examples(reference, dataset, 2, cache_dir=cache_dir)
        np.save(out / "gradcam_maps.npy", examples.maps)
        np.save(out / "gradcam_pixels.npy", examples.pixels)
        summary["gradcam"] = examples.facts()

        # Evaluation: the two runs compared on the same test studies, and one run's metrics table.
        comparison = evaluation.compare_paired(
            reference.study_predictions("test"),
            viewed.study_predictions("test"),
            n_resamples=200,
            name_a="image model",
            name_b="multi-view model",
        )
        summary["comparison"] = comparison.to_dict()
        table = evaluation.metrics_table(reference.study_predictions("test"), n_resamples=200)
        summary["metrics_rows"] = len(table)
        summary["tensorflow_loaded"] = "tensorflow" in sys.modules
    text = json.dumps(summary, default=lambda value: value.item() if hasattr(value, "item") else str(value))
    (out / "summary.json").write_text(text)
    print(text)


if __name__ == "__main__":
    main(*sys.argv[1:])
