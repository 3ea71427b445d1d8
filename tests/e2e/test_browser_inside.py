"""The "Inside the network" page in a real browser (Playwright + Debian's Chromium, the tiny test model).

Scenario: open the page, see the architecture drawn (Graphviz, rendered in the browser), move t with the
keyboard, and the feature maps of the selected block change; pick another block and its ResNet stages show.
Screenshots go to tests/e2e/artifacts/.
"""

from __future__ import annotations

import hashlib
import re
from urllib.parse import urljoin

import pytest

from .conftest import IDLE, RUNNING

pytestmark = pytest.mark.e2e

MAIN = "[data-testid='stMain']"


def wait_idle(page, timeout: float = 60_000) -> None:
    """Wait for the rerun an action triggers (if it starts within 1.5 s), then for the app to be idle."""
    try:
        page.wait_for_selector(RUNNING, timeout=1_500)
    except Exception:  # the rerun may already be over
        pass
    page.wait_for_selector(IDLE, timeout=timeout)


def image_with_caption(page, prefix: str):
    return page.locator(f"{MAIN} [data-testid='stImage']").filter(
        has=page.locator("[data-testid='stImageCaption']", has_text=prefix)
    )


def digest(page, locator) -> str:
    """sha256 of the picture's bytes as the browser loads them."""
    src = locator.locator("img").first.get_attribute("src")
    response = page.request.get(urljoin(page.url, src))
    assert response.ok, f"{src}: HTTP {response.status}"
    return hashlib.sha256(response.body()).hexdigest()


def no_traceback(page) -> None:
    assert page.locator("[data-testid='stException']").count() == 0
    assert "Traceback" not in page.locator("[data-testid='stApp']").inner_text()


def test_inside_the_network_move_t_and_the_feature_maps_change(page, app_url, shot):
    page.goto(f"{app_url}/inside")
    page.wait_for_selector(IDLE)
    page.get_by_role("heading", name=re.compile("Inside the network")).wait_for()
    # the architecture diagram is drawn in the browser from the DOT string: one box per block
    diagram = page.locator(f"{MAIN} [data-testid='stGraphVizChart'] svg")
    diagram.wait_for()
    assert diagram.locator("g.node").count() >= 8  # x_t, conv_in, 2 down, mid, 2 up, conv_out, ...
    assert "UNetMidBlock2D" in diagram.text_content()

    maps = image_with_caption(page, "up 1's output")
    maps.wait_for()
    before = digest(page, maps)
    caption = image_with_caption(page, "x_t: the input at t =").inner_text()
    t0 = int(re.search(r"t = (\d+)", caption).group(1))
    shot(page, "t-start")

    thumb = page.locator(".st-key-ins_t input[type=range]")
    thumb.focus()
    thumb.press("End")
    image_with_caption(page, "x_t: the input at t = 999").wait_for()
    wait_idle(page)
    after_end = digest(page, image_with_caption(page, "up 1's output"))
    assert t0 != 999 and after_end != before

    thumb.focus()
    thumb.press("Home")
    image_with_caption(page, "x_t: the input at t = 0").wait_for()
    wait_idle(page)
    after_home = digest(page, image_with_caption(page, "up 1's output"))
    assert after_home not in (before, after_end)
    no_traceback(page)
    shot(page, "t0")

    # another block: its feature maps and its ResNet block's stages
    page.locator(f"{MAIN} .st-key-ins_block").click()
    page.get_by_role("option", name=re.compile(r"^down 1 ")).click()
    wait_idle(page)
    image_with_caption(page, "down 1's output").wait_for()
    image_with_caption(page, "1. input:").wait_for()
    assert image_with_caption(page, "+ time projection").count() == 1
    no_traceback(page)
    shot(page, "down1")
