"""End to end: the book built on real MURA-layout data says only what is true of that build.

The data are a small tree in MURA-v1.1's layout (synthetic pictures, every one resized to 64 by 64
pixels, without the generator's ground truth or its specification file), given with ``--data``,
so the build declares them real MURA and every chapter runs its real-data branch.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
import yaml

from mura_lib.synthetic.generator import SPEC_FILENAME, TRUTH_FILENAME

from .test_build import _page_text, copy_project, mura_thesis

pytestmark = pytest.mark.slow
SIDE = 64  # every image of the tree is SIDE by SIDE pixels


def real_layout_tree(synthetic: Path, target: Path) -> Path:
    """A MURA-v1.1 tree at ``target`` from the synthetic ``synthetic`` one: the CSVs as they are,
    every picture resized to one size, and nothing of what only the generator writes."""
    from PIL import Image

    for source in synthetic.rglob("*"):
        if source.is_dir() or source.name in (SPEC_FILENAME, TRUTH_FILENAME):
            continue
        copy = target / source.relative_to(synthetic)
        copy.parent.mkdir(parents=True, exist_ok=True)
        if source.suffix == ".png" and not source.name.startswith("._"):
            with Image.open(source) as image:
                image.resize((SIDE, SIDE)).save(copy)
        else:  # the CSVs, and the macOS "._" files that MURA-v1.1 holds too
            shutil.copy2(source, copy)
    return target


@pytest.fixture(scope="module")
def real_book(tmp_path_factory):
    """A copy of the project built with the smoke profile's settings on the real-layout tree."""
    from mura_lib.synthetic import generate_synthetic_mura

    base = tmp_path_factory.mktemp("real-book")
    smoke = yaml.safe_load((Path(__file__).parents[1] / "params" / "smoke.yaml").read_text())["data"]
    spec = {key: smoke[key] for key in ("scale", "valid_scale", "image_size", "seed")}
    synthetic = generate_synthetic_mura(base / "synthetic", progress=False, **spec)
    data = real_layout_tree(synthetic, base / "real" / "MURA-v1.1")
    project = copy_project(base / "thesis")
    mura_thesis(project, "build", "--profile", "smoke", "--data", str(data))
    return project


def _pages(project: Path) -> dict[str, str]:
    html = project / "_build" / "html"
    return {page.stem: _page_text(project, page.stem) for page in sorted((html / "chapters").glob("*.html"))}


# Sentences that a build on real data must not hold: each was true of a synthetic build only, or
# announced a table or figure that only the synthetic ground truth makes.
FALSE_ON_REAL = {
    "03_data": [
        r"as here unless the profile",
        r"The radiographs are not of one size",
        r"The images differ in size and aspect ratio",
        r"This build is one without a copy",
    ],
    "05_1_baseline": [r"gives the AUROC of the abnormal studies with that finding"],
    "06_conclusions": [
        r"In this build the data are synthetic",
        r"Only a build on a registered copy",
        r"These answers hold for the synthetic data of this build",
        r"this build's on synthetic ones",
    ],
    "07_ethics": [r"In this build \S+ breaks the baseline's detection down"],
    "08_extensions": [r"put numbers to what", r"Of the \S+ views in the Grad-CAM figure, hardware"],
}
# Tables and figures that need the generator's ground truth: left out with their captions.
OMITTED = {
    "05_1_baseline": ["tab-baseline-findings", "tab-baseline-conspicuity"],
    "08_extensions": [
        "tab-ext-localisation",
        "tab-ext-shortcuts",
        "tab-ext-markers",
        "tab-ext-markers-details",
        "fig-ext-markers",
    ],
}
# A count of one with a plural noun ("the 1 studies").
COUNT_ONE_PLURAL = re.compile(
    r"(?<![\d.,\u2212-])(?<!and )(?<!to )(?<!or )\b1 (studies|images|views|epochs|seeds|patients|runs|networks|findings|"
    r"comparisons|configurations|types|pixels|folds|times|files|layers)\b"
)


def test_real_data_build_says_nothing_false_of_itself(real_book):
    pages = _pages(real_book)
    for page, patterns in FALSE_ON_REAL.items():
        for pattern in patterns:
            assert not re.search(pattern, pages[page]), f"{pattern!r} on {page}"
    for page, text in pages.items():
        plural = COUNT_ONE_PLURAL.search(text)
        assert not plural, (
            f"{plural and plural.group(0)!r} on {page}: {text[max(0, plural.start() - 80) : plural.end() + 40]!r}"
        )
        # What the library shows in place of a table it cannot make never reaches a page.
        assert "Omitted:" not in text and "not recorded: real MURA" not in text, page
    # What a real-data build says of itself instead.
    assert "each of a random sample of" in pages["03_data"]
    assert f"is {SIDE} pixels wide and {SIDE} pixels high" in pages["03_data"]
    assert "This build ran on a copy of MURA-v1.1." in pages["03_data"]
    assert "This build ran on MURA-v1.1 (profile smoke)" in pages["06_conclusions"]
    assert "so detection cannot be broken down by finding" in pages["05_1_baseline"]
    assert "the measurements that would test them need the synthetic data" in pages["08_extensions"]
    assert "only the first precaution applies to it" in pages["07_ethics"]
    # The title block carries no synthetic note.
    config = yaml.safe_load((real_book / "_config.yml").read_text())
    note = " ".join(config["parse"]["myst_substitutions"]["synthetic_note"].split()[:8])
    assert note not in _page_text(real_book, "index")


def test_real_data_build_omits_ground_truth_tables_with_captions_and_references(real_book):
    """A table or figure that the build cannot make is left out with its caption, and no page
    refers to it; every numbered reference on a page leads to a figure or table that exists."""
    from bs4 import BeautifulSoup

    html = real_book / "_build" / "html" / "chapters"
    soups = {page.stem: BeautifulSoup(page.read_text(), "html.parser") for page in html.glob("*.html")}
    for page, names in OMITTED.items():
        for name in names:
            assert soups[page].find(id=name) is None, f"{name} on {page}"
    for page, soup in soups.items():
        for reference in soup.select("a.reference.internal span.std-numref"):
            target = reference.find_parent("a")["href"]
            document, _, anchor = target.partition("#")
            holder = soups[Path(document).stem] if document else soup
            assert anchor and holder.find(id=anchor) is not None, f"{reference.get_text()} ({target}) on {page}"
