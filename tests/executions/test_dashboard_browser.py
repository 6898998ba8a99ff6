"""A real browser shows the dashboard's known counts, draws the bars, and a bar leads to its executions."""

from __future__ import annotations

from typing import Any

import pytest

from tests.executions.test_dashboard import run_known_set
from tests.tracing.test_waterfall_browser import CHROMIUM, CHROMIUM_ARGS


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_dashboard_renders_the_known_counts_and_a_failed_bar_opens_the_failed_execution(
    live_server: Any, user: Any, make_flow: Any
) -> None:
    from playwright.sync_api import sync_playwright

    # The database is written before Playwright starts its event loop: Django refuses ORM calls inside one.
    failed = run_known_set(make_flow)[-1]
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1200, "height": 900})
            page.goto(f"{live_server.url}/admin/login/?next=/admin/dashboard/")
            page.fill("#id_username", "alice")
            page.fill("#id_password", "pw-alice")
            page.click("input[type=submit]")
            page.wait_for_selector("#flow-dashboard")
            flow_x = page.locator('section[data-flow="flow-x"]')
            assert flow_x.locator(".fd-total").inner_text() == "4"
            assert flow_x.locator(".fd-succeeded-count").inner_text() == "3"
            assert flow_x.locator(".fd-failed-count").inner_text() == "1"
            assert flow_x.locator(".fd-error-rate").inner_text() == "25%"
            # The bar of this minute: red part a quarter of its height, drawn below the green part.
            failed_rect = flow_x.locator("rect.fd-failed")
            succeeded_rect = flow_x.locator("rect.fd-succeeded")
            assert failed_rect.count() == 1 and succeeded_rect.count() == 1
            red, green = failed_rect.bounding_box(), succeeded_rect.bounding_box()
            assert red is not None and green is not None
            assert red["height"] == pytest.approx(green["height"] / 3, abs=0.5)
            assert red["y"] >= green["y"] + green["height"] - 0.5
            assert page.locator("#fd-steps tbody tr").count() == 2

            failed_rect.click()
            page.wait_for_selector("#result_list")
            rows = page.locator("#result_list tbody tr")
            assert rows.count() == 1
            assert str(failed.pk) in rows.first.inner_text()
        finally:
            browser.close()
