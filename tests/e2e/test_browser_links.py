"""A state sent by link (issue 17), in a real browser: the address follows the settings, and the link opened in a
second browser context (a fresh session, as on a student's machine) shows the same t and the same pictures."""

from __future__ import annotations

import re
from urllib.parse import parse_qs, urlparse

import pytest

from .conftest import ARTIFACTS, IDLE
from .test_browser import image_digest, image_with_caption, no_traceback, open_app, slider_input, wait_idle

pytestmark = pytest.mark.e2e


def _fresh_page(browser):
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    context.set_default_timeout(60_000)
    return context, context.new_page()


def test_a_link_opened_in_a_second_browser_shows_the_same_t_and_pictures(page, browser, app_url, shot):
    open_app(page, f"{app_url}/forward")
    page.locator(".st-key-fwd_schedule").get_by_text("cosine").click()
    wait_idle(page)
    thumb = slider_input(page, "fwd_t")
    thumb.focus()
    for _ in range(3):
        thumb.press("PageUp")  # a few big steps: t ends somewhere that is not a default
        wait_idle(page)
    caption = image_with_caption(page, "x_t at t =").locator("[data-testid='stImageCaption']").inner_text()
    t = int(re.search(r"t = (\d+)", caption).group(1))
    assert t != 250
    page.wait_for_url(re.compile(rf"[?&]t={t}(&|$)"))
    query = parse_qs(urlparse(page.url).query)
    assert query["t"] == [str(t)] and query["schedule"] == ["cosine"]
    sender = image_digest(page, image_with_caption(page, "x_t at t ="))
    shot(page, "sender")

    context, other = _fresh_page(browser)
    try:
        other.goto(page.url)
        other.wait_for_selector(IDLE)
        image_with_caption(other, f"x_t at t = {t}").wait_for()
        wait_idle(other)
        assert slider_input(other, "fwd_t").input_value() == str(t)  # the slider agrees with the pictures
        receiver = image_digest(other, image_with_caption(other, "x_t at t ="))
        assert receiver[1] == sender[1]  # the same bytes: same photo, schedule, t and seed
        no_traceback(other)
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        other.screenshot(path=str(ARTIFACTS / "link-receiver.png"), full_page=True)

        # a reload keeps the state
        other.reload()
        other.wait_for_selector(IDLE)
        image_with_caption(other, f"x_t at t = {t}").wait_for()
    finally:
        context.close()


def test_a_link_with_a_bad_value_says_so(page, app_url):
    page.goto(f"{app_url}/denoise?t=banana")
    page.wait_for_selector(IDLE)
    page.locator("[data-testid='stAlert']").filter(has_text="t=banana should be a whole number").wait_for()
    no_traceback(page)


def test_nothing_is_fetched_from_outside_the_server(page, app_url):
    """The favicon used to come from a web font host: offline, every page load logged an error."""
    outside = []
    page.on(
        "request",
        lambda r: outside.append(r.url) if not r.url.startswith(("http://127.0.0.1", "data:", "blob:")) else None,
    )
    open_app(page, app_url)
    wait_idle(page)
    assert outside == []
    icon = page.locator("link[rel*='icon']").first.get_attribute("href")
    assert icon and not icon.startswith("http") or icon.startswith(app_url), icon
