"""The real app in a real browser: Playwright (sync API) driving Debian's Chromium.

Scenarios (each in a fresh session, screenshots in tests/e2e/artifacts/):

* upload a photo, move the t slider with the keyboard, and see x_t change;
* upload a bad file (text called .png): one sentence, no traceback; then a good one;
* run a reverse trajectory (tiny model), scrub it, and download the GIF.
"""

from __future__ import annotations

import hashlib
import io
import re
from pathlib import Path
from urllib.parse import urljoin

import pytest
from PIL import Image

from .conftest import ARTIFACTS, IDLE, RUNNING

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
PHOTO = ROOT / "assets" / "chelsea.jpg"
FILE_INPUT = "[data-testid='stSidebar'] [data-testid='stFileUploader'] input[type=file]"


# ----------------------------------------------------------------------------------- helpers


def wait_idle(page, timeout: float = 60_000) -> None:
    """Wait for the rerun an action triggers (if it starts within 1.5 s), then for the app to be idle."""
    try:
        page.wait_for_selector(RUNNING, timeout=1_500)
    except Exception:  # the rerun may already be over (or not needed)
        pass
    page.wait_for_selector(IDLE, timeout=timeout)


def open_app(page, url: str) -> None:
    page.goto(url)
    page.wait_for_selector(IDLE)
    page.wait_for_selector("[data-testid='stMain'] [data-testid='stHeading']")


def image_with_caption(page, caption_prefix: str):
    return page.locator("[data-testid='stMain'] [data-testid='stImage']").filter(
        has=page.locator("[data-testid='stImageCaption']", has_text=caption_prefix)
    )


def image_digest(page, locator) -> tuple[str, str]:
    """(src, sha256 of the image bytes the browser would load)."""
    src = locator.locator("img").first.get_attribute("src")
    response = page.request.get(urljoin(page.url, src))
    assert response.ok, f"{src}: HTTP {response.status}"
    return src, hashlib.sha256(response.body()).hexdigest()


def switch_to_upload(page) -> None:
    page.get_by_test_id("stSidebar").get_by_text("Upload", exact=True).click()
    page.wait_for_selector(FILE_INPUT, state="attached")
    wait_idle(page)


def upload(page, name: str, data: bytes, mime: str) -> None:
    page.set_input_files(FILE_INPUT, files=[{"name": name, "mimeType": mime, "buffer": data}])
    wait_idle(page)


def no_traceback(page) -> None:
    assert page.locator("[data-testid='stException']").count() == 0
    body = page.locator("[data-testid='stApp']").inner_text()
    assert "Traceback" not in body and 'File "' not in body


def slider_input(page, key: str):
    """The keyboard-focusable range input inside the slider with this widget key."""
    return page.locator(f".st-key-{key} input[type=range]")


# ----------------------------------------------------------------------------------- scenarios


def test_upload_a_photo_and_move_t(page, app_url, shot):
    open_app(page, f"{app_url}/forward")
    switch_to_upload(page)
    upload(page, "cat.jpg", PHOTO.read_bytes(), "image/jpeg")
    page.get_by_test_id("stSidebar").get_by_text("x₀: cat.jpg").wait_for()
    x_t = image_with_caption(page, "x_t at t =")
    x_t.wait_for()
    caption_before = x_t.locator("[data-testid='stImageCaption']").inner_text()
    before = image_digest(page, x_t)
    shot(page, "uploaded")

    thumb = slider_input(page, "fwd_t")
    thumb.focus()
    thumb.press("ArrowRight")
    expected = int(re.search(r"t = (\d+)", caption_before).group(1)) + 1
    image_with_caption(page, f"x_t at t = {expected}").wait_for()
    wait_idle(page)
    after_one = image_digest(page, image_with_caption(page, "x_t at t ="))
    assert after_one[0] != before[0] and after_one[1] != before[1]

    thumb.focus()
    thumb.press("End")
    image_with_caption(page, "x_t at t = 999").wait_for()
    wait_idle(page)
    after_end = image_digest(page, image_with_caption(page, "x_t at t ="))
    assert after_end[1] not in (before[1], after_one[1])
    no_traceback(page)
    shot(page, "t999")


def test_bad_file_gives_one_sentence_then_a_good_file_works(page, app_url, shot):
    open_app(page, f"{app_url}/forward")
    switch_to_upload(page)
    upload(page, "notes.png", b"These are my lecture notes, not a picture.\n", "image/png")
    alert = page.locator("[data-testid='stAlert']").filter(has_text="whatever its name says").first
    alert.wait_for()
    message = alert.inner_text().strip()
    assert message.endswith(".") and not re.search(r"[.!?] [A-Z]", message), message  # one sentence
    assert "PNG, JPEG" in message
    no_traceback(page)
    assert image_with_caption(page, "x_t at t =").count() == 0
    shot(page, "bad-file")

    buf = io.BytesIO()
    Image.open(PHOTO).convert("RGBA").save(buf, format="PNG")  # a good PNG this time
    upload(page, "good.png", buf.getvalue(), "image/png")
    image_with_caption(page, "x_t at t =").wait_for()
    assert page.locator("[data-testid='stAlert']").filter(has_text="whatever its name says").count() == 0
    assert image_with_caption(page, "x₀").count() >= 1
    no_traceback(page)
    shot(page, "good-file")


def test_reverse_trajectory_scrub_and_download_gif(page, app_url, shot):
    page.goto(f"{app_url}/trajectory")
    page.wait_for_selector(IDLE)
    run_button = page.locator(".st-key-traj_go button")
    run_button.wait_for()
    steps = slider_input(page, "traj_steps")
    steps.focus()
    steps.press("Home")  # the fewest steps (10): quick, and enough frames to scrub
    wait_idle(page)
    run_button.click()
    page.locator("[data-testid='stAlert']").filter(has_text="took").first.wait_for(timeout=120_000)
    wait_idle(page)
    shot(page, "ran")

    step_label = page.locator("[data-testid='stMarkdownContainer']").filter(has_text=re.compile(r"Step \d+ of \d+"))
    first_label = step_label.first.inner_text()
    n = int(re.search(r"of (\d+)", first_label).group(1))
    assert n >= 2 and first_label.startswith(f"Step {n} of {n}")  # after Run: the result, not step 1's noise
    x_t = image_with_caption(page, "x_t, t =")
    before = image_digest(page, x_t)
    scrub = slider_input(page, "traj_step")
    scrub.focus()
    scrub.press("Home")
    page.get_by_text(f"Step 1 of {n}").wait_for()
    wait_idle(page)
    after = image_digest(page, image_with_caption(page, "x_t, t ="))
    assert after[1] != before[1]
    no_traceback(page)
    shot(page, "scrubbed")

    with page.expect_download(timeout=120_000) as info:
        page.locator(".st-key-traj_dl_gif button").click()
    download = info.value
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    target = ARTIFACTS / f"trajectory-{download.suggested_filename}"
    download.save_as(str(target))
    data = target.read_bytes()
    assert download.suggested_filename.endswith(".gif") and data[:6] in (b"GIF87a", b"GIF89a")
    gif = Image.open(io.BytesIO(data))
    assert gif.n_frames >= 2
