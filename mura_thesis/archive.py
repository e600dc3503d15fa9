"""One file that holds a build as a reader and a re-builder need it: ``mura-thesis archive``.

The archive is a zip file, ``_build/mura-thesis-<profile>-<commit>.zip`` by default, whose one
folder holds:

- ``published/``: what the build published: the HTML thesis (``html/``), the PDF and its LaTeX
  source bundle when ``make pdf`` made them, and the results manifest (``results.json``);
- every run of the build's experiment plan: its configuration, training history, predictions,
  metrics and environment, in ``runs/`` (a run store the book can be rebuilt from) when the
  weights are included (``--with-weights``), else in ``records/`` (a record: without weights a
  rebuild trains the runs again);
- the source the build ran: the chapters, ``params/``, ``_config.yml``, ``_toc.yml``, the
  bibliography, the ``mura_lib`` and ``mura_thesis`` packages and the project's files (``pyproject.toml``, README,
  Makefile, ``environment.yml``, licence and citation files);
- ``requirements.lock.txt``: every package of the environment that built it, at its exact version;
- ``ARCHIVE.md``: what is inside and how to rebuild from it; ``SHA256SUMS``: a checksum of every
  file.

It never holds MURA images or MURA's CSV files: the data folder is not archived, and before the
archive is written every member is checked (:func:`forbidden_member`); the build is refused
otherwise.  Figures of the thesis that show radiographs are part of the published HTML and PDF.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import importlib.metadata
import json
import platform
import re
import zipfile
from pathlib import Path, PurePosixPath

from .project import BuildError

ARCHIVE_README = "ARCHIVE.md"
BOOK_FILES = ("_config.yml", "_toc.yml", "references.bib", "chapters", "params")
PROJECT_FILES = (
    "pyproject.toml",
    "README.md",
    "Makefile",
    "environment.yml",
    "LICENSE",
    "CITATION.cff",
    ".zenodo.json",
    ".ci/run",
)
RECORD_FILES = ("run.json", "config.json", "environment.json", "history.csv", "predictions.csv", "metrics.json")
WEIGHTS_FILE = "model.weights.h5"
MURA_CSVS = {
    f"{split}_{kind}.csv" for split in ("train", "valid", "test") for kind in ("image_paths", "labeled_studies")
}
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".npy", ".npz", ".dcm"}
# A MURA image path: .../XR_WRIST/patient00001/study1_positive/image1.png
MURA_PATH = re.compile(r"XR_[A-Z]+/patient\d+/study\d+_(positive|negative)", re.I)
SKIPPED = {"__pycache__", ".ipynb_checkpoints", ".pytest_cache"}


def forbidden_member(name: str) -> str | None:
    """Why ``name`` (a path inside the archive) may not be archived, or None.

    MURA's files are the dataset's CSVs (by name), anything in a MURA study folder, any file of a
    ``MURA-v1.1`` folder, and image or array files outside the published thesis (whose figures
    are rendered by the build)."""
    path = PurePosixPath(name)
    parts = path.parts[1:]  # below the archive's top folder
    if path.name.lower() in MURA_CSVS:
        return "a MURA CSV file"
    if any(part.lower() == "mura-v1.1" for part in parts) or MURA_PATH.search(name):
        return "a file of a MURA-v1.1 folder"
    if path.suffix.lower() in IMAGE_SUFFIXES and parts[:1] != ("published",):
        return "an image or array file outside the published thesis"
    return None


def _walk(folder: Path):
    for path in sorted(folder.rglob("*")):
        if path.is_file() and not SKIPPED & set(path.relative_to(folder).parts):
            yield path


def _package_folders() -> list[Path]:
    """The library and the book's package, as installed (an editable install: the checkout)."""
    import mura_lib
    import mura_thesis

    return [Path(mura_lib.__file__).parent, Path(mura_thesis.__file__).parent]


def source_files(root: Path) -> dict[str, Path]:
    """``{path in the archive: file}``: the book's files, the two packages, and the
    project's files from the project root or, where it lacks them, beside the package."""
    files: dict[str, Path] = {}
    for name in BOOK_FILES:
        source = root / name
        if source.is_dir():
            files.update({path.relative_to(root).as_posix(): path for path in _walk(source)})
        elif source.is_file():
            files[name] = source
    packages = _package_folders()
    for package in packages:
        files.update({f"{package.name}/{path.relative_to(package).as_posix()}": path for path in _walk(package)})
    for name in PROJECT_FILES:
        for folder in (root, packages[0].parent):
            if (folder / name).is_file():
                files[name] = folder / name
                break
    return files


def lock_text() -> str:
    """Every installed distribution at its exact version (``name==version``), this project excepted."""
    pins = sorted(
        {
            f"{dist.metadata['Name']}=={dist.version}"
            for dist in importlib.metadata.distributions()
            if dist.metadata["Name"] and dist.metadata["Name"].lower() != "mura-thesis"
        },
        key=str.lower,
    )
    header = (
        f"# The environment that built this archive: Python {platform.python_version()} on "
        f"{platform.system()} {platform.machine()}.\n# Install with: pip install -r requirements.lock.txt && "
        "pip install --no-deps -e .\n"
    )
    return header + "\n".join(pins) + "\n"


def _plan_keys(root: Path, manifest: dict) -> dict[str, str]:
    """``{run name: key}`` of every run of the plan the build ran (its profile and settings)."""
    from .profiles import load_profile, plan_for_profile

    data = manifest.get("data") or {}
    plan = plan_for_profile(
        root,
        load_profile(root, manifest["profile"]),
        data["path"] if data.get("source") == "mura" else None,
        manifest.get("settings") or {},
        verbose="silent",
    )
    table = plan.describe()
    missing = table.loc[~table["stored"], "run"].tolist()
    if missing:
        raise BuildError(
            f"{len(missing)} runs of the build's plan are not in runs/ ({', '.join(missing[:5])}"
            f"{' ...' if len(missing) > 5 else ''}): build the book first (mura-thesis build "
            f"--profile {manifest['profile']})."
        )
    return dict(zip(table["run"], table["key"]))


def _readme(manifest: dict, *, with_weights: bool, runs: int, folder: str) -> str:
    profile = manifest["profile"]
    data = manifest.get("data") or {}
    real = data.get("source") == "mura"
    data_line = (
        "needs your own copy of MURA-v1.1 (it is not in this archive and may not be redistributed)"
        if real
        else "generates its synthetic data again, the same bytes as the archived build's"
    )
    rebuild = (
        f"The {runs} runs are in `runs/` with their weights, so the rebuild trains nothing: it executes "
        "the chapters on the stored runs and renders the book into `_build/`."
        if with_weights
        else f"The {runs} runs are recorded in `records/` without their weights (the archive was made without "
        "`--with-weights`), so a rebuild trains every run again, on this machine's numerics."
    )
    return f"""# Archive of the thesis build: profile `{profile}`, commit `{manifest.get("commit", "unknown")}`

Written {dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")} by `mura-thesis archive`.

## What is inside

- `published/`: the thesis as the build published it: `html/index.html` (open it in a browser),
  the PDF and its LaTeX source bundle `thesis-latex.zip` where the build made them, and
  `results.json`, the results manifest (every verdict and glued number, the settings, the data's
  manifest, the package versions).
- `{"runs" if with_weights else "records"}/KEY/`: each run of the experiment plan: `config.json`,
  `history.csv` (one row per epoch), `predictions.csv` (every image's probability), `metrics.json`,
  `environment.json` (packages, device, numerics){", `model.weights.h5`" if with_weights else ""}.
- The source that built it (`chapters/`, `params/`, `mura_lib/`, `mura_thesis/`, `_config.yml`, `pyproject.toml`, ...),
  `requirements.lock.txt` (the exact package versions) and `SHA256SUMS` (check with `sha256sum -c SHA256SUMS`).

There are no MURA images or MURA CSV files in this archive: the data folder is never archived,
and every file was checked before the archive was written. Figures of the thesis that show
radiographs are part of the rendered HTML and PDF{
        "; this build ran on real MURA-v1.1, so check the dataset's licence before depositing it publicly"
        if real
        else " (here, synthetic radiographs)"
    }.

## Rebuilding from it

    cd {folder}
    python3 -m venv .venv
    .venv/bin/pip install -r requirements.lock.txt && .venv/bin/pip install --no-deps -e .
    .venv/bin/mura-thesis build --profile {profile}{" --data /path/to/MURA-v1.1" if real else ""}

(`make book PROFILE={profile}` also works: it installs the current versions of the packages
instead of the locked ones.) The build {data_line}. {rebuild}

Then set the rebuild's conclusions beside the archived ones:

    .venv/bin/mura-thesis compare _build/results.json published/results.json

It lists every verdict of both builds (agree, one undetermined, flip) and exits 1 if a verdict
flips.
"""


def _published_pdf(latex: Path, manifest: dict, say) -> dict[str, Path]:
    """The PDF and its LaTeX bundle, if they show this build (the same profile and glued values)."""
    from .pdf import TARGET_NAME, pdf_identity

    pdf, identity = latex / f"{TARGET_NAME}.pdf", latex / f"{TARGET_NAME}.json"
    if not pdf.is_file():
        return {}
    shown = json.loads(identity.read_text()) if identity.is_file() else {}
    if shown.get("glued") != pdf_identity(manifest)["glued"]:
        say(
            f"Not archived: {pdf} shows another build than _build/results.json (profile "
            f"{shown.get('profile', 'unknown')!r}); `make pdf PROFILE={manifest['profile']}` makes this build's."
        )
        return {}
    files = {f"{TARGET_NAME}.pdf": pdf}
    if (latex / f"{TARGET_NAME}-latex.zip").is_file():
        files[f"{TARGET_NAME}-latex.zip"] = latex / f"{TARGET_NAME}-latex.zip"
    return files


# Weights, images and archives hardly compress: they are stored as they are.
STORED_SUFFIXES = {".h5", ".png", ".jpg", ".pdf", ".zip", ".woff", ".woff2"}


def _add(archive: zipfile.ZipFile, path: Path, name: str) -> str:
    """Write ``path`` into ``archive`` as ``name``; return its SHA-256, computed from the same
    read (a run's weights are read once, not once for the archive and again for the checksum)."""
    info = zipfile.ZipInfo.from_file(path, name)
    info.compress_type = zipfile.ZIP_STORED if path.suffix in STORED_SUFFIXES else zipfile.ZIP_DEFLATED
    digest = hashlib.sha256()
    with path.open("rb") as source, archive.open(info, "w", force_zip64=True) as target:
        for block in iter(lambda: source.read(1 << 20), b""):
            digest.update(block)
            target.write(block)
    return digest.hexdigest()


def write_archive(root: Path, output: Path | None = None, *, with_weights: bool = False, say=print) -> Path:
    """Write the archive of the last build of the project at ``root``; return its path."""
    from .manifest import MANIFEST_NAME

    published = root / "_build"
    manifest_path = published / MANIFEST_NAME
    html = published / "html"
    if not manifest_path.is_file() or not (html / "index.html").is_file():
        raise BuildError(f"No build to archive in {published}: run `mura-thesis build` first.")
    manifest = json.loads(manifest_path.read_text())
    commit = manifest.get("commit") or "unknown"
    from .build import git_commit

    now = git_commit(root)
    if "unknown" not in (commit, now) and commit != now:
        raise BuildError(
            f"The last build is of commit {commit} and the source is now {now}: build again "
            f"(make book PROFILE={manifest['profile']}) before archiving, so that the archive holds the "
            "source that made its results."
        )
    folder = f"mura-thesis-{manifest['profile']}-{commit}"
    output = Path(output) if output else published / f"{folder}.zip"
    if output.is_dir():
        raise BuildError(f"{output} is a folder; give the archive's file name, e.g. {output / (folder + '.zip')}.")

    members: dict[str, Path] = {f"published/{MANIFEST_NAME}": manifest_path}
    members.update({f"published/html/{p.relative_to(html).as_posix()}": p for p in _walk(html)})
    for name, path in _published_pdf(published / "latex", manifest, say).items():
        members[f"published/{name}"] = path
    runs = _plan_keys(root, manifest)
    store = "runs" if with_weights else "records"
    for key in sorted(set(runs.values())):
        names = RECORD_FILES + ((WEIGHTS_FILE,) if with_weights else ())
        members.update({f"{store}/{key}/{name}": root / "runs" / key / name for name in names})
    members.update(source_files(root))
    problems = [f"{name} ({why})" for name in members if (why := forbidden_member(f"{folder}/{name}"))]
    if problems:
        raise BuildError(
            "The archive would hold files that may not leave this machine; nothing was written:\n  "
            + "\n  ".join(problems[:20])
        )

    texts = {
        ARCHIVE_README: _readme(manifest, with_weights=with_weights, runs=len(set(runs.values())), folder=folder),
        "requirements.lock.txt": lock_text(),
    }
    sums = [f"{hashlib.sha256(text.encode()).hexdigest()}  {name}" for name, text in texts.items()]
    output.parent.mkdir(parents=True, exist_ok=True)
    partial = output.with_name(output.name + ".partial")
    say(f"Archiving {len(members)} files ({len(set(runs.values()))} runs) into {output} ...")
    with zipfile.ZipFile(partial, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=6) as archive:
        for name, text in texts.items():
            archive.writestr(f"{folder}/{name}", text)
        for name, path in sorted(members.items()):
            sums.append(f"{_add(archive, path, f'{folder}/{name}')}  {name}")
        archive.writestr(f"{folder}/SHA256SUMS", "\n".join(sorted(sums, key=lambda line: line[66:])) + "\n")
    partial.replace(output)
    size = output.stat().st_size
    say(f"Archive written: {output} ({size / 1e6:.1f} MB, {len(members) + 3} files)")
    return output


def check_archive(path: Path) -> list[str]:
    """The members of an archive that :func:`forbidden_member` refuses (empty if none)."""
    with zipfile.ZipFile(path) as archive:
        return [name for name in archive.namelist() if forbidden_member(name)]
