"""Presentation mode in front of a class (issue 36, item 8), in Chromium at 1920×1080: the class's answers update
while students vote, without a reload (they read 1 until the teacher reloaded); chart ticks, legends and the seed
box grow with the rest of the type.

The test server (tests/e2e/conftest.py) listens on 127.0.0.1 and has no presenter key, so whoever presents is the
presenter there (app/ui/present.py). The voting student is the benchmarks' websocket client (bench/harness/ws_client.py)."""

from __future__ import annotations

import asyncio
import re
import threading
import time

import pytest

from harness.ws_client import StreamlitSession

from .test_browser import wait_idle

pytestmark = pytest.mark.e2e

QUESTION = "reveal_pick_forward_t900"
COUNT = re.compile(r"The class's answers \((\d+)\)")


def _vote(url: str) -> None:
    async def student() -> None:
        async with StreamlitSession(url, timeout=120) as s:
            await s.open("forward")
            s.set_radio(QUESTION, s.widgets[QUESTION].proto.options[0])
            await s.rerun()

    th = threading.Thread(target=asyncio.run, args=(student(),), daemon=True)
    th.start()
    th.join(180)
    assert not th.is_alive(), "the voting student did not finish"


def _count(page) -> int | None:
    m = COUNT.search(page.get_by_test_id("stMain").inner_text())
    return int(m.group(1)) if m else None


def _px(page, selector: str) -> float:
    return page.evaluate(
        "s => { const e = document.querySelector(s); return e ? parseFloat(getComputedStyle(e).fontSize) : -1 }",
        selector,
    )


TICK = "[data-testid='stMain'] .js-plotly-plot .xtick text"
SEED = "[data-testid='stMain'] .st-key-fwd_seed input"


def test_the_presenter_sees_votes_arrive_and_large_ticks(browser, app_url):
    context = browser.new_context(viewport={"width": 1920, "height": 1080})
    context.set_default_timeout(60_000)
    page = context.new_page()
    try:
        page.goto(f"{app_url}/forward")
        page.locator(TICK).first.wait_for(state="attached")
        wait_idle(page)
        plain = {"tick": _px(page, TICK), "seed": _px(page, SEED)}
        page.goto(f"{app_url}/forward?present=1")
        # presenting, the question is one line above the pictures: the teacher opens it to ask the class
        page.get_by_test_id("stExpander").filter(has_text="Predict, then reveal").locator("summary").first.click()
        page.get_by_text("The class's answers").first.wait_for()
        page.locator(TICK).first.wait_for(state="attached")
        wait_idle(page)
        presenting = {"tick": _px(page, TICK), "seed": _px(page, SEED)}
        before = _count(page)
        assert before is not None
        _vote(app_url)  # a student picks an answer; the presenter's page is not touched
        deadline, seen = time.monotonic() + 30, before
        while time.monotonic() < deadline and seen == before:
            page.wait_for_timeout(250)
            seen = _count(page)
        assert seen == before + 1, (before, seen)
        assert plain["tick"] > 0 and presenting["tick"] >= 16 > plain["tick"], (plain, presenting)
        assert presenting["seed"] >= 19 > plain["seed"] > 0, (plain, presenting)
    finally:
        context.close()
