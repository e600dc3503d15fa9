"""Every page of the built smoke book in headless Chromium: images load, internal links
resolve, no page shows an error; screenshots are kept as test artefacts."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from urllib.parse import unquote, urlparse

import pytest

from .conftest import REPO

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
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic",
                 "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--window-size=1280,1600"):
        options.add_argument(flag)
    return webdriver.Chrome(service=Service(driver), options=options)


@pytest.fixture(scope="module")
def browser():
    driver = _browser()
    yield driver
    driver.quit()


def test_every_page_renders_with_images_links_and_no_errors(smoke_book, browser):
    project, _ = smoke_book
    html_root = project / "_build" / "html"
    pages = sorted(html_root.glob("*.html")) + sorted((html_root / "chapters").glob("*.html"))
    pages = [p for p in pages if p.name not in ("genindex.html", "search.html")]
    assert len(pages) >= 6
    ARTEFACTS.mkdir(parents=True, exist_ok=True)
    problems = []
    for page in pages:
        browser.get(page.as_uri())
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
