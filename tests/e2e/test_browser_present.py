"""Presentation mode in a real browser at 1920×1080 (a projector): no sidebar, larger type, and the main row of
pictures with its slider on the first screen, on the pages that have one."""

from __future__ import annotations

import pytest

from .conftest import ARTIFACTS, IDLE
from .test_browser import image_with_caption, no_traceback, slider_input

pytestmark = pytest.mark.e2e

# page path, the slider's widget key, a caption prefix of a picture in the main row
PAGES = [("forward", "fwd_t", "x_t at t ="), ("denoise", "den_t", "x_t: the input"), ("inside", "ins_t", "x_t: the input")]


@pytest.mark.parametrize(("path", "slider", "caption"), PAGES, ids=["forward", "denoise", "inside"])
def test_presentation_fits_a_1080p_screen(browser, app_url, path, slider, caption):
    context = browser.new_context(viewport={"width": 1920, "height": 1080})
    context.set_default_timeout(60_000)
    page = context.new_page()
    try:
        page.goto(f"{app_url}/{path}?present=1")
        page.wait_for_selector(IDLE)
        pic = image_with_caption(page, caption).first
        pic.wait_for()
        page.wait_for_timeout(500)  # let the images lay out
        assert not page.get_by_test_id("stSidebar").is_visible()
        box = pic.bounding_box()
        assert box and box["y"] + box["height"] <= 1080, box  # the whole picture, caption included, on screen
        s = slider_input(page, slider).bounding_box()
        assert s and s["y"] + s["height"] <= 1080
        size = page.evaluate(
            "() => parseFloat(getComputedStyle(document.querySelector(\"[data-testid='stMain'] [data-testid='stImageCaption']\")).fontSize)"
        )
        assert size >= 17, size  # captions were 14 px
        no_traceback(page)
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / f"present-1920x1080-{path or 'forward'}.png"))
        page.get_by_role("button", name="Leave presentation mode").click()
        page.get_by_test_id("stSidebar").wait_for(state="visible")
    finally:
        context.close()
