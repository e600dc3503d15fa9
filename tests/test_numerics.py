"""One run key, one result: a chapter's kernel, a plain script and the CLI train with the same
numeric settings, and a setting that changes the numbers changes the key."""

import json
import os
import subprocess
import sys

import nbformat
import pandas as pd
import pytest
from nbclient import NotebookClient

TRAIN = """
from mura_lib.dataset import load_mura
from mura_lib.runs import RunStore
from mura_lib.config import ExperimentConfig
from mura_lib.training import run_experiment
run = run_experiment(ExperimentConfig(image_size=32, depth=2, width=8, epochs=2, batch_size=16, seed=3),
                     load_mura({data!r}), store=RunStore({store!r}), cache_dir={cache!r}, verbose="silent")
print(run.key)
"""

KEY = """
import json, sys
from mura_lib.dataset import load_mura
from mura_lib.config import ExperimentConfig
from mura_lib.training import run_key
print(run_key(ExperimentConfig(), load_mura(sys.argv[1]).manifest_hash()))
"""


def _clean_environment(**extra):
    """This process's environment without the numeric settings, as a new user's shell has it."""
    environment = {k: v for k, v in os.environ.items() if k not in ("TF_ENABLE_ONEDNN_OPTS", "MURA_THREADS")}
    return environment | {"TF_CPP_MIN_LOG_LEVEL": "3"} | extra


def test_notebook_and_script_train_identical_runs(synthetic_root, tmp_path):
    cache = str(tmp_path / "cache")
    script = subprocess.run(
        [sys.executable, "-c", TRAIN.format(data=str(synthetic_root), store=str(tmp_path / "script"), cache=cache)],
        capture_output=True,
        text=True,
        env=_clean_environment(),
        timeout=600,
    )
    assert script.returncode == 0, script.stderr[-3000:]
    script_key = script.stdout.split()[-1]

    # A chapter's set-up cell, then the same training, in a Jupyter kernel.
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [
        nbformat.v4.new_code_cell("import mura_thesis as book\nbook.setup_notebook()"),
        nbformat.v4.new_code_cell(
            TRAIN.format(data=str(synthetic_root), store=str(tmp_path / "notebook"), cache=cache)
        ),
    ]
    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update(_clean_environment())
    try:
        NotebookClient(notebook, timeout=600, kernel_name="python3").execute()
    finally:
        os.environ.clear()
        os.environ.update(saved)
    notebook_key = notebook.cells[1].outputs[-1]["text"].split()[-1]

    assert notebook_key == script_key
    from_script = pd.read_csv(tmp_path / "script" / script_key / "predictions.csv")
    from_notebook = pd.read_csv(tmp_path / "notebook" / notebook_key / "predictions.csv")
    pd.testing.assert_frame_equal(from_script, from_notebook, check_exact=True)
    environment = json.loads((tmp_path / "script" / script_key / "environment.json").read_text())
    assert environment["numerics"]["onednn"] == "1"


def test_settings_that_change_numbers_change_the_key(synthetic_root):
    def key(**extra):
        result = subprocess.run(
            [sys.executable, "-c", KEY, str(synthetic_root)],
            capture_output=True,
            text=True,
            env=_clean_environment(**extra),
            timeout=300,
        )
        assert result.returncode == 0, result.stderr[-3000:]
        return result.stdout.split()[-1]

    default = key()
    assert key(TF_ENABLE_ONEDNN_OPTS="1") == default  # the library's default, spelt out
    assert key(TF_ENABLE_ONEDNN_OPTS="0") != default
    assert key(MURA_THREADS="1") != key(MURA_THREADS="2")


STARTED_EARLY = """
import mura_lib  # sets the numeric defaults, as every entry point does
import tensorflow as tf
from mura_lib import numerics
x = tf.random.normal((64, 64))
tf.linalg.matmul(x, x)  # TensorFlow's runtime starts here, before any training run
threads = numerics.in_effect("tensorflow")["threads"]
print(threads, open("/proc/self/status").read().split("Threads:")[1].split()[0])
"""


def test_thread_setting_holds_when_tensorflow_started_before_the_first_run():
    """A chapter may start TensorFlow (building a model to show it) before its first training run,
    when the thread pool can no longer be resized: $MURA_THREADS must hold all the same, and the
    key must record the pool's real size."""
    pools = {}
    for wanted in (1, 6):
        result = subprocess.run([sys.executable, "-c", STARTED_EARLY], capture_output=True, text=True,
                                env=_clean_environment(MURA_THREADS=str(wanted)), check=True)  # fmt: skip
        recorded, os_threads = map(int, result.stdout.split()[-2:])
        assert recorded == wanted
        pools[wanted] = os_threads
    # TensorFlow's intra-op pool is made of OS threads: five more for six than for one.
    assert pools[6] - pools[1] >= 5, pools


def test_keras_runs_on_jax_where_tensorflow_is_not_installed(monkeypatch, tmp_path):
    """The `gpu` extra installs Keras with JAX only: with no backend chosen, Keras would fall back
    to TensorFlow and fail to import, so the library chooses JAX; a choice made elsewhere stands."""
    import importlib.util

    from mura_lib import numerics

    installed = {"jax"}
    real = importlib.util.find_spec

    def find_spec(name, *args):
        if name in ("tensorflow", "jax"):
            return real("json") if name in installed else None  # a stand-in spec: "installed"
        return real(name, *args)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    monkeypatch.delitem(sys.modules, "keras", raising=False)  # as before Keras is imported
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    monkeypatch.delenv("KERAS_BACKEND", raising=False)
    assert numerics.choose_backend() == "jax" and os.environ["KERAS_BACKEND"] == "jax"

    monkeypatch.setenv("KERAS_BACKEND", "torch")  # chosen by the user
    assert numerics.choose_backend() is None and os.environ["KERAS_BACKEND"] == "torch"
    monkeypatch.delenv("KERAS_BACKEND")
    (tmp_path / "keras.json").write_text(json.dumps({"backend": "torch"}))  # chosen in Keras' configuration
    assert numerics.choose_backend() is None and "KERAS_BACKEND" not in os.environ
    (tmp_path / "keras.json").write_text(json.dumps({"backend": "tensorflow"}))  # Keras' default, written by Keras
    assert numerics.choose_backend() == "jax"
    monkeypatch.delenv("KERAS_BACKEND")
    installed.add("tensorflow")  # TensorFlow installed: Keras' default stands
    assert numerics.choose_backend() is None and "KERAS_BACKEND" not in os.environ


@pytest.mark.jax  # the JAX tier (make test-jax); skipped where JAX is absent, see tests/conftest.py
def test_a_jax_run_on_a_cpu_is_keyed_by_the_cores_xla_uses(monkeypatch):
    """XLA uses every usable core on a CPU, and its sums depend on their number: the key says how
    many, not $MURA_THREADS, which JAX does not read."""
    from mura_lib import numerics

    monkeypatch.setenv("MURA_THREADS", "1")
    monkeypatch.setattr(numerics, "_jax_on_cpu", lambda: True)
    for cores in (1, 2):
        monkeypatch.setattr(numerics, "usable_cpus", lambda cores=cores: cores)
        assert numerics.in_effect("jax") == {"threads": cores}
    monkeypatch.setattr(numerics, "_jax_on_cpu", lambda: False)  # on a GPU
    assert numerics.in_effect("jax") == {"threads": 1}
