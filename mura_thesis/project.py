"""The thesis project on disk: its root folder, its table of contents and the build's error type.

Imports nothing of the project, so that every other part of the book pipeline can use it.
"""

from __future__ import annotations

from pathlib import Path

import yaml

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
