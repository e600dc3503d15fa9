"""End to end: the whole book on the smoke profile, caching, failures, parameter round trip."""

from __future__ import annotations

import html as html_module
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from .conftest import REPO

pytestmark = pytest.mark.slow
CLI = [sys.executable, "-m", "mura_thesis.cli"]
PROJECT_FILES = ["_config.yml", "_toc.yml", "references.bib", "chapters", "params"]


def mura_thesis(project: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    environment = os.environ | {"TF_CPP_MIN_LOG_LEVEL": "3"}
    result = subprocess.run([*CLI, *args], cwd=project, capture_output=True, text=True, env=environment)
    if check and result.returncode != 0:
        raise AssertionError(f"mura-thesis {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
    return result


def copy_project(target: Path) -> Path:
    target.mkdir(parents=True, exist_ok=True)
    for name in PROJECT_FILES:
        source = REPO / name
        if source.is_dir():
            shutil.copytree(source, target / name)
        elif source.exists():
            shutil.copy2(source, target / name)
    return target


def html(project: Path, page: str) -> str:
    return (project / "_build" / "html" / "chapters" / f"{page}.html").read_text()


def test_book_builds_and_says_where(smoke_book):
    project, result = smoke_book
    index = project / "_build" / "html" / "index.html"
    assert index.exists()
    assert str(index) in result.stdout
    # The terminal shows the build's progress and result, not what native code and kernels print
    # (TensorFlow's C++ start-up lines, ipykernel's shutdown noise): that goes to build/logs/.
    terminal = result.stdout + result.stderr
    for noise in ("oneDNN", "absl::InitializeLog", "Task was destroyed", "port.cc"):
        assert noise not in terminal, noise
    logs = project / "build" / "logs"
    assert (logs / "native.log").is_file() and (logs / "smoke" / "05_1_baseline.log").is_file()


def test_results_page_has_figure_table_and_glued_number(smoke_book):
    project, _ = smoke_book
    page = html(project, "05_1_baseline")
    # A seaborn figure rendered as an image, numbered.
    assert re.search(r'<img[^>]+src="[^"]+\.png"', page)
    assert "Fig. " in page or "Figure " in page
    # The pandas table of metrics per study type, the types named in words.
    assert "<table" in page and ">wrist<" in page and "overall" in page and "XR_WRIST" not in page
    # The glued AUROC equals the stored run's metric, formatted to 3 decimals.
    from mura_lib.runs import RunStore

    runs = RunStore(project / "runs").list()
    baseline = runs[runs["name"].str.startswith("baseline (") & (runs["image_size"] == 32)]
    assert len(baseline) == 1
    run = {"auroc": float(baseline["auroc"].iloc[0])}
    match = re.search(r"study-level AUROC of\s*(?:<[^>]+>\s*)*([0-9]\.[0-9]{3})", page)
    assert match, "glued AUROC not found"
    assert match.group(1) == f"{run['auroc']:.3f}"


def test_no_noise_in_html(smoke_book):
    project, _ = smoke_book
    for page in (project / "_build" / "html" / "chapters").glob("*.html"):
        text = page.read_text()
        for noise in (
            "Traceback",
            "tensorflow/core",
            "absl::",
            "━━━━",
            "it/s]",
            "img/s]",
            "injected-parameters",
            "WARNING",
        ):
            assert noise not in text, f"{noise!r} in {page.name}"


def test_pages_carry_provenance_at_the_end(smoke_book):
    project, _ = smoke_book
    page = html(project, "05_1_baseline")
    assert "Run configuration" not in page
    assert "Provenance" in page and "settings changed from it: none" in page
    text = " ".join(re.sub(r"<[^>]+>", "", page).split())
    assert "Re-run: mura-thesis run 05_1_baseline --profile smoke" in text and "commit" in text
    assert page.index("Provenance") > page.rindex("tab-baseline-seed-calls")
    assert "tensorflow" in page.lower() and "keras" in page.lower()
    status = (project / "_build" / "html" / "chapters" / "status.html").read_text()
    assert "05_1_baseline" in status and "passed" in status


def test_rebuild_with_nothing_changed_reuses_every_chapter(smoke_book):
    project, _ = smoke_book
    result = mura_thesis(project, "build", "--profile", "smoke")
    assert "executing" not in result.stdout
    assert result.stdout.count("up to date") >= 5


def test_build_writes_its_results_manifest_also_from_reused_chapters(smoke_book):
    """``_build/results.json``: the runs, comparisons and glued values of the build; a rebuild
    that reuses every chapter writes the same results (from the chapters' stored state)."""
    from mura_lib.runs import RunStore
    from mura_thesis.manifest import compare_manifests, load_manifest

    project, _ = smoke_book
    first = load_manifest(project)  # _build/results.json
    assert first["format"] == 1 and first["profile"] == "smoke"
    assert first["runs"] and set(first["runs"].values()) <= set(RunStore(project / "runs").list()["key"])
    assert first["glued"]["05_1_baseline"] and all(
        isinstance(text, str) for values in first["glued"].values() for text in values.values()
    )
    assert first["comparisons"] and all(
        c["verdict"] in ("higher", "lower", "undetermined") for c in first["comparisons"].values()
    )
    assert first["settings"]["seeds"] and first["environment"]["numerics"]["threads"] >= 1
    assert "No reference build is kept for the smoke profile." in _page_text(project, "status")

    result = mura_thesis(project, "build", "--profile", "smoke")
    assert "executing" not in result.stdout and "Results of this build:" in result.stdout
    again = load_manifest(project)
    assert all(chapter["reused"] for chapter in again["chapters"].values())
    for section in ("runs", "comparisons", "metrics", "glued"):
        assert again[section] == first[section], section
    counts = compare_manifests(again, first)["counts"]
    assert counts["agree"] == counts["verdicts"] > 0 and counts["beyond"] == 0


def test_changed_prose_is_rendered_without_executing_anything(smoke_book):
    """A prose edit re-renders its page with the outputs of the last execution (the key covers
    the code cells only); a changed code cell re-executes that chapter alone."""
    project, _ = smoke_book
    source = project / "chapters" / "07_ethics.md"
    original = source.read_text()
    source.write_text(original + "\nA sentence added to test the cache.\n")
    baseline = project / "chapters" / "05_1_baseline.md"
    baseline.write_text(
        baseline.read_text().replace(
            "# Baseline performance\n", "# Baseline performance\n\nA sentence before the results.\n", 1
        )
    )
    status = mura_thesis(project, "status", "--profile", "smoke").stdout
    assert re.search(r"07_ethics\s+up to date", status) and re.search(r"05_1_baseline\s+up to date", status)
    result = mura_thesis(project, "build", "--profile", "smoke")
    assert "executing" not in result.stdout
    assert "A sentence added to test the cache." in html(project, "07_ethics")
    page = html(project, "05_1_baseline")  # the new text with the outputs of the last execution
    assert "A sentence before the results." in page and "Provenance" in page and "tab-baseline-metrics" in page

    source.write_text(original + "\n```{code-cell} ipython3\nadded = 1\n```\n")
    status = mura_thesis(project, "status", "--profile", "smoke").stdout
    assert re.search(r"07_ethics\s+would re-run: code changed", status)
    result = mura_thesis(project, "build", "--profile", "smoke")
    assert re.findall(r"\] (\S+): executing", result.stdout) == ["07_ethics"]
    assert "A sentence added to test the cache." not in html(project, "07_ethics")


def test_changed_parameter_reexecutes_only_chapters_that_use_it(smoke_book, tmp_path):
    project, _ = smoke_book
    profile = project / "params" / "smoke.yaml"
    text = profile.read_text()
    changed = yaml.safe_load(text)
    changed.setdefault("chapters", {})["02_background"] = {"n_resamples": 500}
    profile.write_text(yaml.safe_dump(changed))
    try:
        status = mura_thesis(project, "status", "--profile", "smoke").stdout
        assert re.search(r"02_background\s+would re-run: parameters changed", status)
        assert re.search(r"07_ethics\s+up to date", status)
    finally:
        profile.write_text(text)


def test_run_one_chapter_with_other_parameters(smoke_book):
    project, _ = smoke_book
    output = project / "rerun.ipynb"
    mura_thesis(project, "run", "05_1_baseline", "--profile", "smoke", "-p", "image_size", "48", "-o", str(output))
    notebook = output.read_text()
    # The page reports the new image size, glued from the run it trained.
    assert '"application/papermill.record/text/plain": "48"' in notebook
    with pytest.raises(AssertionError, match="unknown key"):
        mura_thesis(project, "run", "05_1_baseline", "--profile", "smoke", "-p", "imag_size", "48")


def test_failing_chapter_stops_build_and_keeps_previous_html(smoke_book):
    project, _ = smoke_book
    published = project / "_build" / "html" / "index.html"
    before = published.read_text()
    chapter = project / "chapters" / "07_ethics.md"
    original = chapter.read_text()
    chapter.write_text(
        original + "\n```{code-cell} ipython3\nraise RuntimeError('deliberate failure for the test')\n```\n"
    )
    try:
        result = mura_thesis(project, "build", "--profile", "smoke", check=False)
        assert result.returncode != 0
        assert "BUILD FAILED" in result.stderr and "07_ethics" in result.stderr
        assert "deliberate failure for the test" in result.stderr
        assert "RuntimeError" in result.stderr
        assert (project / "build" / "failed" / "smoke" / "07_ethics.ipynb").exists()
        assert published.read_text() == before
        assert "Rendering" not in result.stdout
    finally:
        chapter.write_text(original)


def test_unknown_profile_is_explained(smoke_book):
    project, _ = smoke_book
    result = mura_thesis(project, "build", "--profile", "nonesuch", check=False)
    assert result.returncode == 1
    assert "Unknown profile 'nonesuch'" in result.stderr and "smoke" in result.stderr


def test_full_profile_without_data_says_how_to_get_it(smoke_book):
    project, _ = smoke_book
    environment = {k: v for k, v in os.environ.items() if k != "MURA_DATA"}
    result = subprocess.run(
        [*CLI, "build", "--profile", "full"], cwd=project, capture_output=True, text=True, env=environment
    )
    assert result.returncode == 1
    assert "--data" in result.stderr and "MURA_DATA" in result.stderr


def test_killed_build_leaves_nothing_half_written_and_continues(smoke_book):
    import nbformat

    project, _ = smoke_book
    environment = os.environ | {"TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(
        [*CLI, "build", "--profile", "smoke", "--force"],
        cwd=project,
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        start_new_session=True,
    )
    seen = []
    for line in process.stdout:
        seen.append(line)
        if line.strip().startswith("done in") and sum("done in" in l for l in seen) == 2:
            break  # two chapters finished, the third is executing
    os.killpg(process.pid, 9)
    process.wait()
    executed = project / "build" / "executed" / "smoke"
    for notebook in executed.glob("*.ipynb"):
        nbformat.validate(nbformat.read(notebook, as_version=4))
    result = mura_thesis(project, "build", "--profile", "smoke")
    up_to_date = re.findall(r"\] (\S+): up to date", result.stdout)
    assert len(up_to_date) >= 2
    assert not list(executed.glob(".*.partial*.ipynb"))


def test_every_page_with_its_images_stays_under_5_mb(smoke_book):
    project, _ = smoke_book
    root = project / "_build" / "html"
    for page in root.rglob("*.html"):
        text = page.read_text()
        total = len(text.encode())
        for source in re.findall(r'<img[^>]+src="([^"]+)"', text):
            if source.startswith("data:"):
                continue
            image = (page.parent / source).resolve()
            total += image.stat().st_size if image.exists() else 0
        assert total < 5 * 1024 * 1024, f"{page.relative_to(root)} weighs {total / 1e6:.1f} MB"


def test_changed_data_marks_every_notebook_chapter_stale(smoke_book):
    import numpy as np
    from PIL import Image

    project, _ = smoke_book
    # The build's own dataset (the pretraining corpus beside it, "source-...", is not the thesis' data).
    (dataset,) = [
        d for d in (project / "data" / "synthetic").glob("*/MURA-v1.1") if not d.parent.name.startswith("source-")
    ]
    extra = next((dataset / "train").glob("XR_*/patient*/study*")) / "image99.png"
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(extra)
    try:
        status = mura_thesis(project, "status", "--profile", "smoke").stdout
        lines = [line for line in status.splitlines() if line.startswith("  ")]
        assert lines and all("data changed" in line for line in lines)
    finally:
        extra.unlink()
    status = mura_thesis(project, "status", "--profile", "smoke").stdout
    assert "would re-run" not in status


def test_an_edited_module_marks_stale_only_the_chapters_that_run_it(smoke_book, tmp_path):
    project, _ = smoke_book
    # Private copies of the packages, found first on the path, stand in for edited ones.
    library = tmp_path / "lib"
    for package in ("mura_lib", "mura_thesis"):
        shutil.copytree(REPO / package, library / package, ignore=shutil.ignore_patterns("__pycache__"))
    environment = os.environ | {"TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": str(library)}

    def stale():
        result = subprocess.run(
            [*CLI, "status", "--profile", "smoke"], cwd=project, capture_output=True, text=True, env=environment
        )
        assert result.returncode == 0, result.stderr
        lines = [line for line in result.stdout.splitlines() if line.startswith("  ")]
        assert lines
        return {line.split()[0].rstrip(":") for line in lines if "library changed" in line}

    assert stale() == set()
    # The Background chapter's own module: that chapter alone.
    background = library / "mura_thesis" / "background.py"
    background.write_text(background.read_text() + "\n# an edit\n")
    assert stale() == {"02_background"}
    # The values the text quotes: the chapters that quote them, not the Data or Ethics chapters.
    quoted = library / "mura_thesis" / "values.py"
    quoted.write_text(quoted.read_text() + "\n# an edit\n")
    reached = stale()
    assert {"02_background", "05_1_baseline", "05_3_regularisation", "06_conclusions"} <= reached
    assert not reached & {"03_data", "07_ethics"}


def _page_text(project: Path, page: str) -> str:
    import html as html_module

    text = re.sub(r"<[^>]+>", " ", html(project, page))
    text = html_module.unescape(text).replace("\u2019", "'").replace("\u201c", '"').replace("\u201d", '"')
    text = re.sub(r"\s+", " ", text)
    # Tags around glued values leave spaces before punctuation: "batch normalisation , the".
    return re.sub(r"\(\s+", "(", re.sub(r"\s+([,.;:)])", r"\1", text))


def test_conclusions_and_abstract_state_the_chapters_verdicts(smoke_book):
    """One source of verdicts: the results chapters, the conclusions and the abstract read the
    same comparisons of the same stored runs, and no passage markup reaches a page."""
    from mura_thesis import values
    from mura_thesis.profiles import load_profile, plan_for_profile

    project, _ = smoke_book
    plan = plan_for_profile(project, load_profile(project, "smoke"), verbose="silent")
    found = values.findings(plan, plan.headline())
    conclusions, abstract = _page_text(project, "06_conclusions"), _page_text(project, "index")
    regularisation = _page_text(project, "05_3_regularisation")
    assert plan.comparisons("regularisation")
    for comparison in plan.comparisons("regularisation").values():
        assert f"differed by {values.comparison_values(comparison)['diff']}" in regularisation
    helped = f"since removing them lowered the mean AUROC: {found['reg-lower']}."
    assert (helped in conclusions) == (found["reg-any-lower"] == "yes")
    undetermined = f"Regularisers whose effect was undetermined: {found['reg-undetermined']}."
    assert (undetermined in conclusions) == (found["reg-any-undetermined"] == "yes")
    too_small = f"too small to be told from the randomness of training: {found['reg-undetermined']}."
    assert (too_small in abstract) == (found["reg-any-undetermined"] == "yes")
    if found["size-smaller-verdict"] == "undetermined":
        assert f"At {found['size-smaller']} pixels the difference from" in conclusions
        assert f"With a smaller input ({found['size-smaller']} pixels) the difference was undetermined" in abstract
    seeds = values.seed_values(plan.seed_summary(), plan.comparisons("seeds"))
    assert f"mean study-level AUROC of {seeds['mean']:.3f}" in _page_text(project, "05_1_baseline")
    assert f"its mean AUROC was {seeds['mean']:.3f}" in conclusions
    assert "interval over both seeds and test studies" in abstract
    for page in (project / "_build" / "html" / "chapters").glob("*.html"):
        text = _page_text(project, page.stem)
        assert "{passage}" not in text and ":when:" not in text, page.name


def test_text_holds_for_the_build_it_sits_in(smoke_book):
    """Sentences that were true of one profile only stay out; profile-dependent facts are glued."""
    project, _ = smoke_book
    offenders = [
        r"few hundred test studies",
        r"few thousand training studies",
        r"August 2018",
        r"reports all its results by study type",
        r"EfficientNet, pretrained on ImageNet, are adapted",
        r"intervals overlap substantially cannot be told apart",
        # A synthetic build is neither labelled by radiologists nor measured on MURA's split.
        r"radiologists labelled the studies on which",
        r"Performance is measured on MURA's validation split",
        r"in the default build of this book, on real",
        r"radiologist's label",
        r"This build ran on MURA-v1.1",
    ]
    pages = [project / "_build" / "html" / "index.html", *(project / "_build" / "html" / "chapters").glob("*.html")]
    for page in pages:
        text = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", page.read_text()))
        for pattern in offenders:
            assert not re.search(pattern, text), f"{pattern!r} on {page.name}"
    # The number of test studies is this build's, glued from its data.
    from mura_lib.dataset import load_mura
    from mura_thesis.profiles import load_profile, resolve_data

    _, root = resolve_data(project, load_profile(project, "smoke"))
    images = load_mura(root).images
    studies = images.loc[images["split"] == "valid", "study_path"].nunique()
    assert f"{studies:,d} test studies" in _page_text(project, "05_results")
    # The introduction says what this build pretrains, not what the full profile would.
    intro = _page_text(project, "01_introduction")
    assert "ImageNet weights cannot be obtained in an offline build" in intro
    # The title block says that this build's radiographs are synthetic; the conclusions too.
    config = yaml.safe_load((project / "_config.yml").read_text())
    note = config["parse"]["myst_substitutions"]["synthetic_note"]
    title = (project / "_build" / "html" / "chapters" / "index.html").read_text()
    index = " ".join(html_module.unescape(re.sub(r"<[^>]+>", " ", title)).split())
    start = " ".join(note.split()[:8])  # before its first apostrophe, which Sphinx curls
    assert start in index and index.index(start) < index.index("This thesis asks")
    assert "In this build the data are synthetic" in _page_text(project, "06_conclusions")


def test_every_figure_and_table_has_a_numbered_caption(smoke_book):
    """Every image and every table in a chapter sits in a figure or table with a caption that
    is numbered ("Fig. N" / "Table N"); only the provenance box is
    exempt (it is the page's metadata, not its content)."""
    from bs4 import BeautifulSoup

    project, _ = smoke_book
    missing = []
    for page in sorted((project / "_build" / "html" / "chapters").glob("*.html")):
        main = BeautifulSoup(page.read_text(), "html.parser").find("main")
        for element in main.find_all(["img", "table"]):
            if element.find_parent(class_="admonition"):
                continue
            holder = element.find_parent(["figure", "table"]) if element.name == "img" else element
            if element.name == "table" and not element.find("caption"):
                holder = element.find_parent("figure")
            caption = holder and (holder.find("figcaption") or holder.find("caption"))
            number = caption and caption.find(class_="caption-number")
            if not number:
                missing.append(f"{page.name}: {element.name} {element.get('src') or element.get_text(' ', True)[:60]}")
    assert not missing, "\n".join(missing)


def test_chapters_show_the_code_they_describe(smoke_book):
    """The model, the training loop of the background chapter and the regularisation variants are
    shown from the library's own source (``literalinclude`` of the staged ``/_code`` copy)."""
    project, _ = smoke_book
    for page, names in {
        "02_background": ["train_two_moons", "hidden_activations"],
        "04_model_development": ["build_cnn", "GlobalAveragePooling2D"],
        "05_3_regularisation": ["REGULARISATION_VARIANTS", "batch_norm"],
    }.items():
        text = re.sub(r"<[^>]+>", "", html(project, page))
        assert all(name in text for name in names), page
