"""Screenshot an execution's admin page, its steps and trace waterfall, with headless Chromium (README picture).

    scripts/demo.sh && .venv/bin/python scripts/screenshot.py EXECUTION_ID [docs/trace-waterfall.png] [--running]

Logs in as the demo user (demo / demo) on http://127.0.0.1:8000 (or $FLOWEXEC_URL) and captures the
steps table and the trace panel. With --running it waits until a running step is drawn, so the picture
shows the live view of an execution started with `flowexec run FLOW --detach` (a flow with a sleep step).
Needs Debian's chromium (scripts/bootstrap.sh --browser installs it).
"""

from __future__ import annotations

import argparse
import os

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
PANELS = ["#execution-steps", "#trace-panel"]


def main(execution_id: str, output: str, running: bool) -> None:
    url = os.environ.get("FLOWEXEC_URL", "http://127.0.0.1:8000").rstrip("/")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        page.goto(f"{url}/admin/login/")
        page.fill("#id_username", "demo")
        page.fill("#id_password", "demo")
        page.click("input[type=submit]")
        page.goto(f"{url}/admin/executions/execution/{execution_id}/change/")
        if running:
            page.wait_for_selector(".wf-row.wf-running .wf-bar.wf-open", timeout=30_000)
        boxes = [box for selector in PANELS if (box := page.locator(selector).bounding_box()) is not None]
        top = min(box["y"] for box in boxes)
        bottom = max(box["y"] + box["height"] for box in boxes)
        left = min(box["x"] for box in boxes)
        right = max(box["x"] + box["width"] for box in boxes)
        clip = {"x": left, "y": top, "width": right - left, "height": bottom - top}
        page.screenshot(path=output, full_page=True, clip=clip)
        browser.close()
    print(output)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("execution_id")
    parser.add_argument("output", nargs="?", default="docs/trace-waterfall.png")
    parser.add_argument("--running", action="store_true", help="wait until a running step is drawn")
    arguments = parser.parse_args()
    main(arguments.execution_id, arguments.output, arguments.running)
