"""A t step reruns only the page's fragment (issue 20): not the entry, its sidebar or the page's introduction.

Driven through a real server with bench/harness/ws_client.py, which sends the fragment id as the browser does. The server
says which kind of run it was (``FINISHED_FRAGMENT_RUN_SUCCESSFULLY``), and a run that redrew the sidebar would
have sent its widgets again. AppTest cannot check this: it always runs the whole script.
"""

from __future__ import annotations

import asyncio
import re
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import parse_qs, urlparse

import pytest
from playwright.sync_api import expect

from harness.ws_client import StreamlitSession

from .test_browser import image_with_caption, no_traceback, open_app, slider_input, wait_idle

pytestmark = pytest.mark.e2e

SIDEBAR_WIDGETS = {"image_source", "sample_name", "resolution"}
# page's url path, its t slider, the caption of the picture that shows t
PAGES = [("forward", "fwd_t", "x_t at t = {t}"), ("denoise", "den_t", "x_t: the input at t = {t}")]


async def _step(url: str, path: str, key: str, caption: str, t: int):
    async with StreamlitSession(url, timeout=120) as s:
        first = await s.open(path)
        s.set_slider(key, t)
        step = await s.rerun()
        return first, step


@pytest.mark.parametrize(("path", "key", "caption"), PAGES, ids=["forward", "denoise"])
def test_a_t_step_reruns_only_the_fragment(app_url, path, key, caption):
    with ThreadPoolExecutor(1) as pool:  # a thread of its own: Playwright's sync API keeps a loop in this one
        first, step = pool.submit(lambda: asyncio.run(_step(app_url, path, key, caption, 321))).result()
    assert not first.fragment_run and SIDEBAR_WIDGETS <= first.widgets  # the first visit runs everything
    assert step.fragment_id and step.fragment_run
    assert not SIDEBAR_WIDGETS & step.widgets, step.widgets  # the sidebar was not run again
    assert key in step.widgets and caption.format(t=321) in step.images
    assert step.query_string is not None and parse_qs(step.query_string)["t"] == ["321"]  # the address follows t


@pytest.mark.parametrize("query", ["", "?seed=x"], ids=["plain", "after-a-note"])
def test_play_in_the_fragment_ends_with_slider_pictures_and_address_at_999(page, app_url, query):
    """The Play button is in the fragment: its click animates there, then a whole-app rerun moves the slider.

    "after-a-note": the first run shows a sentence about the link above the page, which the next runs do not. Drawn
    in the page's own place, it shifted the page's elements and left a stale second slider on screen after Play
    (the same happened with the tour's cookie script, which the first run alone draws)."""
    open_app(page, f"{app_url}/forward{query}")
    page.get_by_role("button", name="Play: t from 0 to 999").click()
    # the last frame shows t = 999 before the whole-app rerun that moves the slider: wait for what that run does
    page.wait_for_url(re.compile(r"[?&]t=999(&|$)"), timeout=120_000)
    expect(slider_input(page, "fwd_t")).to_have_value("999", timeout=60_000)
    wait_idle(page)
    expect(slider_input(page, "fwd_t")).to_have_count(1)
    image_with_caption(page, "x_t at t = 999").wait_for()
    assert parse_qs(urlparse(page.url).query)["t"] == ["999"]
    no_traceback(page)
