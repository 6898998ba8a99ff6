"""A real browser draws the execution's waterfall: bars in order, widths and offsets proportional to time,
and a running execution's bars appear and grow while it runs."""

from __future__ import annotations

import itertools
import json
from typing import Any

import pytest

from tests.live import LiveService
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


NAPPER = {
    "name": "napper",
    "steps": [
        {"name": "warm", "type": "template", "template": "warm"},
        {"name": "nap", "type": "sleep", "seconds": 10, "after": ["warm"]},
    ],
}
NAP_ROW = '.wf-row:has(.wf-name:text-is("step nap"))'


def running_nap(page: Any) -> dict[str, float] | None:
    """The running `step nap` bar: its share of the track and its duration so far; None when not drawn open."""
    return page.evaluate(
        """() => {
            const row = [...document.querySelectorAll(".wf-row.wf-running")]
                .find((r) => r.querySelector(".wf-name").textContent === "step nap");
            if (!row) return null;
            const bar = row.querySelector(".wf-bar.wf-open").getBoundingClientRect();
            const track = row.querySelector("summary .wf-track").getBoundingClientRect();
            return {share: bar.width / track.width, right: (bar.right - track.left) / track.width,
                    ms: parseFloat(row.dataset.durationMs)};
        }"""
    )


@pytest.mark.browser
@pytest.mark.slow
def test_a_running_execution_page_draws_bars_that_appear_and_grow_until_it_ends(live_service: LiveService) -> None:
    from playwright.sync_api import sync_playwright

    headers = {"Content-Type": "application/json"}
    assert live_service.request("POST", "/api/flows/", body=json.dumps(NAPPER), headers=headers).status == 201
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(f"{live_service.url}/admin/login/")
            page.fill("#id_username", "demo")
            page.fill("#id_password", "demo")
            page.click("input[type=submit]")
            page.wait_for_selector("#site-name")
            body = json.dumps({"flow": "napper", "wait": False})
            response = live_service.request("POST", "/api/executions/", body=body, headers=headers)
            assert response.status == 202, response.data
            page.goto(f"{live_service.url}/admin/executions/execution/{response.json()['id']}/change/")
            page.wait_for_selector(f"{NAP_ROW}.wf-running .wf-bar.wf-open", timeout=20_000)
            assert page.locator("#trace-panel").get_attribute("data-live") == "1"
            first = running_nap(page)
            assert first is not None and first["right"] == pytest.approx(1, abs=0.01), "open up to now"
            assert page.locator(".wf-row.wf-running .wf-name", has_text="execute_flow napper").count() == 1
            # The script refreshes the page: the same bar, later, is longer and takes more of the track.
            page.wait_for_function(
                """(before) => {
                    const row = [...document.querySelectorAll(".wf-row.wf-running")]
                        .find((r) => r.querySelector(".wf-name").textContent === "step nap");
                    return row && parseFloat(row.dataset.durationMs) > before + 500;
                }""",
                arg=first["ms"],
                timeout=20_000,
            )
            later = running_nap(page)
            assert later is not None and later["share"] > first["share"] and later["ms"] > first["ms"]
            # When it ends the page stops refreshing and draws the stored spans, closed.
            page.wait_for_selector('#trace-panel[data-live="0"]', timeout=30_000)
            page.wait_for_selector(f"{NAP_ROW}:not(.wf-running) .wf-bar:not(.wf-open)", timeout=10_000)
            assert page.locator(".wf-running").count() == 0
            assert "succeeded" in page.locator("#execution-steps").inner_text()
        finally:
            browser.close()
