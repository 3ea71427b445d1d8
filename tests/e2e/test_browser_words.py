"""The real app in a real browser: Words to pictures with the trained emoji model. Type a prompt, get a picture and
one attention map per word, then walk back to the first step with the keyboard."""

from __future__ import annotations

import pytest

from model.emoji.pipeline import DEFAULT_DIR

from .test_browser import image_with_caption, no_traceback, open_app, slider_input, wait_idle

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(not (DEFAULT_DIR / "unet" / "config.json").is_file(), reason="no trained emoji model"),
]


def test_a_typed_prompt_gives_a_picture_its_words_maps_and_every_step(page, app_url, shot):
    open_app(page, f"{app_url}/words")
    box = page.locator(".st-key-emoji_prompt input")
    box.fill("red heart")
    box.press("Enter")
    wait_idle(page, timeout=120_000)
    page.get_by_text("[START]  red  heart", exact=True).wait_for(timeout=60_000)
    for caption in ("red", "heart", "the finished picture", "x̂₀ guided, w = 3"):
        assert image_with_caption(page, caption).count() >= 1, caption
    step = slider_input(page, "emoji_step")
    step.focus()
    step.press("Home")
    wait_idle(page)
    assert image_with_caption(page, "x̂₀ at step 1 of 25").count() == 1
    no_traceback(page)
    shot(page, "words")
