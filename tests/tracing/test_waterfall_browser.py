"""A real browser draws the execution's waterfall: bars in order, widths and offsets proportional to time."""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from tests.tracing.test_admin_waterfall import SPANS, TRACE, make_execution, store_trace

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip
TRACE_MS = 400


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_admin_draws_the_bars_in_order_with_widths_proportional_to_durations(live_server: Any, user: Any) -> None:
    from playwright.sync_api import sync_playwright

    # The database is written before Playwright starts its event loop: Django refuses ORM calls inside one.
    store_trace()
    execution = make_execution()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(f"{live_server.url}/admin/login/?next=/admin/executions/execution/{execution.pk}/change/")
            page.fill("#id_username", "alice")
            page.fill("#id_password", "pw-alice")
            page.click("input[type=submit]")
            page.wait_for_selector(f'#trace-waterfall[data-trace-id="{TRACE}"]')
            rows = page.locator(".wf-row")
            assert rows.count() == len(SPANS)

            boxes = []
            for index in range(rows.count()):
                row = rows.nth(index)
                bar = row.locator(".wf-bar").bounding_box()
                track = row.locator("summary .wf-track").bounding_box()
                assert bar is not None and track is not None
                boxes.append((row.locator(".wf-name").inner_text(), bar, track))

            expected_names = ["flowexec run", "POST api/executions/", "execute_flow greet", "step hello", "step shout"]
            assert [name for name, _, _ in boxes] == expected_names
            assert all(a[1]["y"] < b[1]["y"] for a, b in itertools.pairwise(boxes)), "drawn top to bottom"
            timing = {name: (start, duration) for name, _, _, _, start, duration, _ in SPANS}
            for name, bar, track in boxes:
                start, duration = timing[name]
                assert bar["width"] / track["width"] == pytest.approx(duration / TRACE_MS, abs=0.005), name
                assert (bar["x"] - track["x"]) / track["width"] == pytest.approx(start / TRACE_MS, abs=0.005), name

            shout = rows.nth(4)
            assert not shout.locator(".wf-attributes").is_visible()
            shout.locator("summary").click()
            assert shout.locator(".wf-attributes").is_visible()
            assert "step shout" in shout.locator(".wf-attributes").inner_text()
        finally:
            browser.close()
