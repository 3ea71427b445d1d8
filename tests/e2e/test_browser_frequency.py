"""The frequency view (issue 27) in a real browser: switched on, drawn by Plotly, and following the slider."""

from __future__ import annotations

import pytest

from .test_browser import no_traceback, open_app, slider_input, wait_idle

pytestmark = pytest.mark.e2e

CHART_TITLE = "[data-testid='stPlotlyChart'] .gtitle"


def _open(page, app_url: str, title: str) -> None:
    """The app, then the page through the sidebar's navigation (its address depends on which page is the default)."""
    open_app(page, app_url)
    page.get_by_test_id("stSidebarNav").get_by_text(title, exact=True).click()
    wait_idle(page)


def _switch_on(page) -> None:
    page.get_by_text("Show the frequency view", exact=True).click()
    wait_idle(page)


def _chart_title(page, text: str):
    return page.locator(CHART_TITLE, has_text=text)


def test_forward_frequency_view_follows_t(page, app_url, shot):
    _open(page, app_url, "Forward process")
    page.get_by_text("Which details drown first?").wait_for()
    _switch_on(page)
    _chart_title(page, "Power at each frequency, t = 250").wait_for()
    legend = page.locator("[data-testid='stPlotlyChart'] .legendtext", has_text="f_max(t) =")
    legend.wait_for()
    f_250 = legend.text_content() or ""
    legend.scroll_into_view_if_needed()
    shot(page, "t250")

    thumb = slider_input(page, "fwd_t")
    thumb.focus()
    thumb.press("End")
    _chart_title(page, "Power at each frequency, t = 999").wait_for()
    wait_idle(page)
    # at t = 999 every frequency is drowned: no f_max marker, and the caption says so
    assert page.locator("[data-testid='stPlotlyChart'] .legendtext", has_text="f_max(t) =").count() == 0
    page.get_by_text("nothing of the photo stands out any more", exact=False).wait_for()
    assert f_250.startswith("f_max(t) = ")
    no_traceback(page)
    shot(page, "t999")


def test_reverse_frequency_view_follows_the_step(page, app_url, shot):
    _open(page, app_url, "Reverse trajectory")
    page.get_by_role("button", name="Run", exact=True).click()
    wait_idle(page, timeout=120_000)
    page.get_by_text("Coarse to fine: the frequency view").wait_for()
    _switch_on(page)
    _chart_title(page, "(t = 0)").wait_for()  # after Run the slider is on the last step, which starts from t = 0
    thumb = slider_input(page, "traj_step")
    thumb.focus()
    thumb.press("Home")
    wait_idle(page)
    _chart_title(page, "step 1 (t = ").wait_for()
    _chart_title(page, "step 1 (t = ").scroll_into_view_if_needed()
    no_traceback(page)
    shot(page, "first-step")
