"""The ray executor on a local Ray with 2 CPUs: parallel runs equal sequential ones, and a killed
worker's run is retried and resumes from its checkpoint."""

import importlib.util
import io
import json
import os
import re
import shutil
import signal
import threading
import time

import pytest

from mura_lib.config import ExperimentConfig
from mura_lib.dataset import load_mura
from mura_lib.preprocess import build_cache
from mura_lib.runs import RunStore
from mura_lib.synthetic import generate_synthetic_mura
from mura_thesis import cli, profiles
from mura_thesis.executors import train_runs

from .conftest import REPO

# Worker processes and Ray clusters start in every test here: the end-to-end tier (make test-e2e).
pytestmark = pytest.mark.slow

needs_ray = pytest.mark.skipif(
    importlib.util.find_spec("ray") is None, reason="the ray executor needs Ray: pip install -e '.[cluster]'"
)

SMOKE = ExperimentConfig(image_size=32, depth=2, width=8, epochs=2, batch_size=16)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """A small synthetic copy and its 32 px cache, shared by every store of this module."""
    folder = tmp_path_factory.mktemp("ray")
    root = generate_synthetic_mura(folder / "data", scale=0.003, image_size=64, seed=0, workers=1, progress=False)
    build_cache(
        load_mura(root), SMOKE.image_size, policy=SMOKE.policy, cache_dir=folder / "cache", workers=1, progress=False
    )
    return {"data_root": root, "cache_dir": folder / "cache"}


@pytest.fixture(scope="module")
def local_ray():
    import ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def predictions(runs_dir, key) -> bytes:
    return (runs_dir / key / "predictions.csv").read_bytes()


@needs_ray
def test_parallel_runs_equal_sequential_runs(data, local_ray, tmp_path):
    jobs = [(f"smoke seed {seed}", SMOKE.replace(seed=seed)) for seed in (0, 1)]
    sequential = train_runs(
        jobs, runs_dir=tmp_path / "sequential", executor="local", verbose="silent", out=io.StringIO(), **data
    )
    out = io.StringIO()
    parallel = train_runs(jobs, runs_dir=tmp_path / "parallel", executor="ray", verbose="silent", out=out, **data)
    log = out.getvalue()

    assert [r.status for r in sequential] == [r.status for r in parallel] == ["trained", "trained"], log
    assert [r.key for r in sequential] == [r.key for r in parallel]
    for result in parallel:
        assert predictions(tmp_path / "parallel", result.key) == predictions(tmp_path / "sequential", result.key)
        history = (tmp_path / "parallel" / result.key / "history.csv").read_text()
        assert history == (tmp_path / "sequential" / result.key / "history.csv").read_text()
    # Side by side: both runs started before the first one finished.
    verbs = re.findall(r"^\[\d+/2\] (\w+)", log, flags=re.M)
    assert verbs[:2] == ["started", "started"], log
    assert verbs.count("finished") == 2, log

    again = io.StringIO()
    stored = train_runs(jobs, runs_dir=tmp_path / "parallel", executor="ray", out=again, **data)
    assert [r.status for r in stored] == ["stored", "stored"]
    assert "nothing to train" in again.getvalue()


def test_local_workers_train_side_by_side_what_one_process_trains(data, tmp_path):
    """The local executor with two worker processes: the same runs, bit for bit, as one after
    another in this process (the workers compute the same keys), and both started at once."""
    jobs = [(f"smoke seed {seed}", SMOKE.replace(seed=seed)) for seed in (0, 1)]
    sequential = train_runs(jobs, runs_dir=tmp_path / "one", verbose="silent", out=io.StringIO(), **data)
    out = io.StringIO()
    side = train_runs(jobs, runs_dir=tmp_path / "two", workers=2, out=out, **data)
    log = out.getvalue()
    assert [r.status for r in side] == ["trained", "trained"], log
    assert [r.key for r in side] == [r.key for r in sequential]
    for result in side:
        assert predictions(tmp_path / "two", result.key) == predictions(tmp_path / "one", result.key)
    assert "2 side by side" in log
    verbs = re.findall(r"^\[\d+/2\] (\w+)", log, flags=re.M)
    assert verbs[:2] == ["started", "started"] and verbs.count("finished") == 2, log


def test_a_job_may_name_its_own_data(data, tmp_path):
    """A job (name, config, data_root) trains on that dataset: the same configuration on other
    data is another run, trained beside the others."""
    other = generate_synthetic_mura(tmp_path / "other", scale=0.003, image_size=64, seed=5, workers=1, progress=False)
    jobs = [("here", SMOKE), ("there", SMOKE, other)]
    here, there = train_runs(jobs, runs_dir=tmp_path / "runs", workers=2, out=io.StringIO(), **data)
    assert here.status == there.status == "trained" and here.key != there.key
    stored = RunStore(tmp_path / "runs").load(there.key)
    assert stored.info["data_root"] == str(other)


def test_local_workers_report_a_failed_run_and_finish_the_others(data, tmp_path):
    bad = SMOKE.replace(image_size=12, depth=4, seed=3)  # too small for four pooling blocks
    jobs = [("fails", bad), ("smoke seed 0", SMOKE)]
    out = io.StringIO()
    failed, trained = train_runs(jobs, runs_dir=tmp_path, workers=2, out=out, **data)
    assert failed.status == "failed" and "retry it alone with" in out.getvalue()
    assert failed.retry_command.endswith("--run fails")
    assert trained.status == "trained"
    with pytest.raises(ValueError, match="workers must be a positive integer"):
        train_runs(jobs, runs_dir=tmp_path, workers=0, out=out, **data)


class KillAfterFirstCheckpoint(io.StringIO):
    """The driver's progress stream; it also kills the run's worker process (SIGKILL, as the
    kernel's out-of-memory killer or a lost node would) once the first epoch is checkpointed."""

    def __init__(self, runs_dir, name):
        super().__init__()
        self.runs_dir = runs_dir
        self.name = name
        self.killed = None
        self.thread = threading.Thread(target=self._watch, daemon=True)
        self.thread.start()

    def _checkpointed_epochs(self) -> int:
        for state in self.runs_dir.glob("*/checkpoint/state.json"):
            callbacks = state.with_name("callbacks.json")
            try:
                before = state.read_text()
                # The callbacks' counters are saved just after the weights: wait for both.
                if not callbacks.exists() or callbacks.stat().st_mtime_ns < state.stat().st_mtime_ns:
                    continue
                if state.read_text() == before:
                    return json.loads(before)["epochs_completed"]
            except (OSError, ValueError):
                continue
        return 0

    def _watch(self):
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and self.killed is None:
            started = re.search(rf"started\s+{re.escape(self.name)} \(pid (\d+)", self.getvalue())
            if started and self._checkpointed_epochs() >= 1:
                self.killed = int(started.group(1))
                os.kill(self.killed, signal.SIGKILL)
            time.sleep(0.01)


@needs_ray
def test_killed_worker_is_retried_and_resumes(data, local_ray, tmp_path):
    """Beside it, a run that fails with an error: reported once (not retried), the other goes on."""
    config = SMOKE.replace(epochs=5, seed=2)
    [reference] = train_runs(
        [("smoke killed", config)],
        runs_dir=tmp_path / "reference",
        executor="local",
        verbose="silent",
        out=io.StringIO(),
        **data,
    )

    jobs = [("smoke killed", config), ("smoke too small", SMOKE.replace(image_size=4))]
    out = KillAfterFirstCheckpoint(tmp_path / "killed", "smoke killed")
    [result, failed] = train_runs(
        jobs, runs_dir=tmp_path / "killed", executor="ray", verbose="silent", out=out, max_retries=2, **data
    )
    log = out.getvalue()

    assert out.killed is not None, f"the worker was never killed:\n{log}"
    assert result.status == "trained", log
    assert result.attempts == 2, log
    assert re.search(r"retried\s+smoke killed: attempt 2 of 3", log), log
    info = json.loads((tmp_path / "killed" / result.key / "run.json").read_text())
    assert info["resumed"] >= 1, info
    assert result.resumed == info["resumed"]
    assert result.key == reference.key
    assert predictions(tmp_path / "killed", result.key) == predictions(tmp_path / "reference", reference.key)

    assert failed.status == "failed" and failed.attempts == 1, log
    assert "image_size must be in [8, 1024]" in failed.error
    assert failed.retry_command == "mura-thesis train --run 'smoke too small'"
    assert failed.retry_command in log


def test_cli_train_reports_failures_with_the_command_to_retry_alone(data, tmp_path, monkeypatch, capsys):
    """`mura-thesis train` on the jobs of a plan: into the project's runs/, exit code 1 on a failure."""
    jobs = [("smoke ok", SMOKE.replace(epochs=1, seed=3)), ("smoke too small", SMOKE.replace(image_size=4))]
    data_root = data["data_root"]
    monkeypatch.setattr(profiles, "plan_stages", lambda root, profile, data=None: [(str(data_root), jobs)])
    monkeypatch.setattr(cli, "project_root", lambda: tmp_path)
    # train reads the profile's data section, as a build of the project does
    for name in ("_config.yml", "_toc.yml", "references.bib", "chapters", "params"):
        (shutil.copytree if (REPO / name).is_dir() else shutil.copy2)(REPO / name, tmp_path / name)
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "cache").symlink_to(data["cache_dir"])

    assert cli.main(["train", "--profile", "smoke", "--run", "smoke ok"]) == 0
    assert "[1/1] finished  smoke ok" in capsys.readouterr().out
    assert len(list((tmp_path / "runs").glob("*/run.json"))) == 1

    assert cli.main(["train", "--profile", "smoke"]) == 1
    log = capsys.readouterr().out
    assert "[2/2] failed    smoke too small: ValueError: image_size must be in [8, 1024], got 4" in log
    assert "mura-thesis train --profile smoke --run 'smoke too small'" in log
    assert cli.main(["train", "--profile", "smoke", "--run", "no such run"]) == 2
