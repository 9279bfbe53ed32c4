"""Screenshot of a noisemix report page in headless Chromium (for docs/): top of the page,
1280 px wide. Usage: python scripts/report_screenshot.py REPORT_DIR/index.html OUT.png [HEIGHT]"""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

from playwright.sync_api import sync_playwright

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync"]


def main() -> None:
    page_path, out = Path(sys.argv[1]).resolve(), Path(sys.argv[2])
    height = int(sys.argv[3]) if len(sys.argv) > 3 else 2400
    with tempfile.TemporaryDirectory() as profile, sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            profile, executable_path=shutil.which("chromium"), headless=True, args=FLAGS,
            viewport={"width": 1280, "height": height})
        page = context.new_page()
        page.goto(page_path.as_uri(), wait_until="load")
        page.screenshot(path=str(out))
        context.close()
    print(f"screenshot: {out}")


if __name__ == "__main__":
    main()
