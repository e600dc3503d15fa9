"""Citation metadata: CITATION.cff and .zenodo.json are written from _config.yml and
pyproject.toml, valid against their schemas, and never out of date in the repository."""

from __future__ import annotations

import json
import shutil

import jsonschema
import pytest
import yaml

from mura_thesis import citation
from mura_thesis.project import BuildError

from .conftest import REPO

# The Citation File Format's own schema (version 1.2.0, CC-BY-4.0), as cffconvert ships it.
CFF_SCHEMA = json.loads((REPO / "tests" / "data" / "cff-1.2.0.schema.json").read_text())

# What Zenodo's deposit API documents for the metadata of a publication (developers.zenodo.org,
# "Deposit metadata"): the required fields, their vocabularies and formats.
ZENODO_SCHEMA = {
    "type": "object",
    "required": ["upload_type", "publication_type", "title", "creators", "description", "access_right"],
    "properties": {
        "upload_type": {"enum": ["publication", "poster", "presentation", "dataset", "image", "video", "software"]},
        "publication_type": {
            "enum": ["book", "section", "conferencepaper", "article", "patent", "preprint", "report", "thesis"]
        },
        "title": {"type": "string", "minLength": 1},
        "creators": {
            "type": "array",
            "minItems": 1,
            "items": {
                "type": "object",
                "required": ["name"],
                "properties": {
                    "name": {"type": "string", "pattern": r"^[^,]+, [^,]+$"},
                    "affiliation": {"type": "string"},
                },
            },
        },
        "description": {"type": "string", "minLength": 1},
        "publication_date": {"type": "string", "format": "date"},
        "access_right": {"enum": ["open", "embargoed", "restricted", "closed"]},
        "license": {"type": "string"},
        "keywords": {"type": "array", "items": {"type": "string"}},
        "version": {"type": "string"},
        "thesis_university": {"type": "string"},
        "language": {"type": "string", "pattern": "^[a-z]{3}$"},
    },
    "additionalProperties": False,
}


def _validate(document, schema):
    jsonschema.Draft7Validator(schema, format_checker=jsonschema.Draft7Validator.FORMAT_CHECKER).validate(document)


def test_the_repository_citation_files_are_up_to_date():
    assert citation.stale_files(REPO) == [], "run `mura-thesis citation` after editing _config.yml or pyproject.toml"


def test_citation_cff_is_valid_and_cites_the_thesis():
    document = yaml.safe_load((REPO / "CITATION.cff").read_text())
    _validate(document, CFF_SCHEMA)
    config = yaml.safe_load((REPO / "_config.yml").read_text())
    assert document["title"] == document["preferred-citation"]["title"] == config["title"]
    given, family = document["authors"][0]["given-names"], document["authors"][0]["family-names"]
    assert f"{given} {family}" == config["author"]
    assert document["preferred-citation"]["type"] == "thesis"
    # The schema is strict enough to fail on a mistake of the kind a hand edit makes.
    with pytest.raises(jsonschema.ValidationError):
        _validate(dict(document, **{"date-released": "December 2026"}), CFF_SCHEMA)
    with pytest.raises(jsonschema.ValidationError):
        _validate({k: v for k, v in document.items() if k != "authors"}, CFF_SCHEMA)


def test_zenodo_json_is_valid_and_matches_the_citation():
    document = json.loads((REPO / ".zenodo.json").read_text())
    _validate(document, ZENODO_SCHEMA)
    cff = yaml.safe_load((REPO / "CITATION.cff").read_text())
    assert document["title"] == cff["title"]
    assert document["publication_date"] == cff["date-released"]
    assert document["creators"][0]["name"] == f"{cff['authors'][0]['family-names']}, {cff['authors'][0]['given-names']}"
    with pytest.raises(jsonschema.ValidationError):
        _validate(dict(document, creators=[{"name": "Michael Harrison"}]), ZENODO_SCHEMA)


@pytest.fixture
def project(tmp_path):
    for name in ("_config.yml", "pyproject.toml", "CITATION.cff", ".zenodo.json"):
        shutil.copy2(REPO / name, tmp_path / name)
    (tmp_path / "_toc.yml").write_text("root: index\n")
    (tmp_path / "params").mkdir()
    return tmp_path


def test_a_changed_title_makes_both_files_stale_until_written(project, monkeypatch, capsys):
    from mura_thesis import cli

    config = project / "_config.yml"
    config.write_text(config.read_text().replace("title: ", "title: A new ", 1))
    assert sorted(citation.stale_files(project)) == [".zenodo.json", "CITATION.cff"]
    monkeypatch.chdir(project)
    assert cli.main(["citation", "--check"]) == 1
    assert "run `mura-thesis citation`" in capsys.readouterr().err
    assert cli.main(["citation"]) == 0
    assert citation.stale_files(project) == []
    assert yaml.safe_load((project / "CITATION.cff").read_text())["title"].startswith("A new ")
    assert cli.main(["citation", "--check"]) == 0


def test_a_date_without_a_day_is_explained(project):
    config = project / "_config.yml"
    config.write_text(config.read_text().replace('date: "3 December 2026"', 'date: "December 2026"'))
    with pytest.raises(BuildError, match="not a full date"):
        citation.metadata(project)
