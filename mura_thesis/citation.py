"""How the thesis is cited and deposited: ``CITATION.cff`` and ``.zenodo.json``, written from the
project's own settings so that each fact is written once.

- ``_config.yml``: the title, the author, and in ``parse.myst_substitutions`` the submission
  ``date`` (e.g. ``3 December 2026``, as the title page prints it), the ``degree`` and the
  ``department`` (``Department, Institution``);
- ``pyproject.toml``: the version, the licence, the one-line description and the keywords.

``mura-thesis citation`` writes both files at the project's root; ``mura-thesis citation
--check`` (and the tests) fail when either differs from what those settings give.  GitHub reads
``CITATION.cff`` ("Cite this repository"); Zenodo reads ``.zenodo.json`` when it archives a
release of the repository.
"""

from __future__ import annotations

import datetime as dt
import json
import sys
from pathlib import Path

import yaml

from .project import BuildError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

CFF_NAME = "CITATION.cff"
ZENODO_NAME = ".zenodo.json"
DATE_FORMATS = ("%d %B %Y", "%Y-%m-%d")


def _person(name: str) -> tuple[str, str]:
    """(given names, family name) of ``Given Names Family``."""
    *given, family = name.split()
    if not given:
        raise BuildError(f"_config.yml: author {name!r} needs a given name and a family name.")
    return " ".join(given), family


def metadata(root: Path) -> dict:
    """The facts both files are written from, read from ``_config.yml`` and ``pyproject.toml``."""
    config = yaml.safe_load((root / "_config.yml").read_text())
    project = tomllib.loads((root / "pyproject.toml").read_text())["project"]
    values = config.get("parse", {}).get("myst_substitutions", {})
    missing = [key for key in ("title", "author") if not config.get(key)]
    missing += [f"parse.myst_substitutions.{key}" for key in ("date", "degree", "department") if not values.get(key)]
    if missing:
        raise BuildError(f"_config.yml: the citation needs {', '.join(missing)}; add them.")
    for form in DATE_FORMATS:
        try:
            date = dt.datetime.strptime(str(values["date"]), form).date()
            break
        except ValueError:
            continue
    else:
        raise BuildError(
            f"_config.yml: parse.myst_substitutions.date {values['date']!r} is not a full date; "
            "write it as, e.g., 3 December 2026 (a citation needs the day)."
        )
    department, _, institution = str(values["department"]).partition(", ")
    authors = [_person(name.strip()) for name in str(config["author"]).replace(" and ", ",").split(",") if name.strip()]
    licence = project.get("license", {})
    return {
        "title": config["title"],
        "authors": authors,
        "date": date,
        "degree": values["degree"],
        "department": department,
        "institution": institution or department,
        "version": project["version"],
        "licence": licence.get("text") if isinstance(licence, dict) else licence,
        "description": project.get("description", ""),
        "keywords": list(project.get("keywords", [])),
    }


def _thesis_type(degree: str) -> str:
    first = degree.split()[0].lower()
    return {"master": "Master's thesis", "doctor": "Doctoral thesis", "bachelor": "Bachelor's thesis"}.get(
        first, "Thesis"
    )


def citation_cff(meta: dict) -> str:
    """``CITATION.cff`` (Citation File Format 1.2.0): the repository, and the thesis as the
    preferred citation."""
    authors = [{"given-names": given, "family-names": family} for given, family in meta["authors"]]
    institution = {"name": meta["institution"]}
    document = {
        "cff-version": "1.2.0",
        "message": "If you use this thesis or its code, please cite the thesis as below.",
        "type": "software",
        "title": meta["title"],
        "authors": authors,
        "version": meta["version"],
        "date-released": meta["date"].isoformat(),
        "license": meta["licence"],
        "abstract": meta["description"],
        "keywords": meta["keywords"],
        "preferred-citation": {
            "type": "thesis",
            "title": meta["title"],
            "authors": [dict(author, affiliation=meta["institution"]) for author in authors],
            "thesis-type": _thesis_type(meta["degree"]),
            "institution": institution,
            "department": meta["department"],
            "year": meta["date"].year,
            "month": meta["date"].month,
        },
    }
    if not document["keywords"]:
        del document["keywords"]
    header = "# Written by `mura-thesis citation` from _config.yml and pyproject.toml: edit those, not this file.\n"
    return header + yaml.safe_dump(document, sort_keys=False, allow_unicode=True, width=100)


def zenodo_json(meta: dict) -> str:
    """``.zenodo.json``: the deposit's metadata as Zenodo reads it from a repository release."""
    document = {
        "upload_type": "publication",
        "publication_type": "thesis",
        "title": meta["title"],
        "creators": [
            {"name": f"{family}, {given}", "affiliation": meta["institution"]} for given, family in meta["authors"]
        ],
        "description": f"{meta['description']} {_thesis_type(meta['degree'])} ({meta['degree']}), "
        f"{meta['department']}, {meta['institution']}.",
        "publication_date": meta["date"].isoformat(),
        "version": meta["version"],
        "access_right": "open",
        "license": meta["licence"],
        "keywords": meta["keywords"],
        "thesis_university": meta["institution"],
        "language": "eng",
    }
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


def expected_files(root: Path) -> dict[str, str]:
    meta = metadata(root)
    return {CFF_NAME: citation_cff(meta), ZENODO_NAME: zenodo_json(meta)}


def _stale(root: Path, expected: dict[str, str]) -> list[str]:
    return [name for name, text in expected.items() if not (root / name).is_file() or (root / name).read_text() != text]


def stale_files(root: Path) -> list[str]:
    """The citation files that are missing or differ from what the settings give."""
    return _stale(root, expected_files(root))


def write_files(root: Path) -> list[str]:
    """Write the citation files that are stale; return their names."""
    expected = expected_files(root)
    stale = _stale(root, expected)
    for name in stale:
        (root / name).write_text(expected[name])
    return stale
