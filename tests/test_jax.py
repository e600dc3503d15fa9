"""The JAX tier (`make test-jax`): the library on Keras' JAX backend (JAX's CPU wheel), in a worker
where TensorFlow cannot be imported and no backend is set, as where only the `gpu` extra is
installed: the library must choose JAX itself.

The worker (``tests/jax_worker.py``) trains the tiny run of tests/test_training.py, cuts the same
run after its first epoch and resumes it, reloads it from the run store, trains the multi-view
model on it (whole and resumed), computes its Grad-CAM maps and compares the two runs; the tests
here check what it left, and compare with TensorFlow (this process's backend):

- within one backend, bit for bit: a resumed run against the uninterrupted one, and the same run
  trained by two processes;
- between backends, to a tolerance: the two backends draw other random numbers from one seed
  (initial weights, augmentation, dropout), so the same run trains to other weights on each and
  only its metrics are comparable.  What must agree is the arithmetic: the same weights predict
  and explain the same on both (a JAX run read by TensorFlow), and the same initial weights
  train to the same predictions without randomness (:func:`jax_worker.fit_from`).

Skipped where JAX is not installed, unless ``MURA_REQUIRE_JAX=1`` (as `make test-jax` and CI set
it), which turns the skip into a failure (tests/conftest.py).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from mura_lib.runs import RunStore

from .conftest import REPO

pytestmark = pytest.mark.jax

WORKER = REPO / "tests" / "jax_worker.py"

# Measured on this project's 2-core CPU (JAX 0.10.2, TensorFlow 2.21, Keras 3.15): between the
# backends, the same weights gave probabilities at most 1.2e-7 apart and Grad-CAM maps (scaled to
# [0, 1]) at most 1.2e-6 apart, and the same initial weights trained for 8 steps gave
# probabilities at most 6e-8 apart: float32 rounding of sums taken in another order.  Each bound
# is about 100 times what was measured, for other CPUs and versions, and still far below what a
# wrong gradient, layer or weight order gives (differences of 1e-2 and more).  Runs trained on
# each backend from one seed differ by far more (0.17 in a probability, 0.59 against 0.76 in the
# tiny run's test AUROC): other random draws, not other arithmetic.
SAME_WEIGHTS_ATOL = 1e-5
GRADCAM_ATOL = 1e-4
TRAINING_ATOL = 1e-5


def run_worker(mode: str, data_root, out) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    # No $KERAS_BACKEND, and a Keras configuration of its own: with TensorFlow unimportable, the
    # library must choose JAX by itself, as where only the `gpu` extra is installed.
    environment = {name: value for name, value in os.environ.items() if name != "KERAS_BACKEND"}
    environment |= {"JAX_PLATFORMS": "cpu", "KERAS_HOME": str(out / "keras-home")}
    result = subprocess.run(
        [sys.executable, str(WORKER), mode, str(data_root), str(out)],
        capture_output=True,
        text=True,
        env=environment,
        cwd=REPO,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    summary = out / "summary.json"
    return json.loads(summary.read_text()) if summary.exists() else {}


@pytest.fixture(scope="module")
def on_jax(synthetic_root, tmp_path_factory):
    """The worker's folder and summary after every part ran on JAX."""
    out = tmp_path_factory.mktemp("jax")
    return out, run_worker("all", synthetic_root, out)


def test_everything_ran_on_jax_without_tensorflow(on_jax):
    _, summary = on_jax
    assert summary["backend"] == "jax" and summary["stored_backend"] == "jax"
    assert summary["tensorflow_loaded"] is False
    # What mura_lib.device makes of JAX on a CPU: no accelerator, so float32 and the CPU's name.
    assert summary["accelerators"] == [] and summary["precision"] == "float32"
    assert summary["device"].startswith("CPU: ")


def test_resumed_run_on_jax_equals_the_uninterrupted_one_bit_for_bit(on_jax):
    out, summary = on_jax
    assert summary["resumed"] == {"key": summary["reference"], "count": 1}
    whole = RunStore(out / "whole").load(summary["reference"])
    resumed = RunStore(out / "cut").load(summary["reference"])
    pd.testing.assert_frame_equal(resumed.history, whole.history)
    np.testing.assert_array_equal(resumed.predictions["probability"], whole.predictions["probability"])


def test_same_run_twice_on_jax_is_bit_identical(on_jax, synthetic_root, tmp_path):
    out, summary = on_jax
    again = run_worker("again", synthetic_root, tmp_path)
    assert again["reference"] == summary["reference"]
    first = RunStore(out / "whole").load(summary["reference"])
    second = RunStore(tmp_path / "whole").load(again["reference"])
    pd.testing.assert_frame_equal(second.history, first.history)
    np.testing.assert_array_equal(second.predictions["probability"], first.predictions["probability"])


def test_stored_jax_run_reloads_with_the_same_predictions(on_jax):
    out, summary = on_jax
    run = RunStore(out / "whole").load(summary["reference"])
    assert run.info["status"] == "complete" and run.environment["backend"] == "jax"
    reloaded = pd.read_csv(out / "reloaded.csv")
    stored = run.predictions.query("subset == 'test'")
    assert reloaded["relpath"].tolist() == stored["relpath"].tolist()
    np.testing.assert_array_equal(reloaded["probability"].to_numpy(), stored["probability"].to_numpy())


def test_multiview_run_on_jax_resumes_exactly(on_jax):
    out, summary = on_jax
    whole = RunStore(out / "whole").load(summary["multiview"]["key"])
    resumed = RunStore(out / "cut").load(summary["multiview"]["key"])
    assert summary["multiview"]["resumed"] == 1 and whole.training["init_from"]["key"] == summary["reference"]
    spread = whole.predictions.groupby("study_path")["probability"].agg(lambda p: p.max() - p.min())
    assert (spread == 0).all()  # one probability per study
    pd.testing.assert_frame_equal(resumed.history, whole.history)
    np.testing.assert_array_equal(resumed.predictions["probability"], whole.predictions["probability"])


def test_evaluation_of_jax_runs(on_jax):
    _, summary = on_jax
    comparison = summary["comparison"]
    assert comparison["studies"] > 0 and comparison["auroc_low"] <= comparison["auroc_diff"] <= comparison["auroc_high"]
    assert summary["metrics_rows"] >= 2


def test_jax_run_predicts_the_same_on_tensorflow(on_jax):
    """A run trained on JAX, read from the store by TensorFlow: the same weights, the same predictions."""
    import keras

    from mura_lib.dataset import load_mura
    from mura_lib.inputs import prepare_for
    from mura_lib.training import predict_images

    assert keras.backend.backend() == "tensorflow"
    out, summary = on_jax
    run = RunStore(out / "whole").load(summary["reference"])
    prepared = prepare_for(load_mura(run.info["data_root"]), run.config, cache_dir=out / "cache")
    here = predict_images(run.load_model(), prepared, ("test",))["probability"].to_numpy()
    there = run.predictions.query("subset == 'test'")["probability"].to_numpy()
    np.testing.assert_allclose(here, there, rtol=0, atol=SAME_WEIGHTS_ATOL)


def test_grad_cam_on_jax_matches_tensorflow(on_jax):
    from mura_lib.explain import grad_cam

    out, summary = on_jax
    assert summary["gradcam"] == {"correct": 2, "failed": 2, "layer": "relu2", "grid": 16}
    maps = np.load(out / "gradcam_maps.npy")
    assert maps.shape == (4, 32, 32) and maps.min() >= 0 and maps.max() <= 1 and maps.max() > 0
    model = RunStore(out / "whole").load(summary["reference"]).load_model()
    here = grad_cam(model, np.load(out / "gradcam_pixels.npy"), layer_name="relu2")
    np.testing.assert_allclose(maps, here, rtol=0, atol=GRADCAM_ATOL)


def test_training_arithmetic_agrees_between_backends(synthetic_root, tmp_path):
    """The same initial weights, trained without randomness on each backend: the same predictions."""
    from mura_lib.config import ExperimentConfig
    from mura_lib.models import build_model

    from .jax_worker import TINY, fit_from

    build_model(ExperimentConfig(**TINY, augment=False, dropout=0.0)).save_weights(tmp_path / "initial.weights.h5")
    run_worker("fit", synthetic_root, tmp_path)
    on_tensorflow = fit_from(tmp_path / "initial.weights.h5", synthetic_root, tmp_path / "cache")
    on_jax = np.load(tmp_path / "fitted.npy")
    assert np.ptp(on_tensorflow) > 1e-3  # it learned something: the comparison is not of constants
    np.testing.assert_allclose(on_jax, on_tensorflow, rtol=0, atol=TRAINING_ATOL)
