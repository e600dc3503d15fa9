"""``mura-thesis archive``: one file with the published thesis, the runs, the source and the
package lock; never MURA's images or CSVs; the book rebuilt from it without training."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import zipfile

import pytest

from mura_thesis import archive
from mura_thesis.project import BuildError

from .conftest import REPO


@pytest.mark.parametrize(
    "name, refused",
    [
        ("a/published/html/_images/figure.png", False),
        ("a/published/results.json", False),
        ("a/runs/0123/predictions.csv", False),
        ("a/chapters/03_data.md", False),
        ("a/mura_thesis/static/thesis.css", False),
        ("a/chapters/train_image_paths.csv", True),
        ("a/records/valid_labeled_studies.csv", True),
        ("a/MURA-v1.1/README.txt", True),
        ("a/x/XR_WRIST/patient00001/study1_positive/notes.txt", True),
        ("a/chapters/example.png", True),
        ("a/runs/0123/cache.npy", True),
    ],
)
def test_forbidden_members(name, refused):
    assert (archive.forbidden_member(name) is not None) == refused


def test_source_holds_the_book_the_package_and_the_project_files():
    files = archive.source_files(REPO)
    for name in (
        "_config.yml",
        "chapters/05_1_baseline.md",
        "params/smoke.yaml",
        "mura_thesis/plan.py",
        "pyproject.toml",
    ):
        assert name in files, name
    assert not any("__pycache__" in name or name.startswith(("data/", "runs/", "_build/")) for name in files)


def test_lock_pins_every_package_at_its_version():
    import keras

    lock = archive.lock_text()
    assert f"keras=={keras.__version__}" in lock.lower()
    assert "mura-thesis" not in lock.lower()


def _fake_build(tmp_path):
    project = tmp_path / "thesis"
    project.mkdir()
    for name in ("_config.yml", "_toc.yml", "references.bib", "chapters", "params"):
        source = REPO / name
        (shutil.copytree if source.is_dir() else shutil.copy2)(source, project / name)
    (project / "_build" / "html").mkdir(parents=True)
    (project / "_build" / "html" / "index.html").write_text("<html></html>")
    (project / "_build" / "results.json").write_text(json.dumps({"profile": "smoke", "commit": "abc1234"}))
    return project


def test_archive_refuses_mura_files_and_writes_nothing(tmp_path, monkeypatch):
    project = _fake_build(tmp_path)
    (project / "chapters" / "train_image_paths.csv").write_text("MURA-v1.1/train/XR_WRIST/...\n")
    monkeypatch.setattr(archive, "_plan_keys", lambda root, manifest: {})
    with pytest.raises(BuildError, match=r"train_image_paths.csv \(a MURA CSV file\)"):
        archive.write_archive(project, tmp_path / "out.zip", say=lambda *_: None)
    assert not list(tmp_path.glob("out.zip*"))


def test_archive_without_a_build_says_so(tmp_path):
    project = _fake_build(tmp_path)
    (project / "_build" / "results.json").unlink()
    with pytest.raises(BuildError, match="run `mura-thesis build` first"):
        archive.write_archive(project, say=lambda *_: None)


@pytest.mark.slow
def test_archive_round_trip_rebuilds_the_book_without_training(smoke_book, tmp_path):
    from .test_build import mura_thesis

    project, _ = smoke_book
    output = tmp_path / "thesis.zip"
    result = mura_thesis(project, "archive", "--with-weights", "-o", str(output))
    assert str(output) in result.stdout
    assert archive.check_archive(output) == []
    with zipfile.ZipFile(output) as bundle:
        names = bundle.namelist()
        (folder,) = {name.split("/", 1)[0] for name in names}
        members = {name.split("/", 1)[1] for name in names}
        bundle.extractall(tmp_path / "unpacked")
    for name in (
        "ARCHIVE.md",
        "SHA256SUMS",
        "requirements.lock.txt",
        "published/html/index.html",
        "published/results.json",
        "mura_thesis/plan.py",
        "chapters/05_1_baseline.md",
        "params/smoke.yaml",
    ):
        assert name in members, name
    assert not any(name.startswith(("data/", "build/", "_build/")) for name in members)
    manifest = json.loads((project / "_build" / "results.json").read_text())
    keys = set(manifest["runs"].values())
    assert keys and all(f"runs/{key}/model.weights.h5" in members for key in keys)

    rebuilt = tmp_path / "unpacked" / folder
    for line in (rebuilt / "SHA256SUMS").read_text().splitlines():
        digest, name = line.split("  ", 1)
        assert hashlib.sha256((rebuilt / name).read_bytes()).hexdigest() == digest, name
    readme = (rebuilt / "ARCHIVE.md").read_text()
    assert "mura-thesis build --profile smoke" in readme and "no MURA images" in readme

    weights = {path: path.stat().st_mtime_ns for path in (rebuilt / "runs").glob("*/model.weights.h5")}
    result = mura_thesis(rebuilt, "build", "--profile", "smoke")
    assert re.search(r"All \d+ runs are stored in .*; nothing to train", result.stdout), result.stdout[-3000:]
    assert {path: path.stat().st_mtime_ns for path in (rebuilt / "runs").glob("*/model.weights.h5")} == weights
    assert (rebuilt / "_build" / "html" / "index.html").is_file()
    # The rebuild reaches the archived build's conclusions and numbers.
    comparison = mura_thesis(rebuilt, "compare", "_build/results.json", "published/results.json", "--json")
    counts = json.loads(comparison.stdout)["counts"]
    assert counts["flips"] == 0 and counts["agree"] > 0, counts
    again = json.loads((rebuilt / "_build" / "results.json").read_text())
    assert again["comparisons"] == manifest["comparisons"]


def test_a_pdf_is_archived_only_with_the_results_it_shows(tmp_path):
    from mura_thesis.pdf import pdf_identity

    manifest = {"profile": "demo", "commit": "abc", "glued": {"05_1_baseline": {"baseline-auroc": "0.812"}}}
    latex = tmp_path / "latex"
    latex.mkdir()
    (latex / "thesis.pdf").write_bytes(b"%PDF-1.5")
    said = []
    assert archive._published_pdf(latex, manifest, said.append) == {}  # no record of its build
    (latex / "thesis.json").write_text(json.dumps(pdf_identity(dict(manifest, glued={"x": {"y": "1"}}))))
    assert archive._published_pdf(latex, manifest, said.append) == {}  # another build's numbers
    assert "make pdf PROFILE=demo" in said[-1]
    (latex / "thesis.json").write_text(json.dumps(pdf_identity(manifest)))
    assert archive._published_pdf(latex, manifest, said.append) == {"thesis.pdf": latex / "thesis.pdf"}


def test_archive_refuses_a_build_of_other_source(tmp_path, monkeypatch):
    from mura_thesis import build

    project = _fake_build(tmp_path)  # its results manifest says commit abc1234
    monkeypatch.setattr(build, "git_commit", lambda root: "def5678")
    with pytest.raises(BuildError, match="commit abc1234 and the source is now def5678: build again"):
        archive.write_archive(project, tmp_path / "out.zip", say=lambda *_: None)
