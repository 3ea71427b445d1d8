"""The Particle lab in a real browser (Playwright + Debian's Chromium): open the page, see the exact field drawn by
Plotly, move t with the keyboard and the chart follows. Screenshots go to tests/e2e/artifacts/."""

from __future__ import annotations

import re

import pytest

from .conftest import IDLE, RUNNING

pytestmark = pytest.mark.e2e

MAIN = "[data-testid='stMain']"


def wait_idle(page, timeout: float = 60_000) -> None:
    try:
        page.wait_for_selector(RUNNING, timeout=1_500)
    except Exception:  # the rerun may already be over
        pass
    page.wait_for_selector(IDLE, timeout=timeout)


def test_particle_lab_draws_the_exact_field_and_follows_t(page, app_url, shot):
    page.goto(f"{app_url}/particles")
    page.wait_for_selector(IDLE)
    page.get_by_role("heading", name=re.compile("Particle lab")).wait_for()
    chart = page.locator(f"{MAIN} .js-plotly-plot").filter(has_text="Exact field at t = 500")
    chart.wait_for()
    assert chart.locator("g.trace").count() >= 3  # noised particles, data, arrows
    shot(page, "t500")
    thumb = page.locator(".st-key-pl_t input[type=range]")
    thumb.focus()
    thumb.press("End")
    wait_idle(page)
    page.locator(f"{MAIN} .js-plotly-plot").filter(has_text="Exact field at t = 999").wait_for()
    assert page.locator("[data-testid='stException']").count() == 0
    shot(page, "t999")
