"""Presentation mode in a real browser at 1920×1080 (a projector): no sidebar, larger type, and the main row of
pictures with its slider on the first screen, on the pages that have one."""

from __future__ import annotations

import pytest

from .conftest import ARTIFACTS, IDLE
from .test_browser import image_with_caption, no_traceback, slider_input, wait_idle

pytestmark = pytest.mark.e2e

# page path, the slider's widget key, a caption prefix of a picture in the main row
PAGES = [
    ("forward", "fwd_t", "x_t at t ="),
    ("denoise", "den_t", "x_t: the input"),
    ("inside", "ins_t", "x_t: the input"),
    ("trajectory", "traj_step", "x_t, t ="),  # the link runs 10 steps (run=1), then the step row shows
]
QUERY = {"trajectory": "steps=10&run=1&"}


def settled_box(page, locator, timeout_s: float = 60) -> dict:
    """The locator's bounding box once the page is done: the script idle (the picture can appear while the script
    still adds what goes above or below it), the picture's bytes decoded, and the box the same two frames running.
    A fixed wait raced with a slow first run: Denoise in a fresh-clone `make test` measured a page still laying out."""
    import time

    deadline = time.monotonic() + timeout_s
    last = None
    while time.monotonic() < deadline:
        wait_idle(page)
        locator.locator("img").evaluate("img => img.decode().catch(() => null)")
        box = locator.bounding_box()
        page.evaluate("() => new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))")
        if box is not None and box == last and page.locator(IDLE).count():
            return box
        last = box
        page.wait_for_timeout(100)
    raise AssertionError(f"the picture's box never settled: {last}")


@pytest.mark.parametrize(("path", "slider", "caption"), PAGES, ids=[p for p, _, _ in PAGES])
def test_presentation_fits_a_1080p_screen(browser, app_url, path, slider, caption):
    context = browser.new_context(viewport={"width": 1920, "height": 1080})
    context.set_default_timeout(60_000)
    page = context.new_page()
    try:
        page.goto(f"{app_url}/{path}?{QUERY.get(path, '')}")
        pic = image_with_caption(page, caption).first
        pic.wait_for()
        plain = settled_box(page, pic)
        page.goto(f"{app_url}/{path}?{QUERY.get(path, '')}present=1")
        pic = image_with_caption(page, caption).first
        pic.wait_for()
        box = settled_box(page, pic)
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / f"present-1920x1080-{path}.png"))
        # issue 26: presentation mode enlarges the pictures (it shrank them from 476 to 256 px) ...
        assert box["width"] >= plain["width"] - 1, (plain, box)
        assert box and box["y"] + box["height"] <= 1080, box  # the whole picture, caption included, on screen
        assert not page.get_by_test_id("stSidebar").is_visible()
        s = slider_input(page, slider).bounding_box()
        assert s and s["y"] + s["height"] <= 1080
        size = page.evaluate(
            "() => parseFloat(getComputedStyle(document.querySelector(\"[data-testid='stMain'] [data-testid='stImageCaption']\")).fontSize)"
        )
        assert size >= 17, size  # captions were 14 px
        # ... and the numbers (st.metric shrank from 36 to 21 px)
        metric_px = page.evaluate(
            "() => [...document.querySelectorAll(\"[data-testid='stMain'] [data-testid='stMetricValue']\")]"
            ".map(e => parseFloat(getComputedStyle(e.querySelector('div, p') || e).fontSize))"
        )
        assert all(px >= 36 for px in metric_px), metric_px
        no_traceback(page)
        page.get_by_role("button", name="Leave presentation mode").click()
        page.get_by_test_id("stSidebar").wait_for(state="visible")
    finally:
        context.close()
