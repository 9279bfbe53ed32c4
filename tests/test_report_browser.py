"""The report page in a real browser: headless Chromium (Debian's) driven by Playwright.

The page must load without console errors, every audio element's source must resolve
and report a duration > 0, and every image must render with a non-zero size. Skipped,
with the reason, only where the browser or its driver cannot be installed
(``scripts/install-browser.sh``, run by ``make test``).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from noisemix.report import write_report

# Without the background-networking flags Chromium tries to reach the network, which
# this project's machines refuse.
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync"]


def chromium_path() -> str:
    path = shutil.which("chromium")
    if path is None:
        pytest.skip("Debian's chromium is not installed (scripts/install-browser.sh needs root)")
    return path


def open_page(url: str, user_data_dir, on_page):
    """Open ``url`` in a fresh headless Chromium profile; return ``on_page(page, errors)``."""
    sync_api = pytest.importorskip("playwright.sync_api", reason="Playwright is not installed (the test extra)")
    with sync_api.sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(user_data_dir), executable_path=chromium_path(), headless=True, args=CHROMIUM_FLAGS)
        try:
            page = context.new_page()
            errors = []
            page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
            page.on("pageerror", lambda error: errors.append(str(error)))
            page.goto(url, wait_until="load")
            return on_page(page, errors)
        finally:
            context.close()


AUDIO_DURATIONS = """() => Promise.all([...document.querySelectorAll('audio')].map(a => new Promise(resolve => {
    if (a.readyState >= 1) { resolve([a.currentSrc, a.duration]); return; }
    a.addEventListener('loadedmetadata', () => resolve([a.currentSrc, a.duration]));
    a.addEventListener('error', () => resolve([a.currentSrc, -1]));
    a.load();
})))"""
IMAGE_SIZES = "() => [...document.images].map(i => [i.currentSrc, i.complete ? i.naturalWidth : 0, i.naturalHeight])"


def test_the_report_page_loads_plays_and_shows_in_chromium(built_manifest, tmp_path):
    claims = Path(__file__).resolve().parents[1] / "benchmarks" / "results" / "demo-claims"
    page_path = write_report(built_manifest, tmp_path / "report", runs=claims, progress=False)

    def check(page, errors):
        return page.evaluate(AUDIO_DURATIONS), page.evaluate(IMAGE_SIZES), list(errors)

    audio, images, errors = open_page(page_path.as_uri(), tmp_path / "profile", check)
    assert errors == []
    assert audio and all(duration > 0 for _, duration in audio), audio
    assert images and all(width > 0 and height > 0 for _, width, height in images), images
