"""Training many runs: here (one after another, or side by side in worker processes), or side
by side on a Ray cluster.

``train_runs(jobs, data_root=..., runs_dir=..., cache_dir=...)`` trains every ``(name, config)``
job (or ``(name, config, data_root)``, for a job on other data) that the run store does not hold yet.  The run store is where the runs meet: each run is
trained by ``run_experiment``, which writes it into ``runs_dir``, resumes it from its last epoch
checkpoint if an earlier attempt was killed, and returns it at once if it is already complete.
So a retried task (its worker died, its node was lost) continues where the last one stopped,
and a second ``train`` after a crash trains only what is missing.

The ``local`` executor with ``workers`` above 1 trains that many runs at once, each in its own
process with the thread count of this one (``$MURA_THREADS``, 1 by default: see
:mod:`mura_lib.numerics`), so the runs' keys are those this process would compute.  On a 2-core
CPU two single-threaded runs side by side trained 1.18 times as many short runs per hour as one
run on both cores, worker start-up included (``benchmarks/results/cpu_side_by_side.txt``).

The ``ray`` executor submits one task per run, each asking for ``gpus_per_run`` GPUs and
``cpus_per_run`` CPUs; Ray gives each task's process ``CUDA_VISIBLE_DEVICES`` for the GPUs it
was granted, so a machine with 8 GPUs trains 8 runs at once, each on its own GPU.  Ray is an
optional dependency (``pip install -e '.[cluster]'``) imported only by that executor.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import socket
import sys
import time
import traceback
from dataclasses import dataclass
from typing import Sequence, TextIO

EXECUTORS = ("local", "ray")

# Settings that change what the workers compute or how: copied from the driver's environment
# into every Ray worker, so that a run trained on the cluster is the run the driver would train.
# CUDA_VISIBLE_DEVICES is deliberately absent: Ray sets it per task, to the GPUs it granted.
WORKER_ENV_VARS = (
    "KERAS_BACKEND",
    "KERAS_HOME",
    "TF_ENABLE_ONEDNN_OPTS",
    "TF_CPP_MIN_LOG_LEVEL",
    "TF_DETERMINISTIC_OPS",
    "TF_NUM_INTRAOP_THREADS",
    "TF_NUM_INTEROP_THREADS",
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "XLA_FLAGS",
    "XLA_PYTHON_CLIENT_PREALLOCATE",
    "XLA_PYTHON_CLIENT_MEM_FRACTION",
    "PYTHONHASHSEED",
    "MURA_THREADS",
    # How the data are read (--missing, --max-excluded-fraction): mura_lib.dataset, mura_lib.preprocess.
    "MURA_MISSING",
    "MURA_MAX_EXCLUDED_FRACTION",
    "MURA_PATIENT_OVERLAP",
)


@dataclass
class Result:
    """What became of one job: ``stored`` (already complete), ``trained`` or ``failed``."""

    name: str
    key: str
    status: str
    seconds: float = 0.0
    attempts: int = 0
    resumed: int = 0
    error: str | None = None
    retry_command: str | None = None

    @property
    def ok(self) -> bool:
        return self.status != "failed"


def default_workers() -> int:
    """How many runs the local executor trains at once by default: on a machine without a GPU, one
    per ``$MURA_THREADS`` threads (1 by default) of the CPUs this process may use; with a GPU, one
    (runs side by side would share it)."""
    from mura_lib import numerics

    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if os.path.exists("/dev/nvidia0") and visible not in ("", "-1"):
        return 1
    return max(1, numerics.usable_cpus() // numerics.cpu_threads())


def worker_environment(environ=None) -> dict[str, str]:
    """The driver's numeric settings (those of ``WORKER_ENV_VARS`` that are set), for the workers."""
    environ = os.environ if environ is None else environ
    return {name: environ[name] for name in WORKER_ENV_VARS if name in environ}


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    if seconds >= 3600:
        return f"{seconds // 3600}h {seconds % 3600 // 60:02d}m"
    if seconds >= 60:
        return f"{seconds // 60}m {seconds % 60:02d}s"
    return f"{seconds}s"


def train_one(
    name: str, config: dict, data_root: str, runs_dir: str, cache_dir: str, verbose="lines", events=None
) -> dict:
    """Train (or resume, or reuse) one run in this process; what a Ray task runs.

    ``events``, a ``ray.util.queue.Queue``, hears when the attempt starts, so that the driver
    can tell a retried task from a first one.
    """
    if events is not None:
        events.put(("started", name, os.getpid(), socket.gethostname()))
    from mura_lib.config import ExperimentConfig
    from mura_lib.dataset import load_mura
    from mura_lib.runs import RunStore
    from mura_lib.training import run_experiment

    started = time.perf_counter()
    experiment = ExperimentConfig.from_dict(config)
    dataset = load_mura(data_root)
    store = RunStore(runs_dir)
    # run_experiment holds the run's file lock while it trains: a second driver, or a book build
    # on another node, waits for this run and then reuses it.
    run = run_experiment(experiment, dataset, store=store, cache_dir=cache_dir, verbose=verbose, name=name)
    return {
        "key": run.key,
        "resumed": int(run.info.get("resumed", 0)),
        "seconds": time.perf_counter() - started,
    }


class _Progress:
    """The driver's lines: one per run started, finished, failed or retried, with ``[done/total]``
    and, once a run has finished, the time left at the pace so far."""

    def __init__(self, total: int, done: int, to_train: int, out: TextIO):
        self.total = total
        self.done = done
        self.to_train = to_train
        self.trained = 0
        self.out = out
        self.started = None  # the pace counts from the first run's start, not from set-up

    def start_clock(self) -> None:
        if self.started is None:
            self.started = time.perf_counter()

    def line(self, verb: str, text: str) -> None:
        if verb == "started":
            self.start_clock()
        print(f"[{self.done}/{self.total}] {verb:<9} {text}", file=self.out, flush=True)

    def finished_one(self) -> str:
        self.start_clock()
        self.done += 1
        self.trained += 1
        left = self.to_train - self.trained
        if not left:
            return "all done"
        elapsed = time.perf_counter() - self.started
        return f"about {_duration(elapsed / self.trained * left)} left for {left} more"


class NotWritableError(RuntimeError):
    """A folder training must write to (the run store, the image caches) cannot be written."""


def check_writable(folder: str | os.PathLike, what: str) -> None:
    """Fail at once, naming ``folder``, when this process cannot create files in it: every run
    would fail alike, and retrying one alone cannot help."""
    import tempfile

    try:
        os.makedirs(folder, exist_ok=True)
        tempfile.TemporaryFile(dir=folder).close()
    except OSError as error:
        raise NotWritableError(
            f"Cannot write to {what} {os.path.abspath(folder)} ({error.strerror or error}); nothing was trained. "
            "Make it writable by this user (or point it at writable storage) and run the command again."
        ) from None


def _error_summary(error: BaseException) -> str:
    cause = getattr(error, "cause", None)  # a RayTaskError wraps the task's own exception
    shown = cause if isinstance(cause, BaseException) else error
    text = str(shown).strip().splitlines()
    return f"{type(shown).__name__}: {text[-1] if text else ''}".rstrip(": ")


def train_runs(
    jobs: Sequence[tuple[str, object]],
    *,
    data_root: str | os.PathLike,
    runs_dir: str | os.PathLike,
    cache_dir: str | os.PathLike,
    executor: str = "local",
    address: str | None = None,
    gpus_per_run: float = 0,
    cpus_per_run: float = 1,
    max_retries: int = 2,
    workers: int = 1,
    out: TextIO | None = None,
    verbose="lines",
    command: Sequence[str] = ("mura-thesis", "train"),
) -> list[Result]:
    """Train every job ``(name, ExperimentConfig)`` not yet complete in ``runs_dir``.

    Returns one ``Result`` per job, in the order given.  A failed run is reported (its error and
    the command that retries it alone: ``command`` plus ``--run NAME``) and the others go on.
    A job ``(name, config, data_root)`` trains on that dataset instead of ``data_root`` (e.g. a
    pretraining corpus beside the thesis' data, so that its run need not wait for a stage of its
    own).  Jobs whose configurations are the same run (one key) are trained once.  Progress goes to
    ``out`` (standard output by default).  ``workers``: runs trained at once by the local
    executor, each in a process of its own (1: one after another in this process).
    """
    if executor not in EXECUTORS:
        raise ValueError(f"executor must be one of {EXECUTORS}, got {executor!r}")
    if not isinstance(workers, int) or workers < 1:
        raise ValueError(f"workers must be a positive integer, got {workers!r}")
    from mura_lib.dataset import load_mura
    from mura_lib.runs import RunStore
    from mura_lib.training import run_key

    out = sys.stdout if out is None else out
    runs_dir, cache_dir = str(runs_dir), str(cache_dir)
    roots = [str(job[2]) if len(job) > 2 else str(data_root) for job in jobs]
    jobs = [(job[0], job[1]) for job in jobs]
    datasets = {root: load_mura(root) for root in dict.fromkeys(roots)}
    store = RunStore(runs_dir)
    hashes = {root: dataset.manifest_hash() for root, dataset in datasets.items()}
    keys = [run_key(config, hashes[root]) for (_, config), root in zip(jobs, roots)]
    # One task per key: the first job's name labels it; jobs sharing the key share its result.
    # The key is computed here as the workers will compute it, except with precision "auto" on
    # a driver without the workers' GPUs: then a stored run is not recognised here, and its task
    # finds it in the store and returns at once.
    todo: dict[str, tuple[str, object]] = {}
    results: dict[str, Result] = {}
    root_of: dict[str, str] = {}
    for (name, config), key, root in zip(jobs, keys, roots):
        if store.is_complete(key):
            results[key] = Result(name, key, "stored")
        else:
            todo.setdefault(key, (name, config))
            root_of.setdefault(key, root)
    if todo:
        check_writable(runs_dir, "the run store")
        check_writable(cache_dir, "the image cache folder")
    total = len(results) + len(todo)
    progress = _Progress(total, len(results), len(todo), out)
    if not todo:
        print(f"All {total} runs are stored in {runs_dir}; nothing to train.", file=out, flush=True)
    else:
        side = f", {min(workers, len(todo))} side by side" if executor == "local" and workers > 1 else ""
        print(
            f"{len(todo)} of {total} runs to train into {runs_dir} ({executor} executor{side}).", file=out, flush=True
        )
        retry = {key: shlex.join([*command, "--run", name]) for key, (name, _) in todo.items()}
        work = _Work(todo, results, progress, retry, datasets, root_of, store, runs_dir, cache_dir, verbose)
        if executor == "local" and workers > 1 and len(todo) > 1:
            _train_processes(work, workers)
        elif executor == "local":
            _train_local(work)
        else:
            _train_ray(work, address=address, gpus=gpus_per_run, cpus=cpus_per_run, max_retries=max_retries)
    ordered = []
    for (name, _), key in zip(jobs, keys):
        result = results[key]
        ordered.append(result if result.name == name else Result(**{**result.__dict__, "name": name}))
    failed = [r for r in ordered if not r.ok]
    if failed:
        print(f"{len(failed)} of {len(ordered)} runs failed; retry each alone with:", file=out)
        for result in failed:
            print(f"  {result.retry_command}", file=out)
        out.flush()
    return ordered


@dataclass
class _Work:
    """The runs to train (``todo``: ``{key: (name, config)}``), where their results go, and what
    every executor needs to train them."""

    todo: dict
    results: dict
    progress: _Progress
    retry: dict
    datasets: dict  # {data root: MuraDataset}
    roots: dict  # {key: the data root of that run}
    store: object
    runs_dir: str
    cache_dir: str
    verbose: str


def _train_local(work: _Work) -> None:
    todo, results, progress, retry = work.todo, work.results, work.progress, work.retry
    from mura_lib.training import run_experiment

    for key, (name, config) in todo.items():
        progress.line("started", name)
        started = time.perf_counter()
        try:
            run = run_experiment(
                config,
                work.datasets[work.roots[key]],
                store=work.store,
                cache_dir=work.cache_dir,
                verbose=work.verbose,
                name=name,
            )
        except Exception as error:  # reported, and the other runs go on; Ctrl-C still stops
            progress.done += 1
            summary = _error_summary(error)
            results[key] = Result(
                name, key, "failed", time.perf_counter() - started, 1, error=summary, retry_command=retry[key]
            )
            progress.line("failed", f"{name}: {summary}")
            print(_indent("".join(traceback.format_exception(error))), file=progress.out)
            print(f"    retry it alone with: {retry[key]}", file=progress.out, flush=True)
            continue
        seconds = time.perf_counter() - started
        resumed = int(run.info.get("resumed", 0))
        results[key] = Result(name, run.key, "trained", seconds, 1, resumed)
        pace = progress.finished_one()
        progress.line("finished", f"{name} in {_duration(seconds)}{_resumed_note(resumed)}; {pace}")


def _build_caches(work: _Work) -> None:
    """Every image cache the runs need, built once here with all local cores, before the workers
    start: otherwise several workers would build the same cache at once."""
    from mura_lib.preprocess import build_cache

    needed = sorted({(work.roots[key], c.image_size, c.policy) for key, (_, c) in work.todo.items()})
    for root, size, policy in needed:
        print(
            f"Preparing the {size}px image cache ({policy}) in {work.cache_dir} ...", file=work.progress.out, flush=True
        )
        try:
            build_cache(work.datasets[root], size, policy=policy, cache_dir=work.cache_dir, progress=False)
        except Exception as error:  # the runs that need it fail with this error, and only they
            print(f"    could not: {_error_summary(error)}", file=work.progress.out, flush=True)


def _train_processes(work: _Work, workers: int) -> None:
    """The local executor with ``workers`` processes: as many runs at once, started in the order
    given as places free up.  A run that fails is reported and the others go on; a worker that
    dies (killed, out of memory) fails its run, and the run resumes from its checkpoint when
    trained again."""
    import multiprocessing
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
    from concurrent.futures.process import BrokenProcessPool

    todo, results, progress, retry = work.todo, work.results, work.progress, work.retry
    _build_caches(work)

    # The longest runs first (images times pixels times epochs), so that the last places do not
    # wait on one.
    def cost(item):
        key, (_, config) = item
        return len(work.datasets[work.roots[key]].images) * config.image_size**2 * config.epochs

    queue = sorted(todo.items(), key=cost, reverse=True)
    running = {}
    # "spawn": a fresh interpreter per worker, whatever this process has imported or started.
    pool = ProcessPoolExecutor(max_workers=min(workers, len(queue)), mp_context=multiprocessing.get_context("spawn"))

    def fail(key, name, seconds, summary):
        progress.done += 1
        results[key] = Result(name, key, "failed", seconds, 1, error=summary, retry_command=retry[key])
        progress.line("failed", f"{name}: {summary}")
        print(f"    retry it alone with: {retry[key]}", file=progress.out, flush=True)

    try:
        while queue or running:
            while queue and len(running) < workers:
                key, (name, config) = queue.pop(0)
                try:
                    future = pool.submit(
                        train_one, name, config.to_dict(), work.roots[key], work.runs_dir, work.cache_dir, "silent"
                    )
                except BrokenProcessPool:
                    fail(key, name, 0.0, "its worker process could not start (the pool broke earlier)")
                    continue
                running[future] = (key, name, time.perf_counter())
                progress.line("started", name)
            if not running:
                break
            done, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in done:
                key, name, started = running.pop(future)
                seconds = time.perf_counter() - started
                try:
                    info = future.result()
                except BrokenProcessPool:
                    fail(key, name, seconds, "its worker process died (killed, or out of memory)")
                    continue
                except Exception as error:  # reported, and the other runs go on
                    fail(key, name, seconds, _error_summary(error))
                    continue
                results[key] = Result(name, info["key"], "trained", info["seconds"], 1, info["resumed"])
                pace = progress.finished_one()
                progress.line(
                    "finished", f"{name} in {_duration(info['seconds'])}{_resumed_note(info['resumed'])}; {pace}"
                )
    finally:
        # Ctrl-C: the workers (same process group) get it too; their runs resume from checkpoints.
        pool.shutdown(wait=True, cancel_futures=True)


def _resumed_note(resumed: int) -> str:
    return f" (resumed {resumed}x from its checkpoint)" if resumed else ""


def _indent(text: str) -> str:
    return "\n".join("    " + line for line in text.rstrip().splitlines())


def _import_ray():
    try:
        import ray
    except ImportError:
        raise ImportError(
            "The ray executor needs Ray, which is not installed: pip install -e '.[cluster]' "
            "(or pip install 'ray>=2.9'), or train with --executor local."
        ) from None
    return ray


def _train_ray(work: _Work, *, address, gpus: float, cpus: float, max_retries: int) -> None:
    todo, results, progress, retry = work.todo, work.results, work.progress, work.retry
    runs_dir, cache_dir, verbose = work.runs_dir, work.cache_dir, work.verbose
    gpus_per_run, cpus_per_run = gpus, cpus
    ray = _import_ray()
    from ray.util.queue import Empty, Queue

    _build_caches(work)

    started_ray = not ray.is_initialized()
    if started_ray:
        # Worker output (each run's epoch lines) stays in Ray's logs on each node
        # (/tmp/ray/session_latest/logs); the driver prints one line per event.
        ray.init(address=address, log_to_driver=False)
    try:
        resources = ray.cluster_resources()
        for resource, need in (("GPU", gpus_per_run), ("CPU", cpus_per_run)):
            if need and resources.get(resource, 0) < need:
                raise ValueError(
                    f"Each run asks for {need} {resource}(s) but the Ray cluster at {address or 'this machine'} has "
                    f"{resources.get(resource, 0):g}: lower --{resource.lower()}s-per-run or add nodes that have them."
                )
        events = Queue(actor_options={"num_cpus": 0})
        # On GPUs, a fresh process per run (max_calls=1, Ray's own default for GPU tasks), so that
        # each run's GPU memory is freed when it ends; CPU workers are reused, which saves
        # importing TensorFlow once per run.
        remote = ray.remote(max_calls=1 if gpus_per_run else 0)(train_one)
        environment = worker_environment()
        pending = {}
        for key, (name, config) in todo.items():
            ref = remote.options(
                num_cpus=cpus_per_run,
                num_gpus=gpus_per_run,
                max_retries=max_retries,
                runtime_env={"env_vars": environment},
                name=f"train {name}",
            ).remote(name, config.to_dict(), work.roots[key], runs_dir, cache_dir, verbose, events)
            pending[ref] = key
        attempts = {key: 0 for key in todo}
        key_of_name = {name: key for key, (name, _) in todo.items()}
        submitted = time.perf_counter()
        started_at: dict[str, float] = {}

        def drain():
            while True:
                try:
                    _, name, pid, host = events.get_nowait()
                except Empty:
                    return
                key = key_of_name[name]
                attempts[key] += 1
                started_at[key] = time.perf_counter()
                where = f"pid {pid} on {host}"
                if attempts[key] == 1:
                    progress.line("started", f"{name} ({where})")
                else:
                    progress.line(
                        "retried",
                        f"{name}: attempt {attempts[key]} of {max_retries + 1} ({where}), "
                        f"after its worker was lost; it resumes from its last checkpoint",
                    )

        while pending:
            done, _ = ray.wait(list(pending), num_returns=1, timeout=1.0)
            drain()
            for ref in done:
                key = pending.pop(ref)
                name = todo[key][0]
                seconds = time.perf_counter() - started_at.get(key, submitted)
                try:
                    info = ray.get(ref)
                except Exception as error:
                    progress.done += 1
                    summary = _error_summary(error)
                    results[key] = Result(
                        name, key, "failed", seconds, attempts[key], error=summary, retry_command=retry[key]
                    )
                    progress.line("failed", f"{name} after {attempts[key]} attempt(s): {summary}")
                    print(_indent(str(error)), file=progress.out)
                    print(f"    retry it alone with: {retry[key]}", file=progress.out, flush=True)
                    continue
                results[key] = Result(name, info["key"], "trained", info["seconds"], attempts[key], info["resumed"])
                pace = progress.finished_one()
                progress.line(
                    "finished", f"{name} in {_duration(info['seconds'])}{_resumed_note(info['resumed'])}; {pace}"
                )
        with contextlib.suppress(Exception):
            ray.kill(events.actor)
    finally:
        if started_ray:
            ray.shutdown()
