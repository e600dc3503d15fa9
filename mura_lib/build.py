"""The build pipeline: profiles, chapter execution with papermill, caching, provenance, and
rendering with Jupyter Book.

A build (``mura-thesis build``) goes through these steps:

1. Read the profile (``params/<name>.yaml``) and make sure its data exist (a synthetic
   dataset is generated on first use; a real MURA copy is validated).
2. For each chapter of ``_toc.yml`` that is a notebook: compute its key from its source, its
   parameters, the library's source and the data manifest.  If the key matches the last
   successful execution, reuse it; otherwise convert it with jupytext, execute it with
   papermill, and present it (run-configuration box on top, provenance box at the end).
   The first failing chapter stops the build: its name, cell and traceback are printed and
   the failed notebook is kept in ``build/failed/``.
3. Stage the executed notebooks with the book's configuration and a generated status page,
   run ``jupyter-book build -W -n --keep-going``, and only if that is clean publish the HTML
   to ``_build/html`` (the previous good HTML stays until then).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import yaml

from .runs import atomic_write_text

PIPELINE_VERSION = 1
AUTOMATIC_PARAMETERS = ("profile", "data_root", "data_source", "runs_dir", "cache_dir")


class BuildError(RuntimeError):
    """A build step failed; the message says which and why."""


def project_root(start: Path | None = None) -> Path:
    """The folder holding ``_toc.yml`` (the current folder or one above it)."""
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / "_toc.yml").exists() and (folder / "params").is_dir():
            return folder
    raise BuildError(f"No thesis project (with _toc.yml and params/) found at or above {here}.")


# --- profiles --------------------------------------------------------------------------------


@dataclass
class Profile:
    name: str
    description: str
    data: dict
    parameters: dict = field(default_factory=dict)
    chapters: dict = field(default_factory=dict)

    def chapter_parameters(self, chapter: str) -> dict:
        return {**self.parameters, **self.chapters.get(chapter, {})}


def load_profile(root: Path, name: str) -> Profile:
    path = root / "params" / f"{name}.yaml"
    if not path.exists():
        available = sorted(p.stem for p in (root / "params").glob("*.yaml"))
        raise BuildError(f"Unknown profile {name!r}: {path} does not exist. Available: {', '.join(available)}.")
    values = yaml.safe_load(path.read_text()) or {}
    unknown = set(values) - {"description", "data", "parameters", "chapters"}
    if unknown:
        raise BuildError(f"{path}: unknown sections {sorted(unknown)}.")
    data = values.get("data") or {}
    if data.get("source") not in ("synthetic", "mura"):
        raise BuildError(f"{path}: data.source must be 'synthetic' or 'mura'.")
    return Profile(
        name=name,
        description=values.get("description", ""),
        data=data,
        parameters=values.get("parameters") or {},
        chapters=values.get("chapters") or {},
    )


def resolve_data(root: Path, profile: Profile, data: str | None = None, *, progress: bool = True) -> tuple[str, Path]:
    """``(source, MURA-v1.1 folder)`` for a build, generating synthetic data when needed."""
    from .dataset import DATA_ENV_VAR, resolve_data_root

    if data or profile.data["source"] == "mura":
        path = data or profile.data.get("path") or os.environ.get(DATA_ENV_VAR)
        if not path:
            raise BuildError(
                f"Profile {profile.name!r} runs on real MURA-v1.1: pass --data /path/to/MURA-v1.1 "
                f"(make book PROFILE={profile.name} DATA=...) or set ${DATA_ENV_VAR}."
            )
        return "mura", resolve_data_root(path)
    from .synthetic import generate_synthetic_mura

    spec = {k: profile.data[k] for k in ("scale", "image_size", "seed") if k in profile.data}
    folder = root / "data" / "synthetic" / "-".join(f"{k}{v}" for k, v in sorted(spec.items()))
    # The folder belongs to the build: a dataset from older generator code is replaced.
    return "synthetic", generate_synthetic_mura(folder, progress=progress, overwrite=True, **spec)


# --- chapters and hashing --------------------------------------------------------------------


def toc_entries(root: Path) -> list[str]:
    """Every document of ``_toc.yml`` in reading order (paths without extension)."""
    toc = yaml.safe_load((root / "_toc.yml").read_text())
    entries = [toc["root"]]

    def walk(items):
        for item in items or []:
            if "file" in item:
                entries.append(item["file"])
            walk(item.get("sections"))
            walk(item.get("chapters"))

    walk(toc.get("parts"))
    walk(toc.get("chapters"))
    missing = [entry for entry in entries if not (root / f"{entry}.md").exists()]
    if missing:
        raise BuildError(f"_toc.yml lists documents that do not exist: {', '.join(f'{m}.md' for m in missing)}.")
    return entries


def is_notebook(source: Path) -> bool:
    head = source.read_text()[:600]
    return head.startswith("---") and "kernelspec:" in head


def chapter_name(entry: str) -> str:
    return Path(entry).name


def library_hash() -> str:
    digest = hashlib.sha256()
    for path in sorted(Path(__file__).parent.glob("*.py")):
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def _sha(value) -> str:
    if isinstance(value, bytes):
        return hashlib.sha256(value).hexdigest()[:16]
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()[:16]


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

    def __init__(self, root: Path, profile: Profile, *, data: str | None = None, progress: bool = True, out=sys.stdout):
        self.root = root
        self.profile = profile
        self.data_override = data
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
            from .dataset import manifest_hash

            source, path = resolve_data(self.root, self.profile, self.data_override, progress=self.progress)
            self._data = (source, path, manifest_hash(path))
        return self._data

    def automatic_parameters(self) -> dict:
        source, path, _ = self.data
        return {
            "profile": self.profile.name,
            "data_root": str(path),
            "data_source": source,
            "runs_dir": str(self.root / "runs"),
            "cache_dir": str(self.root / "data" / "cache"),
        }

    # planning ----------------------------------------------------------------------------
    def plan(self, entry: str, overrides: dict | None = None) -> ChapterPlan:
        import papermill

        source = self.root / f"{entry}.md"
        if not source.exists():
            raise BuildError(f"Chapter {entry!r} is listed in _toc.yml but {source} does not exist.")
        declared = papermill.inspect_notebook(str(self._converted(source)))
        wanted = self.profile.chapter_parameters(chapter_name(entry)) | (overrides or {})
        unknown = set(wanted) - set(declared) - set(self.profile.parameters)
        if unknown:
            raise BuildError(
                f"Chapter {chapter_name(entry)} has no parameters {sorted(unknown)}; "
                f"it declares {sorted(declared)}."
            )
        parameters = {k: v for k, v in (self.automatic_parameters() | wanted).items() if k in declared}
        parts = {
            "source": _sha(source.read_bytes()),
            "parameters": _sha(parameters),
            "library": library_hash(),
            "data": self.data[2],
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
        from papermill.exceptions import PapermillExecutionError

        output.parent.mkdir(parents=True, exist_ok=True)
        temporary = output.with_name(f".{output.stem}.partial.ipynb")
        environment = {
            "TF_CPP_MIN_LOG_LEVEL": "3",
            "PYTHONWARNINGS": "ignore",
            "MURA_RUNS": str(self.root / "runs"),
            "MPLBACKEND": "module://matplotlib_inline.backend_inline",
        }
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
            )
        except PapermillExecutionError as error:
            self.failed_dir.mkdir(parents=True, exist_ok=True)
            kept = self.failed_dir / f"{plan.name}.ipynb"
            if temporary.exists():
                os.replace(temporary, kept)
            cell_source = error.source or ""
            traceback = "\n".join(error.traceback)
            raise BuildError(
                f"Chapter {plan.name} ({plan.source.relative_to(self.root)}) failed in cell "
                f"{error.cell_index}:\n{_indent(cell_source)}\n\n{_strip_ansi(traceback)}\n\n"
                f"The executed notebook with the error is kept at {kept}."
            ) from None
        finally:
            for key, value in previous.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value
        finished = datetime.now(timezone.utc)
        record = {
            "chapter": plan.name,
            "started": started.isoformat(timespec="seconds"),
            "finished": finished.isoformat(timespec="seconds"),
            "seconds": round((finished - started).total_seconds(), 1),
            "parameters": plan.parameters,
            "parts": plan.parts,
            "profile": self.profile.name,
            "commit": git_commit(self.root),
            "environment": build_environment(),
        }
        from .presentation import present_notebook

        present_notebook(temporary, record, data_source=self.data[0])
        os.replace(temporary, output)
        return record

    def run_chapters(self, entries: list[str], *, force: bool = False) -> list[dict]:
        # A build killed mid-chapter leaves only a temporary file: remove it, re-run that chapter.
        for stale in self.executed_dir.glob(".*.partial.ipynb"):
            stale.unlink()
        records = []
        notebooks = [e for e in entries if is_notebook(self.root / f"{e}.md")]
        for number, entry in enumerate(notebooks, start=1):
            plan = self.plan(entry)
            reasons = ["forced"] if force else self.why_stale(plan)
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

    # rendering ---------------------------------------------------------------------------
    def stage(self, entries: list[str], records: list[dict]) -> Path:
        from .presentation import status_page

        staging = self.work / "book" / self.profile.name
        if staging.exists():
            # Keep Sphinx's doctrees of the last render (incremental); replace the sources.
            for child in staging.iterdir():
                if child.name != "_build":
                    shutil.rmtree(child) if child.is_dir() else child.unlink()
        staging.mkdir(parents=True, exist_ok=True)
        for name in ("_config.yml", "_toc.yml", "references.bib"):
            if (self.root / name).exists():
                shutil.copy2(self.root / name, staging / name)
        if (self.root / "chapters" / "images").is_dir():
            shutil.copytree(self.root / "chapters" / "images", staging / "chapters" / "images")
        for entry in entries:
            source = self.root / f"{entry}.md"
            target = staging / entry
            target.parent.mkdir(parents=True, exist_ok=True)
            if is_notebook(source):
                shutil.copy2(self.executed_dir / f"{chapter_name(entry)}.ipynb", target.with_suffix(".ipynb"))
            elif chapter_name(entry) == "status":
                target.with_suffix(".md").write_text(status_page(records, self.profile, self.data[0], self.data[1]))
            else:
                shutil.copy2(source, target.with_suffix(".md"))
        from .frontmatter import stage_front_matter

        stage_front_matter(staging)  # the word count, shown in the front matter
        return staging

    def render(self, staging: Path) -> Path:
        """Run jupyter-book; publish to ``_build/html`` only if the build is clean."""
        command = [
            jupyter_book_command(), "build", str(staging),
            "--path-output", str(staging), "-W", "-n", "--keep-going", "--quiet",
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

    def build(self, *, force: bool = False) -> Path:
        entries = toc_entries(self.root)
        started = time.perf_counter()
        source, path, manifest = self.data
        self.say(f"Profile {self.profile.name!r} on {source} data at {path} (manifest {manifest})")
        records = self.run_chapters(entries, force=force)
        index = self.render(self.stage(entries, records))
        self.say(f"Built in {time.perf_counter() - started:.0f}s. Open {index}")
        return index


def jupyter_book_command() -> str:
    """The ``jupyter-book`` script of this environment (beside this Python), else on PATH."""
    beside = Path(sys.executable).parent / "jupyter-book"
    if beside.exists():
        return str(beside)
    found = shutil.which("jupyter-book")
    if not found:
        raise BuildError("jupyter-book is not installed; run `make book`, which installs it.")
    return found


def git_commit(root: Path) -> str:
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root, capture_output=True, text=True).stdout.strip()
        return commit + ("+modified" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def build_environment() -> dict:
    """Versions and device, without importing TensorFlow in the build process."""
    from importlib import metadata

    from .device import cpu_name

    versions = {"python": sys.version.split()[0]}
    for name in ("tensorflow", "tensorflow-cpu", "keras", "jax", "torch", "numpy", "jupyter-book"):
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    gpus = []
    if shutil.which("nvidia-smi"):
        result = subprocess.run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"], capture_output=True, text=True)
        gpus = [line.strip() for line in result.stdout.splitlines() if line.strip()]
    device = f"{len(gpus)} x {gpus[0]}" if gpus else f"CPU: {cpu_name()} ({os.cpu_count()} cores)"
    return {"versions": versions, "device": device, "backend": os.environ.get("KERAS_BACKEND", "tensorflow")}


def _indent(text: str) -> str:
    return "\n".join("    " + line for line in text.splitlines())


def _strip_ansi(text: str) -> str:
    import re

    return re.sub(r"\x1b\[[0-9;]*m", "", text)


def run_single_chapter(root: Path, profile: Profile, chapter: str, overrides: dict, output: Path | None, *, data: str | None = None) -> Path:
    """Execute one chapter with changed parameters (``mura-thesis run``)."""
    builder = Builder(root, profile, data=data)
    entries = [e for e in toc_entries(root) if chapter_name(e) == chapter or e == chapter or f"{e}.md" == chapter]
    if not entries:
        names = [chapter_name(e) for e in toc_entries(root) if is_notebook(root / f"{e}.md")]
        raise BuildError(f"Unknown chapter {chapter!r}; chapters: {', '.join(names)}.")
    plan = builder.plan(entries[0], overrides)
    output = output or root / "build" / "run" / f"{plan.name}.ipynb"
    builder.say(f"Executing {plan.name} with {json.dumps({k: plan.parameters[k] for k in overrides if k in plan.parameters})} ...")
    record = builder.execute(plan, output)
    builder.say(f"Done in {record['seconds']:.1f}s. Executed notebook: {output}")
    return output
