"""The build pipeline: profiles, chapter execution with papermill, caching, provenance, and
rendering with Jupyter Book.

A build (``mura-thesis build``) goes through these steps:

1. Read the profile (``params/<name>.yaml``) and make sure its data exist (a synthetic
   dataset is generated on first use; a real MURA copy is validated).
2. For each chapter of ``_toc.yml`` that is a notebook: compute its key from its code cells, its
   parameters, the library's source and the data manifest (not from its prose).  If the key
   matches the last successful execution, reuse it; otherwise convert it with jupytext and
   execute it with papermill.
   The first failing chapter stops the build: its name, cell and traceback are printed and
   the failed notebook is kept in ``build/failed/``.
3. Gather the build's results (the comparisons and metrics each chapter read, the values it
   glued) into a manifest (:mod:`mura_thesis.manifest`).
4. Stage the chapters: each chapter's current text with the outputs of its execution (so a
   prose edit shows without executing anything), presented (parameter cells hidden, a
   provenance box at the end), with the book's configuration and a generated status page
   (which checks the verdicts against the profile's reference build, if one is kept), run
   ``jupyter-book build -W -n --keep-going``, and only if that is clean publish the HTML to
   ``_build/html`` (the previous good HTML stays until then) and the manifest to
   ``_build/results.json``.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import nbformat
import yaml

from mura_lib.files import atomic_write_text, short_hash
from mura_lib.parallel import partial_name, remove_stale_partials

from . import imports
from .frontmatter import BUILD_SUBSTITUTIONS, stage_front_matter
from .manifest import (
    MANIFEST_NAME,
    RESULTS_ENV_VAR,
    build_manifest,
    reference_manifest,
    reference_section,
    write_manifest,
)
from .plan import RUNS_USED_ENV_VAR
from .presentation import (
    PassageError,
    StaleOutputs,
    code_cells,
    merge_outputs,
    present,
    present_notebook,
    resolve_passages,
)
from .profiles import Profile, load_profile, resolve_data  # noqa: F401 (load_profile, resolve_data: re-exported)
from .project import AUTOMATIC_PARAMETERS, BuildError, chapter_name, is_notebook, project_root, toc_entries  # noqa: F401

# 2: executed notebooks are kept as executed; presentation happens when staged.
# 3: a chapter's key covers the modules its code can run, not the whole package.
PIPELINE_VERSION = 3


# --- profiles --------------------------------------------------------------------------------


# --- chapters and hashing --------------------------------------------------------------------


# Modules that never change what a chapter computes: typesetting the PDF, the command line, the
# cluster executor, the build's results manifest and the comparison of two builds, the archive
# and the citation files.  Editing them re-executes no chapter.  Of every other module of
# mura_lib and mura_thesis, a chapter's key covers those its code can run (see
# :func:`mura_thesis.imports.chapter_modules`): editing a module re-executes only the chapters
# that reach it.
NOT_IN_CHAPTERS = (
    "mura_thesis.pdf",
    "mura_thesis.frontmatter",
    "mura_thesis.cli",
    "mura_thesis.executors",
    "mura_thesis.manifest",
    "mura_thesis.archive",
    "mura_thesis.citation",
)


def chapter_library_files(code: str) -> dict[str, Path]:
    """``{module: source file}`` of the project modules that a chapter's key covers: those its
    code (``code``, its code cells joined) can run, but NOT_IN_CHAPTERS."""
    missing = [name for name in NOT_IN_CHAPTERS if name not in imports.modules()]
    if missing:
        raise BuildError(
            f"NOT_IN_CHAPTERS names modules that do not exist: {missing}; a moved module must be renamed there."
        )
    return {name: path for name, path in imports.chapter_modules(code).items() if name not in NOT_IN_CHAPTERS}


def library_hash(code: str) -> str:
    """A digest of the names and source of the modules a chapter's code can run."""
    digest = hashlib.sha256()
    for name, path in chapter_library_files(code).items():
        digest.update(name.encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def _runs_used(path: Path) -> list[list[str]]:
    """``[[name, key], ...]`` of the runs a chapter read, in first-use order, from the file its
    plan wrote (see :data:`mura_thesis.plan.RUNS_USED_ENV_VAR`); the file is then removed."""
    if not path.exists():
        return []
    used = {}
    for line in path.read_text().splitlines():
        entry = json.loads(line)
        used.setdefault(entry["key"], entry["name"])
    path.unlink()
    return [[name, key] for key, name in used.items()]


def _results_used(path: Path) -> list[dict]:
    """The results a chapter read (comparisons, metrics: one JSON object a line, each with a
    ``"kind"``; see :data:`mura_thesis.manifest.RESULTS_ENV_VAR`), each once, in first-use
    order, from the file its plan wrote; the file is then removed."""
    if not path.exists():
        return []
    results, seen = [], set()
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            result = json.loads(line)
        except ValueError as error:
            raise BuildError(f"Line {number} of the chapter's results ({path}) is not JSON: {error}") from None
        if not isinstance(result, dict):
            raise BuildError(f"Line {number} of the chapter's results ({path}) is not a JSON object: {line[:200]}")
        canonical = json.dumps(result, sort_keys=True)
        if canonical not in seen:
            seen.add(canonical)
            results.append(result)
    path.unlink()
    return results


_sha = short_hash


@dataclass
class ChapterPlan:
    entry: str
    source: Path
    parameters: dict
    parts: dict  # component -> hash

    @property
    def name(self) -> str:
        return chapter_name(self.entry)

    @property
    def key(self) -> str:
        return _sha(self.parts)


class Builder:
    """Executes and renders the book of one profile."""

    def __init__(
        self,
        root: Path,
        profile: Profile,
        *,
        data: str | None = None,
        progress: bool = True,
        out=sys.stdout,
        overrides: dict | None = None,
        missing: str | None = None,
        max_excluded_fraction: float | None = None,
        generate: bool = True,
        workers: int | None = None,
    ):
        self.root = root
        # Runs trained side by side before the chapters execute (None: executors.default_workers()).
        if workers is not None and (not isinstance(workers, int) or workers < 1):
            raise BuildError(f"--workers must be a positive integer, got {workers!r}")
        self.workers = workers
        self.profile = profile
        self.overrides = dict(overrides or {})  # settings given on the command line (-p, -f) for every chapter
        self.data_override = data
        self.generate = generate
        # How the data are read: from the command line, else the profile's data section.
        from mura_lib.preprocess import DEFAULT_MAX_EXCLUDED_FRACTION

        self.missing = missing or profile.data.get("missing", "error")
        self.patient_overlap = profile.data.get("patient_overlap", "error")
        self.max_excluded_fraction = float(
            max_excluded_fraction
            if max_excluded_fraction is not None
            else profile.data.get("max_excluded_fraction", DEFAULT_MAX_EXCLUDED_FRACTION)
        )
        self.progress = progress
        self.out = out
        self.work = root / "build"
        self.executed_dir = self.work / "executed" / profile.name
        self.state_dir = self.work / "state" / profile.name
        self.failed_dir = self.work / "failed" / profile.name
        self._data = None

    def say(self, message: str) -> None:
        print(message, file=self.out, flush=True)

    # data --------------------------------------------------------------------------------
    @property
    def data(self) -> tuple[str, Path, str]:
        if self._data is None:
            from mura_lib.dataset import manifest_hash

            source, path = resolve_data(
                self.root, self.profile, self.data_override, progress=self.progress, generate=self.generate
            )
            if not path.exists():  # only without generate: status reports, it does not generate
                self._data = (source, path, "not generated yet")
            else:
                self._data = (source, path, manifest_hash(path))
        return self._data

    def data_settings(self) -> dict:
        """How the chapters read the data (environment variables of the kernels)."""
        from mura_lib.dataset import MISSING_ENV_VAR, PATIENT_OVERLAP_ENV_VAR
        from mura_lib.preprocess import MAX_EXCLUDED_ENV_VAR

        settings = {MISSING_ENV_VAR: self.missing, MAX_EXCLUDED_ENV_VAR: repr(self.max_excluded_fraction)}
        if self.patient_overlap != "error":  # the default leaves the chapters' keys as they were
            settings[PATIENT_OVERLAP_ENV_VAR] = self.patient_overlap
        return settings

    @contextmanager
    def data_environment(self):
        """:meth:`data_settings` in this process's environment (and so in the training workers
        it starts), for as long as the block runs: ``--missing`` and ``--max-excluded-fraction``
        reach every reader of the data, not only the chapters' kernels."""
        previous = {key: os.environ.get(key) for key in self.data_settings()}
        os.environ.update(self.data_settings())
        try:
            yield
        finally:
            _restore_environment(previous)

    def check_data(self) -> None:
        """Read and check the dataset here, before any kernel starts (a clear error, not a
        chapter traceback): layout, CSV files, missing files, empty or one-class splits."""
        from mura_lib.dataset import load_mura

        load_mura(self.data[1], missing=self.missing, patient_overlap=self.patient_overlap)

    def exclusion_summary(self) -> str | None:
        """What the preprocessing caches of this dataset said of its images: those left out (one
        line), and those used with a note (another format than their name says, an EXIF
        orientation applied: one more line)."""
        import pandas as pd

        from mura_lib.preprocess import summarise_exclusions

        failures, notes = [], []
        for meta_path in (self.root / "data" / "cache").glob("*/meta.json"):
            meta = json.loads(meta_path.read_text())
            if meta.get("manifest") == self.data[2] and (meta_path.parent / "index.csv").exists():
                index = pd.read_csv(meta_path.parent / "index.csv", keep_default_na=False)
                ok = index["ok"].astype(str).str.lower().eq("true")
                failures.append(index.loc[~ok, ["relpath", "reason"]])
                notes.append(index.loc[ok & index["reason"].astype(str).ne(""), ["relpath", "reason"]])
        if not failures:
            return None
        excluded = pd.concat(failures).drop_duplicates("relpath")
        lines = [f"Images left out: {summarise_exclusions(excluded)} (listed in the Data chapter)."]
        noted = pd.concat(notes).drop_duplicates("relpath")
        if not noted.empty:
            shown = "; ".join(f"{row.relpath}: {row.reason}" for row in noted.head(3).itertuples())
            more = f"; and {len(noted) - 3} more" if len(noted) > 3 else ""
            lines.append(f"Images used with a note: {len(noted)} ({shown}{more}).")
        return "\n".join(lines)

    def automatic_parameters(self) -> dict:
        source, path, _ = self.data
        return {
            "profile": self.profile.name,
            "data_root": str(path),
            "data_source": source,
            "runs_dir": str(self.root / "runs"),
            "cache_dir": str(self.root / "data" / "cache"),
        }

    def lock(self, *, wait: bool = True) -> "_BuildLock":
        """The lock of this checkout and profile (``build/locks/<profile>.lock``)."""
        return _BuildLock(self.work / "locks" / f"{self.profile.name}.lock", self.profile.name, wait, self.say)

    # planning ----------------------------------------------------------------------------
    def settings(self, overrides: dict | None = None) -> dict:
        """The experiment settings of the build: the profile's, with the experiment settings
        among ``overrides`` (default: the build's) on top, checked."""
        from .plan import PlanSettings, settings_from_parameters
        from .schema import check_settings

        overrides = self.overrides if overrides is None else overrides
        plan_keys = set(PlanSettings.fields())
        source = f"profile {self.profile.name!r} with the given parameters"
        try:
            settings = settings_from_parameters(
                self.profile.parameters | {k: v for k, v in overrides.items() if k in plan_keys}, source=source
            )
            check_settings(settings, source)
            return settings
        except (TypeError, ValueError) as error:
            raise BuildError(str(error)) from None

    def plan(self, entry: str, overrides: dict | None = None) -> ChapterPlan:
        import papermill

        source = self.root / f"{entry}.md"
        if not source.exists():
            raise BuildError(f"Chapter {entry!r} is listed in _toc.yml but {source} does not exist.")
        if overrides is None:
            overrides = self.overrides
        from .plan import PlanSettings

        declared = papermill.inspect_notebook(str(self._converted(source)))
        overrides = overrides or {}
        plan_keys = set(PlanSettings.fields())
        # The experiment settings resolve once per build: every chapter receives all of them as
        # `settings` (and any single one it declares), so all chapters read the same plan.
        settings = self.settings(overrides)
        wanted = self.profile.chapters.get(chapter_name(entry), {}) | overrides
        unknown = set(wanted) - set(declared) - plan_keys
        if unknown:
            raise BuildError(
                f"Chapter {chapter_name(entry)} has no parameters {sorted(unknown)}; "
                f"it declares {sorted(declared)} and takes the experiment settings {sorted(plan_keys)}."
            )
        chosen = self.automatic_parameters() | settings | wanted | {"settings": settings}
        parameters = {k: v for k, v in chosen.items() if k in declared}
        cells = code_cells(nbformat.read(self._converted(source), as_version=4))
        parts = {
            # What the chapter executes: its code cells only.  A prose edit re-renders the chapter
            # with the outputs of its last execution (see Builder.stage).
            "code": _sha(cells),
            "parameters": _sha(parameters),
            "library": library_hash("\n".join(source for source, _ in cells)),
            "data": self.data[2],
            "data_settings": _sha(self.data_settings()),
            "pipeline": str(PIPELINE_VERSION),
        }
        return ChapterPlan(entry=entry, source=source, parameters=parameters, parts=parts)

    def _converted(self, source: Path) -> Path:
        """The chapter as an ``.ipynb`` (jupytext), converted once per source version."""
        import jupytext

        target = self.work / "converted" / f"{source.stem}-{_sha(source.read_bytes())}.ipynb"
        if not target.exists():
            notebook = jupytext.read(source)
            notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = target.with_name(f".{target.stem}.tmp{os.getpid()}.ipynb")
            jupytext.write(notebook, tmp, fmt="ipynb")
            os.replace(tmp, target)
        return target

    def state(self, plan: ChapterPlan) -> dict | None:
        path = self.state_dir / f"{plan.name}.json"
        return json.loads(path.read_text()) if path.exists() else None

    def why_stale(self, plan: ChapterPlan) -> list[str]:
        """Why the chapter would re-execute (empty if it is up to date)."""
        state = self.state(plan)
        if state is None or not (self.executed_dir / f"{plan.name}.ipynb").exists():
            return ["never executed"]
        return [f"{part} changed" for part, value in plan.parts.items() if state.get("parts", {}).get(part) != value]

    # execution ---------------------------------------------------------------------------
    def execute(self, plan: ChapterPlan, output: Path) -> dict:
        """Execute one chapter into ``output``; raise BuildError with the traceback on failure."""
        import papermill
        from nbclient.exceptions import DeadKernelError
        from papermill.exceptions import PapermillExecutionError

        output.parent.mkdir(parents=True, exist_ok=True)
        # Unique per process: two processes executing one chapter never share a notebook.
        temporary = output.with_name(f"{partial_name(output.stem)}.ipynb")
        # The chapter's experiment plan notes every run it reads here (ExperimentPlan.run), for
        # the provenance box.
        runs_used = temporary.with_suffix(".runs.jsonl")
        runs_used.unlink(missing_ok=True)
        # ... and every result it reads (comparisons, metrics), for the build's results manifest.
        results_used = temporary.with_suffix(".results.jsonl")
        results_used.unlink(missing_ok=True)
        kernel_log = self.work / "logs" / self.profile.name / f"{plan.name}.log"
        kernel_log.unlink(missing_ok=True)
        environment = {
            KERNEL_LOG_ENV_VAR: str(kernel_log),
            RUNS_USED_ENV_VAR: str(runs_used),
            RESULTS_ENV_VAR: str(results_used),
            "TF_CPP_MIN_LOG_LEVEL": "3",
            "PYTHONWARNINGS": "ignore",
            "MURA_RUNS": str(self.root / "runs"),
            "MPLBACKEND": "module://matplotlib_inline.backend_inline",
        } | self.data_settings()
        previous = {k: os.environ.get(k) for k in environment}
        os.environ.update(environment)
        started = datetime.now(timezone.utc)
        try:
            papermill.execute_notebook(
                str(self._converted(plan.source)),
                str(temporary),
                parameters=plan.parameters,
                kernel_name="python3",
                cwd=str(self.root),
                progress_bar=False,
                log_output=False,
                report_mode=False,
                # The kernel talks to this process over localhost; its warning about unencrypted
                # TCP would otherwise be printed once per chapter.  Kernel errors still show.
                extra_arguments=["--IPKernelApp.log_level=ERROR"],
                kernel_manager_class=ChapterKernelManager,
                # A chapter waiting for a run that another process trains says so in its cell;
                # the line is passed on to the terminal as it comes, not minutes later.
                stdout_file=ForwardLines(WAITING_PREFIX, self.say, f"    {plan.name}: "),
            )
        except DeadKernelError:
            temporary.unlink(missing_ok=True)
            runs_used.unlink(missing_ok=True)
            results_used.unlink(missing_ok=True)
            raise BuildError(
                f"The kernel executing chapter {plan.name} ({plan.source.relative_to(self.root)}) died: it was "
                "killed, most often for lack of memory (try a smaller image size or batch). Re-running the same "
                "command resumes: finished chapters and trained runs are kept, and an interrupted training "
                f"continues from its last completed epoch.{_log_tail(kernel_log)}"
            ) from None
        except PapermillExecutionError as error:
            runs_used.unlink(missing_ok=True)
            results_used.unlink(missing_ok=True)
            self.failed_dir.mkdir(parents=True, exist_ok=True)
            kept = self.failed_dir / f"{plan.name}.ipynb"
            if temporary.exists():
                os.replace(temporary, kept)
            expected = _expected_failure(error.ename, error.evalue)
            if expected:
                raise BuildError(
                    f"Chapter {plan.name} ({plan.source.relative_to(self.root)}) stopped: {expected}\n"
                    f"(The executed notebook is kept at {kept}.)"
                ) from None
            cell_source = error.source or ""
            traceback = "\n".join(error.traceback)
            raise BuildError(
                f"Chapter {plan.name} ({plan.source.relative_to(self.root)}) failed in cell "
                f"{error.cell_index}:\n{_indent(cell_source)}\n\n{_strip_ansi(traceback)}\n\n"
                f"The executed notebook with the error is kept at {kept}."
            ) from None
        finally:
            _restore_environment(previous)
        finished = datetime.now(timezone.utc)
        record = {
            "chapter": plan.name,
            "runs": _runs_used(runs_used),
            # Stored with the chapter's state: a chapter reused by a later build still reports them.
            "results": _results_used(results_used),
            "started": started.isoformat(timespec="seconds"),
            "finished": finished.isoformat(timespec="seconds"),
            "seconds": round((finished - started).total_seconds(), 1),
            "parameters": plan.parameters,
            "parts": plan.parts,
            "profile": self.profile.name,
            "commit": git_commit(self.root),
            "environment": build_environment(),
        }
        os.replace(temporary, output)
        return record

    def run_chapters(self, entries: list[str], *, force: bool = False) -> list[dict]:
        # A build killed mid-chapter leaves only a temporary file: remove it, re-run that chapter.
        remove_stale_partials(self.executed_dir)
        for stale in self.executed_dir.glob(".*.partial.ipynb"):  # named so by older versions
            stale.unlink()
        records = []
        notebooks = [e for e in entries if is_notebook(self.root / f"{e}.md")]
        plans = [self.plan(entry) for entry in notebooks]
        stale = {plan.name: ["forced"] if force else self.why_stale(plan) for plan in plans}
        if any(stale.values()):
            self.train_ahead()
        for number, plan in enumerate(plans, start=1):
            reasons = stale[plan.name]
            target = self.executed_dir / f"{plan.name}.ipynb"
            if not reasons:
                state = self.state(plan)
                self.say(f"[{number}/{len(notebooks)}] {plan.name}: up to date (executed {state['finished']})")
                records.append(state | {"cached": True})
                continue
            self.say(f"[{number}/{len(notebooks)}] {plan.name}: executing ({', '.join(reasons)}) ...")
            record = self.execute(plan, target)
            atomic_write_text(self.state_dir / f"{plan.name}.json", json.dumps(record, indent=1))
            (self.failed_dir / f"{plan.name}.ipynb").unlink(missing_ok=True)
            self.say(f"    done in {record['seconds']:.1f}s")
            records.append(record | {"cached": False})
        return records

    def train_ahead(self) -> None:
        """Trains the runs of the profile's plan that the run store lacks, ``workers`` at a time,
        before any chapter executes; the chapters then read them.  With one worker nothing happens
        here: each run is trained by the first chapter that needs it.  A run that fails here is
        reported, and the chapter that needs it tries it again (and fails with its error)."""
        from .executors import default_workers
        from .profiles import plan_for_profile

        workers = self.workers or default_workers()
        if workers < 2:
            return
        plan = plan_for_profile(self.root, self.profile, self.data_override, self.overrides, verbose="silent")
        command = ["mura-thesis", "train", "--profile", self.profile.name]
        if self.data_override:
            command += ["--data", str(self.data_override)]
        with self.data_environment():
            self._train_stages(plan, workers, command)

    def _train_stages(self, plan, workers: int, command: list[str]) -> None:
        from .executors import train_runs

        stages = plan.job_stages()
        if len(stages) > 2:
            # The pretraining corpus' runs need no other run: they train beside the first stage.
            (source_root, source_jobs), (data_root, first), *rest = stages
            stages = [(data_root, [(n, c, source_root) for n, c in source_jobs] + first), *rest]
        for data_root, jobs in stages:
            train_runs(
                jobs,
                data_root=data_root,
                runs_dir=self.root / "runs",
                cache_dir=self.root / "data" / "cache",
                workers=workers,
                out=self.out,
                command=command,
            )

    # rendering ---------------------------------------------------------------------------
    def results_manifest(self, records: list[dict]) -> dict:
        """The build's results manifest (:func:`mura_thesis.manifest.build_manifest`) from the
        chapters' records and executed notebooks."""
        source, path, manifest = self.data
        # Data inside the project are named relative to it, so that two checkouts' manifests agree.
        path = Path(path)
        if path.is_relative_to(self.root):
            path = path.relative_to(self.root)
        return build_manifest(
            profile=self.profile.name,
            settings=self.settings(),
            data={"source": source, "path": path.as_posix(), "manifest": manifest},
            commit=git_commit(self.root),
            environment=build_environment(),
            records=records,
            executed_dir=self.executed_dir,
        )

    def stage(self, entries: list[str], records: list[dict], results: dict | None = None) -> Path:
        """Stage the book; ``results`` is the build's results manifest (made from ``records`` if
        not given), which the status page checks against the profile's reference build."""
        from .presentation import status_page

        staging = self.work / "book" / self.profile.name
        staging.mkdir(parents=True, exist_ok=True)
        # Files are written only where their content changed, and what is no longer part of the
        # book is removed, so that Sphinx (whose doctrees in _build are kept) re-reads only the
        # pages that changed.
        files: dict[Path, bytes] = {}
        for name in ("_config.yml", "_toc.yml", "references.bib"):
            if (self.root / name).exists():
                files[staging / name] = (self.root / name).read_bytes()
        # The packages' source, for the chapters that show code with ``literalinclude``
        # (``/_code/mura_lib/models.py``, ``:pyobject: build_cnn``).
        for path in imports.modules().values():
            files[staging / "_code" / path.relative_to(imports.ROOT)] = path.read_bytes()
        images = self.root / "chapters" / "images"
        for path in sorted(images.rglob("*")) if images.is_dir() else []:
            if path.is_file():
                files[staging / path.relative_to(self.root)] = path.read_bytes()
        for entry in entries:
            source = self.root / f"{entry}.md"
            target = staging / entry
            if is_notebook(source):
                files[target.with_suffix(".ipynb")] = self._presented(entry)
            elif chapter_name(entry) == "status":
                if results is None:
                    results = self.results_manifest(records)
                reference = reference_section(
                    results, self.profile.name, reference_manifest(self.profile.name, self.root), root=self.root
                )
                files[target.with_suffix(".md")] = status_page(
                    records, self.profile, self.data[0], self.data[1], reference=reference
                ).encode()
            else:
                files[target.with_suffix(".md")] = source.read_bytes()
        for path in sorted(staging.rglob("*"), reverse=True):
            if path.relative_to(staging).parts[0] == "_build" or path in files:
                continue
            if path.is_dir():
                if not any(path.iterdir()):
                    path.rmdir()
            else:
                path.unlink()
        for path, content in files.items():
            if path.name == "_config.yml" and path.parent == staging and path.is_file():
                # The staged configuration also holds what the build adds: compare without it.
                staged = yaml.safe_load(path.read_text()) or {}
                for name in BUILD_SUBSTITUTIONS:
                    staged.get("parse", {}).get("myst_substitutions", {}).pop(name, None)
                if staged == yaml.safe_load(content):
                    continue
            if not path.is_file() or path.read_bytes() != content:
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(content)
        # The word count, shown in the front matter, and the data's source, on the PDF's title page.
        stage_front_matter(staging, self.data[0])
        return staging

    def _presented(self, entry: str) -> bytes:
        """The chapter's current text with the outputs of its last execution, presented."""
        name = chapter_name(entry)
        executed = nbformat.read(self.executed_dir / f"{name}.ipynb", as_version=4)
        text = nbformat.read(self._converted(self.root / f"{entry}.md"), as_version=4)
        try:
            notebook = merge_outputs(text, executed)
        except StaleOutputs:
            raise BuildError(
                f"Chapter {name}'s code changed after it was executed; run the build again to execute it."
            ) from None
        try:
            resolve_passages(notebook)
        except PassageError as error:
            raise BuildError(f"Chapter {name} ({entry}.md): {error}") from None
        record = json.loads((self.state_dir / f"{name}.json").read_text())
        # The provenance box names the settings changed from the profile's.
        defaults = self.plan(entry, {}).parameters
        return nbformat.writes(present(notebook, record, data_source=self.data[0], defaults=defaults)).encode()

    def render(self, staging: Path) -> Path:
        """Run jupyter-book; publish to ``_build/html`` only if the build is clean."""
        command = [
            jupyter_book_command(),
            "build",
            str(staging),
            "--path-output",
            str(staging),
            "-W",
            "-n",
            "--keep-going",
            "--quiet",
        ]
        self.say("Rendering the book with jupyter-book ...")
        result = subprocess.run(command, capture_output=True, text=True, cwd=self.root)
        output = result.stdout + result.stderr
        warnings = [line for line in output.splitlines() if "WARNING" in line or "ERROR" in line]
        if result.returncode != 0 or warnings:
            tail = "\n".join(warnings[:40]) or output[-4000:]
            raise BuildError(f"jupyter-book reported problems; the published HTML was left as it was:\n{tail}")
        built = staging / "_build" / "html"
        published = self.root / "_build" / "html"
        fresh = self.root / "_build" / f".html.new-{os.getpid()}"
        old = self.root / "_build" / f".html.old-{os.getpid()}"
        shutil.rmtree(fresh, ignore_errors=True)
        shutil.copytree(built, fresh)
        if published.exists():
            os.replace(published, old)
        os.replace(fresh, published)
        shutil.rmtree(old, ignore_errors=True)
        return published / "index.html"

    def build(self, *, force: bool = False, wait: bool = True) -> Path:
        with self.lock(wait=wait):
            entries = toc_entries(self.root)
            started = time.perf_counter()
            source, path, manifest = self.data
            self.say(f"Profile {self.profile.name!r} on {source} data at {path} (manifest {manifest})")
            self.check_data()
            records = self.run_chapters(entries, force=force)
            results = self.results_manifest(records)
            index = self.render(self.stage(entries, records, results))
            # Beside the HTML it describes, once that is published.
            written = write_manifest(self.root / "_build" / MANIFEST_NAME, results)
            self.say(
                f"Results of this build: {written} ({len(results['comparisons'])} comparisons, "
                f"{len(results['metrics'])} metrics, {sum(map(len, results['glued'].values()))} glued values)."
            )
            self.say(self.exclusion_summary() or "Images left out: none.")
            self.say(f"Built in {time.perf_counter() - started:.0f}s. Open {index}")
            return index


# How the run store says that a process waits for a run another one trains (RunStore.lock).
WAITING_PREFIX = "waiting for run "


class ForwardLines:
    """A file-like sink for a chapter's standard output, as papermill streams it: every complete
    line that starts with ``prefix`` goes to ``say`` (after ``lead``); the rest stays in the
    notebook only."""

    def __init__(self, prefix: str, say, lead: str = ""):
        self.prefix, self.say, self.lead, self._partial = prefix, say, lead, ""

    def write(self, text: str) -> int:
        *lines, self._partial = (self._partial + text).split("\n")
        for line in lines:
            if line.startswith(self.prefix):
                self.say(self.lead + line)
        return len(text)

    def flush(self) -> None:
        pass


class _BuildLock:
    """One build per checkout and profile at a time: a second one waits (saying so) or fails."""

    def __init__(self, path: Path, profile: str, wait: bool, say):
        from filelock import FileLock

        path.parent.mkdir(parents=True, exist_ok=True)
        self.path, self.profile, self.wait, self.say = path, profile, wait, say
        self.lock = FileLock(path, mode=0o664)
        self.owner = path.with_suffix(".owner")

    def _holder(self) -> str:
        try:
            owner = json.loads(self.owner.read_text())
            return f"pid {owner['pid']}, started {owner['started']}"
        except (OSError, ValueError, KeyError):
            return "pid unknown"

    def __enter__(self):
        from filelock import Timeout

        try:
            self.lock.acquire(timeout=0)
        except Timeout:
            message = f"Another build of profile {self.profile!r} is running in this checkout ({self._holder()})"
            if not self.wait:
                raise BuildError(f"{message}. Wait for it to finish, or run without --no-wait to wait.") from None
            self.say(f"{message}; waiting for it to finish ... (Ctrl-C to stop; --no-wait fails instead)")
            self.lock.acquire()
        atomic_write_text(
            self.owner, json.dumps({"pid": os.getpid(), "started": datetime.now().isoformat(timespec="seconds")})
        )
        return self

    def __exit__(self, *exc):
        self.owner.unlink(missing_ok=True)
        self.lock.release()


def _load_kernel_manager_base():
    from jupyter_client.manager import AsyncKernelManager

    return AsyncKernelManager


# Where a chapter's kernel process writes its own output (set by Builder.execute).
KERNEL_LOG_ENV_VAR = "MURA_KERNEL_LOG"


class ChapterKernelManager(_load_kernel_manager_base()):
    """The kernel manager of chapter execution: shuts an idle kernel down without a SIGINT, and
    sends what the kernel process writes outside its cells to the chapter's log
    (``build/logs/<chapter>.log``).

    jupyter_client interrupts a kernel before asking it to shut down, in case it is still busy.
    A chapter's kernel is shut down only once its last cell has finished, so the interrupt only
    makes the kernel log "KeyboardInterrupt caught in kernel" after every chapter.
    """

    async def _async_interrupt_kernel(self) -> None:
        if self.shutting_down:
            return
        await super()._async_interrupt_kernel()

    async def _async_launch_kernel(self, kernel_cmd, **kw) -> None:
        # What the kernel process itself writes (TensorFlow's C++ start-up lines, ipykernel's
        # shutdown noise) goes to the chapter's log, not the build's terminal; cell outputs and
        # errors travel over the kernel's messages and are unaffected.
        log = os.environ.get(KERNEL_LOG_ENV_VAR)
        if log:
            Path(log).parent.mkdir(parents=True, exist_ok=True)
            stream = open(log, "ab")  # noqa: SIM115 (the kernel process holds it; closed at shutdown)
            kw["stdout"] = kw["stderr"] = stream
            self._kernel_log = stream
        await super()._async_launch_kernel(kernel_cmd, **kw)

    async def _async_shutdown_kernel(self, now: bool = False, restart: bool = False) -> None:
        try:
            await super()._async_shutdown_kernel(now=now, restart=restart)
        finally:
            stream = getattr(self, "_kernel_log", None)
            if stream is not None:
                stream.close()


# Exceptions raised in a chapter for a known cause: their message is the whole story.
EXPECTED_ERRORS = ("MuraFormatError", "BrokenRunError", "TooManyExcludedError", "ParameterError")


def _expected_failure(name: str, value: str) -> str | None:
    if name in EXPECTED_ERRORS:
        return value
    if "[Errno 28]" in (value or ""):
        return f"the disk is full: {value}. Free space there and re-run; finished work is kept."
    return None


def jupyter_book_command() -> str:
    """The ``jupyter-book`` script of this environment (beside this Python), else on PATH."""
    beside = Path(sys.executable).parent / "jupyter-book"
    if beside.exists():
        return str(beside)
    found = shutil.which("jupyter-book")
    if not found:
        raise BuildError("jupyter-book is not installed; run `make book`, which installs it.")
    return found


def _restore_environment(previous: dict) -> None:
    """Put back the environment variables saved as ``{name: value or None}`` (None: was unset)."""
    for key, value in previous.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


def git_commit(root: Path) -> str:
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"], cwd=root, capture_output=True, text=True
        ).stdout.strip()
        return commit + ("+modified" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def build_environment() -> dict:
    """Versions and device, without importing TensorFlow in the build process."""
    from importlib import metadata

    from mura_lib.device import cpu_name

    versions = {"python": sys.version.split()[0]}
    for name in ("tensorflow", "tensorflow-cpu", "keras", "jax", "torch", "numpy", "jupyter-book"):
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    gpus = []
    if shutil.which("nvidia-smi"):
        result = subprocess.run(
            ["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"], capture_output=True, text=True
        )
        gpus = [line.strip() for line in result.stdout.splitlines() if line.strip()]
    device = f"{len(gpus)} x {gpus[0]}" if gpus else f"CPU: {cpu_name()} ({os.cpu_count()} cores)"
    return {"versions": versions, "device": device, "backend": os.environ.get("KERAS_BACKEND", "tensorflow")}


def _log_tail(path: Path, lines: int = 15) -> str:
    """The last lines of a chapter's kernel log, for an error message (empty if there are none)."""
    if not path.is_file():
        return ""
    tail = [line for line in path.read_text(errors="replace").splitlines() if line.strip()][-lines:]
    return f"\nThe kernel's last words ({path}):\n" + _indent("\n".join(tail)) if tail else ""


def _indent(text: str) -> str:
    return "\n".join("    " + line for line in text.splitlines())


def _strip_ansi(text: str) -> str:
    import re

    return re.sub(r"\x1b\[[0-9;]*m", "", text)


def run_single_chapter(
    root: Path,
    profile: Profile,
    chapter: str,
    overrides: dict,
    output: Path | None,
    *,
    data: str | None = None,
    **settings,
) -> Path:
    """Execute one chapter with changed parameters (``mura-thesis run``).

    ``settings`` are the data settings of :class:`Builder` (``missing``, ``max_excluded_fraction``).
    Two runs never write one output: a second run aimed at an output that another one is writing
    stops with a message (pass ``-o``); trained runs are shared through the run store's locks.
    """
    from filelock import FileLock, Timeout

    builder = Builder(root, profile, data=data, **settings)
    entries = [e for e in toc_entries(root) if chapter_name(e) == chapter or e == chapter or f"{e}.md" == chapter]
    if not entries:
        names = [chapter_name(e) for e in toc_entries(root) if is_notebook(root / f"{e}.md")]
        raise BuildError(f"Unknown chapter {chapter!r}; chapters: {', '.join(names)}.")
    plan = builder.plan(entries[0], overrides)
    output = Path(output or root / "build" / "run" / f"{plan.name}.ipynb").resolve()
    output.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(output.parent / f".{output.name}.lock", mode=0o664)
    try:
        lock.acquire(timeout=0)
    except Timeout:
        raise BuildError(
            f"{output} is being written by another `mura-thesis run` right now. Pass -o OTHER.ipynb to write "
            "this run elsewhere, or wait for the other one to finish."
        ) from None
    try:
        builder.check_data()
        # The changed settings reach the chapter inside its `settings` parameter, not as parameters
        # of their own: name what was changed, as given.
        changed = ", ".join(f"{name}={json.dumps(value)}" for name, value in overrides.items())
        what = changed or "the profile's settings"
        builder.say(f"Executing {plan.name} with {what} ...")
        record = builder.execute(plan, output)
        present_notebook(output, record, data_source=builder.data[0], defaults=builder.plan(entries[0], {}).parameters)
        builder.say(f"Done in {record['seconds']:.1f}s. Executed notebook: {output}")
        summary = builder.exclusion_summary()
        if summary:
            builder.say(summary)
    finally:
        lock.release()
    return output
