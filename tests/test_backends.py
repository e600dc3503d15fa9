"""The library uses only the Keras API: the training smoke test also passes on JAX.

Runs in a subprocess because Keras chooses its backend once per process. Skipped where JAX is
not installed (`pip install jax` adds it).
"""

import importlib.util
import os
import subprocess
import sys

import pytest

SCRIPT = """
import json, sys
from mura_lib.dataset import load_mura
from mura_lib.runs import RunStore
from mura_lib.config import ExperimentConfig
from mura_lib.training import run_experiment
import keras
run = run_experiment(ExperimentConfig(image_size=32, depth=2, width=8, epochs=2, batch_size=16),
                     load_mura(sys.argv[1]), store=RunStore(sys.argv[2]), cache_dir=sys.argv[3], verbose="silent")
print(json.dumps({"backend": keras.backend.backend(), "epochs": len(run.history), "auroc": run.metrics["auroc"]}))
"""


@pytest.mark.skipif(importlib.util.find_spec("jax") is None, reason="JAX is not installed")
def test_training_smoke_on_jax(synthetic_root, tmp_path):
    environment = os.environ | {"KERAS_BACKEND": "jax", "JAX_PLATFORMS": "cpu"}
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(synthetic_root), str(tmp_path / "runs"), str(tmp_path / "cache")],
        capture_output=True,
        text=True,
        env=environment,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    import json

    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["backend"] == "jax" and summary["epochs"] == 2
    assert 0.0 <= summary["auroc"] <= 1.0
