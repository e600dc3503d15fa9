"""The run store: one folder per experiment, keyed by a hash of everything that determines it.

A run folder holds ``config.json``, ``environment.json``, ``history.csv`` (one row per epoch),
``predictions.csv`` (image-level probabilities on the validation and test subsets),
``metrics.json`` (study-level test metrics), ``model.weights.h5`` and, while training,
``checkpoint/``.  A run is complete when ``run.json`` says so; every file is written to a
temporary name and renamed, so a crash never leaves a half-written file behind.  One process
at a time trains a run (:meth:`RunStore.lock`, a lock file beside the run folder), and a stored
run is verified (:meth:`RunStore.verify`) before it is reused.

``run.json`` records, when the run is finished, the size and checksum (BLAKE2b) of every other
file (``checksums``).  Verification compares the sizes of all of them and the checksums of all
but the weights, which are small; the weights file (up to a few hundred MB) is checked for size
and for an HDF5 file that opens when the run is verified, and against its checksum when
:meth:`Run.load_model` reads it, which reads every byte anyway.  Runs stored before checksums
were recorded have no ``checksums``: they are verified as before, by their structure (the
history's rows and epochs against ``run.json``, the weights file opening), and are not upgraded,
since a checksum written now would vouch for whatever damage they have.

A run of the study-type task (a source task for pretraining) stores each image's study-type
probabilities (``p_XR_ELBOW`` ... ``p_XR_WRIST``), its ``predicted_type`` and that type's
``probability``, and as metrics the test accuracy and macro one-vs-rest AUROC.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import sys
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from functools import cached_property
from pathlib import Path

import pandas as pd
from filelock import FileLock, Timeout

from .files import FILE_MODE, atomic_write_text, file_digest  # noqa: F401 (atomic_write_text: re-exported)

RUNS_ENV_VAR = "MURA_RUNS"
RUN_FILES = (
    "run.json",
    "config.json",
    "environment.json",
    "history.csv",
    "predictions.csv",
    "metrics.json",
    "model.weights.h5",
)
CHECKED_FILES = RUN_FILES[1:]  # every file but run.json, which holds their checksums
WEIGHTS = "model.weights.h5"
PREDICTION_COLUMNS = ("relpath", "study_path", "study_type", "patient", "view", "label", "subset", "probability")


class BrokenRunError(RuntimeError):
    """A run marked complete whose files are missing or damaged; the message says how to retrain it."""


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


@dataclass
class Run:
    """A finished run, read back from its folder."""

    directory: Path

    @property
    def key(self) -> str:
        return self.directory.name

    @cached_property
    def info(self) -> dict:
        return json.loads((self.directory / "run.json").read_text())

    @property
    def training(self) -> dict:
        """Epochs run, the epoch cap, whether training stopped on a plateau, and the best epoch."""
        return self.info.get("training", {})

    @property
    def hit_cap(self) -> bool:
        """True if training ran to its epoch cap without the plateau rules stopping it (always,
        for a fixed budget)."""
        return not self.training.get("stopped_early", False)

    @property
    def fixed_budget(self) -> bool:
        """True if the run trained a fixed budget of epochs (schedule "cosine"): no plateau rules."""
        return self.training.get("schedule") == "cosine"

    @property
    def kept(self) -> str:
        """The epoch whose weights the run kept ("12"), or the epochs whose weights it averaged
        ("18-20")."""
        epochs = self.training.get("kept_epochs")
        if epochs:
            return str(epochs[0]) if len(epochs) == 1 else f"{epochs[0]}\u2013{epochs[-1]}"
        return str(self.training["best_epoch"])

    @property
    def name(self) -> str:
        return self.info.get("name", self.key)

    @cached_property
    def config(self):
        from .config import ExperimentConfig

        return ExperimentConfig.from_dict(json.loads((self.directory / "config.json").read_text()))

    @cached_property
    def environment(self) -> dict:
        return json.loads((self.directory / "environment.json").read_text())

    @cached_property
    def history(self) -> pd.DataFrame:
        """One row per epoch; an epoch logged twice (before and after a resume) keeps its last row."""
        history = pd.read_csv(self.directory / "history.csv")
        return history.drop_duplicates("epoch", keep="last").sort_values("epoch").reset_index(drop=True)

    @cached_property
    def predictions(self) -> pd.DataFrame:
        return pd.read_csv(self.directory / "predictions.csv")

    @cached_property
    def metrics(self) -> dict:
        return json.loads((self.directory / "metrics.json").read_text())

    @property
    def task(self) -> str:
        """``"abnormality"`` or ``"study_type"`` (a source task for pretraining)."""
        return self.config.task

    def constant_note(self, subset: str = "test", tolerance: float = 1e-6) -> str | None:
        """Why the run's predictions on ``subset`` are constant (a collapsed model), or None."""
        from .scoring import constant_predictions

        return constant_predictions(self.predictions.loc[self.predictions["subset"] == subset], tolerance=tolerance)

    @property
    def constant_predictions(self) -> bool:
        """True if the test-set predictions are constant: their range is below 1e-6, or every
        image is predicted the same class (at 0.5)."""
        return self.constant_note() is not None

    def study_predictions(self, subset: str = "test", rule: str = "mean") -> pd.DataFrame:
        from .scoring import aggregate_studies

        return aggregate_studies(self.predictions.loc[self.predictions["subset"] == subset], rule=rule)

    def load_model(self):
        """The trained model, rebuilt from the configuration with the stored weights (checked
        against their checksum first: :class:`BrokenRunError` if they changed)."""
        recorded = self.info.get("checksums", {}).get(WEIGHTS)
        if recorded is not None and file_digest(self.directory / WEIGHTS) != recorded["blake2b"]:
            store = RunStore(self.directory.parent)
            raise BrokenRunError(
                f"Run {self.key} ({self.name}) in {self.directory}: {WEIGHTS} differs from what was stored "
                f"(checksum). Delete it with `{store.retrain_command(self.key)}`; the next build trains it again."
            )
        from .models import build_model

        model = build_model(self.config)
        model.load_weights(self.directory / WEIGHTS)
        return model


class RunStore:
    """All runs under one folder (``runs/`` by default, or ``$MURA_RUNS``)."""

    def __init__(self, root: str | os.PathLike = "runs"):
        self.root = Path(root)

    def path(self, key: str) -> Path:
        return self.root / key

    def is_complete(self, key: str) -> bool:
        info = self.path(key) / "run.json"
        return info.exists() and json.loads(info.read_text()).get("status") == "complete"

    @contextmanager
    def lock(self, key: str, *, name: str | None = None, out=None):
        """Hold the lock of run ``key`` (a file ``KEY.lock`` beside the run folder).

        Only the holder trains or deletes the run.  When another process holds it, one line
        says so and the call waits until that process is done (or has died: the operating
        system releases its lock).
        """
        self.root.mkdir(parents=True, exist_ok=True)
        lock = FileLock(self.root / f"{key}.lock", mode=FILE_MODE)
        try:
            lock.acquire(timeout=0)
        except Timeout:
            print(
                f"waiting for run {key} ({name or key}), trained by another process ...",
                file=out or sys.stdout,
                flush=True,
            )
            lock.acquire()
        try:
            yield
        finally:
            lock.release()

    def verify(self, key: str) -> list[str]:
        """Problems with the stored files of complete run ``key`` (empty if it is sound)."""
        directory = self.path(key)
        problems = [f"{name} is missing" for name in RUN_FILES if not (directory / name).is_file()]
        if problems:
            return problems
        try:
            info = json.loads((directory / "run.json").read_text())
            for name in ("config.json", "environment.json", "metrics.json"):
                json.loads((directory / name).read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            return [f"a JSON file does not parse: {error}"]
        checksums = info.get("checksums")
        if checksums is not None:
            problems += _checksum_problems(directory, checksums)
            if problems:
                return problems
        problems += _history_problems(
            directory / "history.csv",
            resumes=int(info.get("resumed", 0)),
            recorded_epochs=info.get("training", {}).get("epochs"),
        )
        problems += _weights_problems(directory / WEIGHTS)
        try:
            columns = pd.read_csv(directory / "predictions.csv", nrows=5).columns
        except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as error:
            return problems + [f"predictions.csv does not parse: {error}"]
        absent = [c for c in PREDICTION_COLUMNS if c not in columns]
        if absent:
            problems.append(f"predictions.csv lacks the columns {absent}")
        return problems

    def retrain_command(self, key: str) -> str:
        store = "" if self.root == Path("runs") else f" --store {shlex.quote(str(self.root))}"
        return f"mura-thesis runs {key} --delete{store}"

    def check(self, key: str) -> None:
        """Raise :class:`BrokenRunError` if complete run ``key`` fails :meth:`verify`."""
        problems = self.verify(key)
        if problems:
            name = json.loads((self.path(key) / "run.json").read_text()).get("name", key)
            raise BrokenRunError(
                f"Run {key} ({name}) in {self.path(key)} is marked complete but is damaged: "
                f"{'; '.join(problems)}. Delete it with `{self.retrain_command(key)}`; "
                "the next build trains it again."
            )

    def delete(self, key: str) -> None:
        """Remove run ``key`` (waiting for a process that trains it)."""
        directory = self.path(key)
        if not directory.exists():
            raise KeyError(f"No run {key!r} in {self.root}")
        with self.lock(key):
            shutil.rmtree(directory)

    def start(self, key: str, config: dict, *, name: str, data_root: str) -> Path:
        """Create (or reopen, to resume) the folder of run ``key``."""
        directory = self.path(key)
        directory.mkdir(parents=True, exist_ok=True)
        info_path = directory / "run.json"
        info = json.loads(info_path.read_text()) if info_path.exists() else {}
        resumed = bool(info) and (directory / "checkpoint").exists()
        info.update({"key": key, "name": name, "status": "running", "data_root": data_root})
        info.setdefault("created", _now())
        if resumed:
            info["resumed"] = info.get("resumed", 0) + 1
        atomic_write_text(info_path, json.dumps(info, indent=1))
        atomic_write_text(directory / "config.json", json.dumps(config, indent=1, sort_keys=True))
        if not resumed:
            # A fresh start: drop whatever an earlier attempt left before its first checkpoint.
            (directory / "history.csv").unlink(missing_ok=True)
            (directory / "best.weights.h5").unlink(missing_ok=True)
        return directory

    def finish(
        self,
        key: str,
        *,
        model,
        predictions: pd.DataFrame,
        environment: dict,
        data_summary: dict,
        training: dict | None = None,
        task: str = "abnormality",
    ) -> Run:
        """Store the trained run; its metrics are the abnormality task's study-level metrics or,
        for ``task="study_type"``, the study-type accuracy and macro AUROC."""
        from .scoring import aggregate_studies, study_metrics, study_type_metrics

        directory = self.path(key)
        weights_tmp = directory / ".model.tmp.weights.h5"
        model.save_weights(weights_tmp)
        os.chmod(weights_tmp, FILE_MODE)
        os.replace(weights_tmp, directory / "model.weights.h5")
        atomic_write_text(directory / "predictions.csv", predictions.to_csv(index=False))
        test = predictions.loc[predictions["subset"] == "test"]
        if task == "abnormality":
            studies = aggregate_studies(test)
            metrics = study_metrics(studies["label"], studies["probability"])
        else:
            metrics = study_type_metrics(test)
        atomic_write_text(directory / "metrics.json", json.dumps(metrics, indent=1))
        atomic_write_text(directory / "environment.json", json.dumps(environment, indent=1))
        info = json.loads((directory / "run.json").read_text())
        info.update({"status": "complete", "finished": _now(), "data": data_summary})
        if training is not None:
            info["training"] = training  # epochs run, the cap, whether the plateau rules stopped it, best epoch
        info["checksums"] = {
            name: {"bytes": (directory / name).stat().st_size, "blake2b": file_digest(directory / name)}
            for name in CHECKED_FILES
        }
        atomic_write_text(directory / "run.json", json.dumps(info, indent=1))
        shutil.rmtree(directory / "checkpoint", ignore_errors=True)
        # model.weights.h5 holds the best epoch's weights: the separate copy is not kept.
        (directory / "best.weights.h5").unlink(missing_ok=True)
        return Run(directory)

    def load(self, key: str) -> Run:
        if not self.is_complete(key):
            raise KeyError(f"No complete run {key!r} in {self.root}")
        self.check(key)
        return Run(self.path(key))

    def list(self) -> pd.DataFrame:
        """One row per run folder: key, name, status, model, image size, test AUROC and kappa."""
        rows = []
        for info_path in sorted(self.root.glob("*/run.json")):
            info = json.loads(info_path.read_text())
            config = json.loads((info_path.parent / "config.json").read_text())
            row = {
                "key": info_path.parent.name,
                "name": info.get("name"),
                "status": info.get("status"),
                "model": config.get("model"),
                "task": config.get("task", "abnormality"),
                "image_size": config.get("image_size"),
                "seed": config.get("seed"),
                "finished": info.get("finished"),
            }
            metrics_path = info_path.parent / "metrics.json"
            if metrics_path.exists():
                metrics = json.loads(metrics_path.read_text())
                row.update(
                    {"auroc": metrics.get("auroc"), "kappa": metrics.get("kappa"), "accuracy": metrics.get("accuracy")}
                )
            rows.append(row)
        columns = [
            "key",
            "name",
            "status",
            "model",
            "task",
            "image_size",
            "seed",
            "finished",
            "auroc",
            "kappa",
            "accuracy",
        ]
        return pd.DataFrame(rows, columns=columns)


def _checksum_problems(directory: Path, checksums: dict) -> list[str]:
    """The files whose size or checksum differ from those recorded when the run was stored
    (the weights: size only, see :meth:`Run.load_model`)."""
    problems = []
    for name in CHECKED_FILES:
        recorded = checksums.get(name)
        if recorded is None:
            problems.append(f"run.json records no checksum of {name}")
            continue
        size = (directory / name).stat().st_size
        if size != recorded["bytes"]:
            problems.append(f"{name} has {size:,d} bytes, {recorded['bytes']:,d} were stored")
        elif name != WEIGHTS and file_digest(directory / name) != recorded["blake2b"]:
            problems.append(f"{name} differs from what was stored (checksum)")
    return problems


def _weights_problems(path: Path) -> list[str]:
    """An HDF5 file that does not open (cut short, overwritten): h5py reads only its superblock."""
    import h5py

    try:
        with h5py.File(path, "r"):
            return []
    except (OSError, ValueError) as error:
        return [f"{path.name} does not open as an HDF5 file: {error}"]


def _history_problems(path: Path, *, resumes: int, recorded_epochs: int | None = None) -> list[str]:
    """What is wrong with a run's ``history.csv``: one header, numeric epochs 0..n-1 in order,
    every row complete (as long as the header, ended by a line break) and, when ``run.json``
    records it, ``recorded_epochs`` epochs.

    A resumed run may log the epoch it was interrupted in twice (once per resume); more
    repeated epochs mean that two processes wrote the file.
    """
    text = path.read_text()
    lines = text.splitlines()
    if not lines:
        return ["history.csv is empty"]
    if not text.endswith("\n"):  # the CSV logger ends every row with a line break
        return ["history.csv ends in the middle of a row (cut short)"]
    header = lines[0]
    if header.split(",")[0] != "epoch":
        return [f"history.csv does not start with an 'epoch' header: {header[:60]!r}"]
    repeated = sum(1 for line in lines[1:] if line == header)
    if repeated:
        return [f"history.csv repeats its header {repeated} time(s) (written by two processes at once)"]
    short = [number for number, line in enumerate(lines[1:], 2) if line.count(",") != header.count(",")]
    if short:
        return [f"history.csv line {short[0]} has not as many fields as its header (cut short)"]
    try:
        epochs = pd.read_csv(path)["epoch"]
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as error:
        return [f"history.csv does not parse: {error}"]
    if epochs.empty or not pd.api.types.is_integer_dtype(epochs):
        return ["history.csv has no epochs or non-integer epoch numbers"]
    problems = []
    if (epochs.diff().dropna() < 0).any():
        problems.append("history.csv has epochs out of order (written by two processes at once)")
    duplicates = int(epochs.duplicated().sum())
    if duplicates > resumes:
        problems.append(f"history.csv logs {duplicates} epoch(s) twice after {resumes} resume(s)")
    if sorted(set(epochs)) != list(range(int(epochs.max()) + 1)):
        problems.append("history.csv skips epochs")
    if recorded_epochs is not None and epochs.nunique() != recorded_epochs:
        problems.append(f"history.csv has {epochs.nunique()} epochs, run.json records {recorded_epochs}")
    return problems


def default_store() -> RunStore:
    return RunStore(os.environ.get(RUNS_ENV_VAR, "runs"))
