"""Screenshot the trace waterfall of an execution's admin page with headless Chromium (README picture).

    scripts/demo.sh && .venv/bin/python scripts/screenshot.py EXECUTION_ID [docs/trace-waterfall.png]

Logs in as the demo user (demo / demo) on http://127.0.0.1:8000 (or $FLOWEXEC_URL) and captures the
trace panel. Needs Debian's chromium (scripts/bootstrap.sh --browser installs it).
"""

from __future__ import annotations

import os
import sys

from playwright.sync_api import sync_playwright

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def main(execution_id: str, output: str = "docs/trace-waterfall.png") -> None:
    url = os.environ.get("FLOWEXEC_URL", "http://127.0.0.1:8000").rstrip("/")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 900, "height": 900})
        page.goto(f"{url}/admin/login/")
        page.fill("#id_username", "demo")
        page.fill("#id_password", "demo")
        page.click("input[type=submit]")
        page.goto(f"{url}/admin/executions/execution/{execution_id}/change/")
        page.locator(".wf-panel").first.screenshot(path=output)
        browser.close()
    print(output)


if __name__ == "__main__":
    main(*sys.argv[1:])
