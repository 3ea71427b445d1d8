"""Every page at the three sizes of issue 17 (a laptop 1400×1000, a projector 1920×1080 in presentation mode, a
phone 400×850): screenshots to tests/e2e/artifacts/, and on the phone no picture or formula sticks out past the
screen (the long formulas are broken into short lines), and every chart's title stays inside its chart, clear of
its legend, plot and subplot titles."""

from __future__ import annotations

import time

import pytest
from playwright.sync_api import expect

from .conftest import ARTIFACTS, IDLE
from .test_browser import image_with_caption, no_traceback, slider_input

pytestmark = pytest.mark.e2e

PAGES = ["", "forward", "denoise", "trajectory", "inside", "objective", "about"]
SIZES = {"laptop": (1400, 1000, ""), "projector": (1920, 1080, "?present=1"), "phone": (400, 850, "")}

OVERFLOW_JS = """() => {
  const W = document.documentElement.clientWidth, bad = [];
  for (const e of document.querySelectorAll("[data-testid=stMain] [data-testid=stImage] img")) {
    if (e.getBoundingClientRect().right > W + 1) bad.push("picture");
  }
  for (const e of document.querySelectorAll("[data-testid=stMain] .katex-display")) {
    // the formula's own width against the room its element has (KaTeX's box is itself ~2 px wider than its
    // fitted container, so compare with the element container, not with .katex-display)
    const k = e.querySelector(".katex") || e;
    const room = (e.closest("[data-testid=stElementContainer]") || e.parentElement).clientWidth;
    if (k.scrollWidth > room + 2 || k.getBoundingClientRect().right > W + 1) bad.push("formula");
  }
  return bad;
}"""

# Every chart's title on a phone: inside the chart, and clear of its legend, its plot area and its subplot titles;
# the legend clear of the x axis's title
CHART_TITLES_JS = """() => {
  const bad = [], box = e => e.getBoundingClientRect();
  const meets = (a, b) => a.left < b.right && b.left < a.right && a.top < b.bottom && b.top < a.bottom;
  for (const c of document.querySelectorAll("[data-testid=stMain] .js-plotly-plot")) {
    const t = c.querySelector(".gtitle");
    if (!t || !t.textContent) continue;
    const tb = box(t), name = t.textContent.slice(0, 40), cb = box(c);
    if (tb.left < cb.left - 1 || tb.right > cb.right + 1 || tb.top < cb.top - 1) bad.push(`${name}: outside the chart`);
    const others = [[".legend", "legend"], [".nsewdrag", "plot"], [".annotation", "subplot title"]];
    for (const [sel, what] of others) {
      for (const o of c.querySelectorAll(sel)) if (meets(tb, box(o))) bad.push(`${name}: meets the ${what}`);
    }
    const l = c.querySelector(".legend");  // and the legend below clears the x axis's title
    for (const x of c.querySelectorAll(".g-xtitle")) if (l && meets(box(l), box(x))) bad.push(`${name}: legend meets the x title`);
  }
  return bad;
}"""


# What the checks above measure, once laid out: every picture decoded, every chart drawn (Plotly draws after the
# element appears), then the boxes of the pictures, formulas, charts and chart titles after two animation frames
LAYOUT_JS = """async () => {
  const main = document.querySelector("[data-testid=stMain]");
  const decoded = i => Promise.race([i.decode().catch(() => null), new Promise(r => setTimeout(r, 1000))]);
  await Promise.all([...main.querySelectorAll("img")].map(decoded));  // (a lazy picture off screen never decodes)
  await document.fonts.ready;
  await new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)));
  const undrawn = [...main.querySelectorAll("[data-testid=stPlotlyChart]")].filter(c => !c.querySelector(".main-svg"));
  const boxes = [...main.querySelectorAll("img, .katex-display, .js-plotly-plot, .gtitle, .legend")].map(e => {
    const b = e.getBoundingClientRect();
    return [b.left, b.top, b.width, b.height].map(Math.round).join(",");
  });
  return undrawn.length ? null : boxes.join(";");
}"""


def settled_layout(page, timeout_s: float = 60) -> None:
    """Return once the script is idle and :data:`LAYOUT_JS`'s boxes are the same on two polls in a row (a fixed
    800 ms wait raced with a slow first run on a loaded machine)."""
    deadline = time.monotonic() + timeout_s
    last = None
    while time.monotonic() < deadline:
        page.wait_for_selector(IDLE)
        boxes = page.evaluate(LAYOUT_JS)
        if boxes is not None and boxes == last and page.locator(IDLE).count():
            return
        last = boxes
        page.wait_for_timeout(100)  # the polling interval
    raise AssertionError(f"the page's layout never settled: {last}")


@pytest.mark.parametrize("size", list(SIZES))
def test_every_page_at_three_sizes(browser, app_url, size):
    w, h, query = SIZES[size]
    phone = size == "phone"
    context = browser.new_context(viewport={"width": w, "height": h}, is_mobile=phone, has_touch=phone)
    context.set_default_timeout(60_000)
    page = context.new_page()
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    problems = {}
    try:
        for path in PAGES:
            page.goto(f"{app_url}/{path}{query}")
            page.wait_for_selector(IDLE)
            page.wait_for_selector("[data-testid='stMain'] [data-testid='stHeading']")
            settled_layout(page)  # pictures decoded, charts drawn, boxes still
            no_traceback(page)
            page.screenshot(path=str(ARTIFACTS / f"size-{size}-{path or 'start'}.png"), full_page=True)
            nav = page.locator(".st-key-phone_nav")
            # the page links above the page: on a phone only. expect() polls (up to 10 s): on a busy machine the
            # style element that hides them can land a moment after the links themselves (seen once in CI)
            (expect(nav).to_be_visible if phone else expect(nav).to_be_hidden)(timeout=10_000)
            if phone:
                bad = page.evaluate(OVERFLOW_JS) + page.evaluate(CHART_TITLES_JS)
                if bad:
                    problems[path or "start"] = bad
            if phone and path == "forward":
                # x_t is on the same screen as its t slider (the picture row no longer stacks)
                slider_top = slider_input(page, "fwd_t").bounding_box()["y"]
                x_t = image_with_caption(page, "x_t at t =").bounding_box()
                assert x_t["y"] + x_t["height"] - slider_top < h, (slider_top, x_t)
    finally:
        context.close()
    assert problems == {}, problems
