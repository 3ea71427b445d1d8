"""A link in a real browser (issues 26 and 28): its values cannot put an image, a link or LaTeX on the receiver's
page (the browser fetches nothing the link names), and an address naming no page says so instead of showing the
default page silently."""

from __future__ import annotations

from urllib.parse import urlencode

import pytest

from .test_browser import no_traceback, open_app

pytestmark = pytest.mark.e2e

TRAP = "127.0.0.1:9"  # nothing listens there; a request to it is what the link tried to cause
ALERTS = "[data-testid='stMain'] [data-testid='stAlert']"


def test_link_values_render_as_code_and_fetch_nothing(page, app_url, shot):
    asked: list[str] = []
    page.on("request", lambda req: asked.append(req.url) if TRAP in req.url else None)
    query = urlencode(
        {"img": f"![x](http://{TRAP}/p.png)", "t": f"[x](http://{TRAP}/)", "seed": r"$\rule{200em}{200em}$"}
    )
    open_app(page, f"{app_url}/forward?{query}")
    alerts = page.locator(ALERTS)
    alerts.filter(has_text="In the link, t=").first.wait_for()
    shot(page, "notes")
    assert asked == [], asked
    assert page.locator(f"{ALERTS} img").count() == 0
    assert page.locator(f"{ALERTS} a[href*='{TRAP}']").count() == 0
    assert page.locator(f"{ALERTS} .katex").count() == 0
    codes = page.locator(f"{ALERTS} code").all_inner_texts()
    assert f"![x](http://{TRAP}/p.png)" in codes and f"[x](http://{TRAP}/)" in codes, codes
    assert r"$\rule{200em}{200em}$" in codes, codes
    no_traceback(page)


def test_an_address_naming_no_page_says_so(page, app_url):
    open_app(page, f"{app_url}/nopage")
    note = page.locator(ALERTS).filter(has_text="This app has no page")
    note.wait_for()
    text = note.inner_text()
    assert "/nopage" in text and "showing" in text, text
    assert note.locator("code").inner_text() == "/nopage"
    no_traceback(page)
    # a page that exists gets no such sentence
    open_app(page, f"{app_url}/denoise")
    assert page.locator(ALERTS).filter(has_text="This app has no page").count() == 0


@pytest.fixture(scope="module")
def locked_url(chromium_path, tiny_model_dir, tmp_path_factory):
    """A classroom server whose list offers one Hub model, with the Hub out of reach (HF_HUB_OFFLINE)."""
    from harness.server import Server

    from .conftest import SERVER_START_TIMEOUT_S

    env = {
        "DIFFUSION_LENS_MODEL": str(tiny_model_dir),
        "DIFFUSION_LENS_SOURCES": "someone/offline-model",
        "HF_HUB_OFFLINE": "1",
        "HF_HOME": str(tmp_path_factory.mktemp("hf-home")),
        "DIFFUSION_LENS_THREADS": "1",
        "OMP_NUM_THREADS": "1",
    }
    with Server(env, tmp_path_factory.mktemp("locked") / "server.log") as server:
        server.wait_healthy(SERVER_START_TIMEOUT_S)
        yield server.url


def test_a_linked_hub_model_waits_for_a_click_and_falls_back_with_one_sentence(browser, locked_url, shot):
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    context.set_default_timeout(60_000)
    page = context.new_page()
    try:
        open_app(page, f"{locked_url}/forward?model=someone/offline-model")
        offer = page.locator("[data-testid='stMain']").get_by_text("This link uses the Hub model")
        offer.wait_for()
        assert "model=someone%2Foffline-model" in page.url or "model=someone/offline-model" in page.url
        page.locator("[data-testid='stMain'] [data-testid='stImage']").first.wait_for()  # the page is not empty
        shot(page, "proposed")
        page.get_by_role("button", name="Load this model").click()
        said = page.locator(ALERTS).filter(has_text="Using the bundled model instead.")
        said.wait_for()
        text = said.inner_text()
        assert "someone/offline-model" in text and "offline" in text and "local folder" not in text.lower(), text
        page.wait_for_url(lambda url: "model=bundled" in url)
        assert page.get_by_role("button", name="Load this model").count() == 0
        page.locator("[data-testid='stMain'] [data-testid='stImage']").first.wait_for()
        shot(page, "fell-back")
        no_traceback(page)
    finally:
        context.close()
