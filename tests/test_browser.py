"""Every page of the built smoke book in headless Chromium: images load, internal links
resolve, no page shows an error, no table overflows its column on a desktop (1280 px) or a
phone (390 px) screen, and equations are typeset by the MathJax served with the book;
screenshots are kept as test artefacts."""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path
from urllib.parse import unquote, urlparse

import pytest

from .conftest import REPO

try:
    from selenium.webdriver.support.ui import WebDriverWait
except ImportError:  # selenium comes with the dev extra; without it the browser tests skip
    WebDriverWait = None

pytestmark = [pytest.mark.slow, pytest.mark.browser]
ARTEFACTS = REPO / "build" / "test-artifacts" / "screenshots"


def _browser():
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    if not (chromium and driver):
        if os.environ.get("CI"):
            pytest.fail("CI must run the browser tests: install Debian's chromium and chromium-driver (.ci/run does).")
        pytest.skip("headless Chromium is not installed (apt-get install chromium chromium-driver)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--window-size=1280,1600",
    ):
        options.add_argument(flag)
    return webdriver.Chrome(service=Service(driver), options=options)


def _pages(project: Path) -> list[Path]:
    html_root = project / "_build" / "html"
    pages = sorted(html_root.glob("*.html")) + sorted((html_root / "chapters").glob("*.html"))
    return [p for p in pages if p.name not in ("genindex.html", "search.html")]


def _open(browser, page: Path) -> None:
    """Load a page and wait until its document is complete (a loaded machine can return early)."""
    browser.get(page.as_uri())
    WebDriverWait(browser, 30).until(
        lambda b: b.execute_script("return document.readyState === 'complete' && document.body !== null;")
    )


@pytest.fixture(scope="module")
def browser():
    driver = _browser()
    yield driver
    driver.quit()


def test_every_page_renders_with_images_links_and_no_errors(smoke_book, browser):
    project, _ = smoke_book
    pages = _pages(project)
    assert len(pages) >= 6
    ARTEFACTS.mkdir(parents=True, exist_ok=True)
    problems = []
    for page in pages:
        _open(browser, page)
        title = browser.title
        broken_images = browser.execute_script(
            "return Array.from(document.images).filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.src);"
        )
        problems += [f"{page.name}: image does not load: {src}" for src in broken_images]
        links = browser.execute_script("return Array.from(document.querySelectorAll('a[href]')).map(a => a.href);")
        for link in links:
            parsed = urlparse(link)
            if parsed.scheme != "file":
                continue
            target = Path(unquote(parsed.path))
            if not target.exists():
                problems.append(f"{page.name}: broken link {link}")
            elif parsed.fragment and target.suffix == ".html":
                text = target.read_text()
                if f'id="{parsed.fragment}"' not in text:
                    problems.append(f"{page.name}: missing anchor #{parsed.fragment} in {target.name}")
        body = browser.find_element("tag name", "body").text
        if "Traceback (most recent call last)" in body:
            problems.append(f"{page.name}: shows a traceback")
        errors = browser.execute_script(
            "return document.querySelectorAll('.output.error, .output.traceback, .output.stderr, .system-message, .problematic').length;"
        )
        if errors:
            problems.append(f"{page.name}: {errors} error or stderr outputs, or unresolved markup")
        assert title, f"{page.name} has no title"
        browser.save_screenshot(str(ARTEFACTS / f"{page.stem}.png"))
    assert not problems, "\n".join(problems)


# For each table: the nearest element (itself or an ancestor inside the article) that scrolls
# horizontally, else the table itself, must end inside the article's text column.
OVERFLOWING_TABLES = """
const column = document.querySelector('article.bd-article') || document.querySelector('main') || document.body;
const right = column.getBoundingClientRect().right + 1;
const found = [];
for (const table of document.querySelectorAll('article table, main table')) {
  let box = table;
  for (let node = table; node && node !== column; node = node.parentElement) {
    const overflow = getComputedStyle(node).overflowX;
    if (overflow === 'auto' || overflow === 'scroll') { box = node; break; }
  }
  const edge = box.getBoundingClientRect().right;
  if (edge > right) {
    const caption = table.closest('figure');
    found.push((caption && caption.id ? caption.id : (table.id || table.className || 'table')) +
               ' ends at ' + Math.round(edge) + ' px, column at ' + Math.round(right) + ' px');
  }
}
return found;
"""


@pytest.mark.parametrize("width", [1280, 390])
def test_no_page_or_table_overflows_its_column(smoke_book, browser, width):
    project, _ = smoke_book
    ARTEFACTS.mkdir(parents=True, exist_ok=True)
    browser.set_window_size(width, 1600)
    problems = []
    try:
        for page in _pages(project):
            _open(browser, page)
            page_width, window = browser.execute_script(
                "return [document.documentElement.scrollWidth, window.innerWidth];"
            )
            if page_width > window:
                problems.append(f"{page.name} at {width} px: the page is {page_width} px wide, wider than the window")
            problems += [f"{page.name} at {width} px: {text}" for text in browser.execute_script(OVERFLOWING_TABLES)]
            browser.save_screenshot(str(ARTEFACTS / f"{page.stem}-{width}.png"))
    finally:
        browser.set_window_size(1280, 1600)
    assert not problems, "\n".join(problems)


def test_equations_render_offline_with_the_books_mathjax(smoke_book, browser):
    project, _ = smoke_book
    for page in _pages(project):
        remote = [
            src
            for src in re.findall(r'<script[^>]+src="([^"]+)"', page.read_text())
            if "mathjax" in src.lower() and "://" in src
        ]
        assert not remote, f"{page.name} loads MathJax from the network: {remote}"
    page = project / "_build" / "html" / "chapters" / "02_background.html"
    _open(browser, page)
    sources = browser.execute_script(
        "return Array.from(document.scripts).map(s => s.src).filter(s => s.toLowerCase().includes('mathjax'));"
    )
    assert sources and all(src.startswith("file://") for src in sources), sources
    assert all(Path(unquote(urlparse(src).path)).exists() for src in sources)
    WebDriverWait(browser, 30).until(
        lambda b: b.execute_script("return document.querySelectorAll('mjx-container').length;") > 0
    )
    errors = browser.execute_script("return document.querySelectorAll('mjx-merror, .MathJax_Error').length;")
    assert errors == 0, f"{errors} equations on {page.name} failed to typeset"


VERDICT_HEADERS_SHOWN = """
const figure = document.getElementById(arguments[0]);
const table = figure.querySelector('table');
let box = table;
for (let node = table; node && node !== figure; node = node.parentElement) {
  const overflow = getComputedStyle(node).overflowX;
  if (overflow === 'auto' || overflow === 'scroll') { box = node; break; }
}
const right = box.getBoundingClientRect().right;
return Array.from(table.querySelectorAll('th'))
  .filter(th => th.textContent.trim().startsWith('Verdict'))
  .map(th => [th.textContent.trim(), th.getBoundingClientRect().right <= right + 1]);
"""


@pytest.mark.parametrize(
    "page, table",
    [
        ("05_2_image_size", "tab-size-paired"),
        ("05_3_regularisation", "tab-reg-paired"),
        ("05_4_pretrained", "tab-pre-paired"),
    ],
)
def test_a_phone_shows_every_verdict_of_a_comparison_table(smoke_book, browser, page, table):
    """At 390 px a comparison table shows both verdicts beside the comparison, unscrolled."""
    project, _ = smoke_book
    browser.set_window_size(390, 1600)
    try:
        _open(browser, project / "_build" / "html" / "chapters" / f"{page}.html")
        shown = browser.execute_script(VERDICT_HEADERS_SHOWN, table)
    finally:
        browser.set_window_size(1280, 1600)
    assert [name for name, _ in shown] == ["Verdict (AUROC)", "Verdict (kappa)"], shown
    assert all(visible for _, visible in shown), shown
