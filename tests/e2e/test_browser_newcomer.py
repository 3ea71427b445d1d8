"""Issue 36 in a real browser, for a newcomer: the tour's last step scrolls the Words drawer into view (it sat 1,694 px
below the fold of a 900-px window), and the About page fits a 400-px phone (its table ran past the right edge)."""

from __future__ import annotations

import pytest

from app.ui import tour

from .conftest import ARTIFACTS
from .test_browser import no_traceback, open_app, wait_idle

pytestmark = pytest.mark.e2e

# Every element of the page's text (paragraphs, tables, their cells, a formula's box) that ends past the screen's edge
PAST_THE_EDGE_JS = """() => {
  const W = document.documentElement.clientWidth, bad = [];
  for (const e of document.querySelectorAll("[data-testid=stMain] [data-testid=stMarkdownContainer] *")) {
    if (e.closest("svg") || (e.closest(".katex") && !e.classList.contains("katex"))) continue;  // a formula: its box
    const r = e.getBoundingClientRect();
    if (r.width && r.right > W + 1) bad.push(`${e.tagName}: ${Math.round(r.right)} px: ${e.textContent.slice(0, 40)}`);
  }
  return bad;
}"""

IN_VIEW_JS = """(key) => {
  const e = document.querySelector(`.st-key-${key}`);
  if (!e) return false;
  const r = e.getBoundingClientRect();
  return r.height > 0 && r.top >= 0 && r.bottom <= window.innerHeight;
}"""


def test_the_tour_scrolls_each_outlined_widget_into_view(browser, app_url):
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    context.set_default_timeout(60_000)
    page = context.new_page()
    try:
        open_app(page, app_url)
        page.locator(".st-key-tour_take button").click()
        for i in range(1, len(tour.STEPS) + 1):
            page.get_by_text(f"Tour {i} of {len(tour.STEPS)}:").wait_for()
            wait_idle(page)
            if i < len(tour.STEPS):
                page.locator(".st-key-tour_next button").click()
        words = tour.STEPS[-1].widget
        assert page.evaluate(
            "(key) => document.querySelector(`.st-key-${key}`).getBoundingClientRect().height > 0", words
        )
        page.wait_for_function(IN_VIEW_JS, arg=words, timeout=15_000)  # polls: the script scrolls once it is drawn
        no_traceback(page)
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "tour-step-5.png"))
    finally:
        context.close()


def test_the_about_page_fits_a_phone(browser, app_url):
    context = browser.new_context(viewport={"width": 400, "height": 850}, is_mobile=True, has_touch=True)
    context.set_default_timeout(60_000)
    page = context.new_page()
    try:
        open_app(page, f"{app_url}/about")
        page.locator("[data-testid=stMain] table").wait_for()
        page.locator("[data-testid=stMain] table .katex").last.wait_for()  # formulas laid out
        wait_idle(page)
        assert page.evaluate(PAST_THE_EDGE_JS) == []
        no_traceback(page)
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "about-phone.png"), full_page=True)
    finally:
        context.close()


DARK_JS = """() => {
  const [r, g, b] = getComputedStyle(document.querySelector("[data-testid=stApp]")).backgroundColor.match(/\\d+/g);
  return Number(r) + Number(g) + Number(b) < 200;
}"""


def test_a_chosen_dark_theme_survives_reloading_a_sub_page(page, app_url):
    """Streamlit keeps the chosen theme under the address the tab was loaded at, so a theme chosen on / was lost on
    reloading /forward (app/ui/theme_memory.py keeps every page's key in step)."""
    from app.ui import theme_memory

    open_app(page, app_url)
    assert not page.evaluate(DARK_JS)
    page.locator("[data-testid='stMainMenu']").click()
    page.locator("[data-testid='stMainMenuItem-theme-Dark']").click()
    page.wait_for_function(DARK_JS)
    page.locator("[data-testid='stSidebarNav'] a[href$='/forward']").click()  # to another page, as a learner does
    page.wait_for_function("() => location.pathname.endsWith('/forward')")
    wait_idle(page)
    key = f"stActiveTheme-/forward-v{theme_memory.KEY_VERSION}"
    page.wait_for_function(f"() => localStorage.getItem('{key}') !== null", timeout=15_000)
    page.reload()
    page.wait_for_selector("[data-testid='stMain'] [data-testid='stHeading']")
    assert page.evaluate(DARK_JS)
    no_traceback(page)
