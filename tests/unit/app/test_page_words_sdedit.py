"""AppTest: the words-to-pictures page's "Turn your photo into an emoji" section (SDEdit, issue 37 item 4) on a tiny
randomly initialised emoji model: the four pictures, the strength slider, and no photo or a bad one."""

from __future__ import annotations

import pytest
import torch
from conftest import assert_ok, image_captions, words_page

torch.set_num_threads(1)  # the machine is shared; one thread is much faster under contention

PICTURES = ["your photo at 32 px", "what the autoencoder keeps of it"]


def test_the_section_shows_the_photo_what_is_kept_the_noised_start_and_the_emoji(emoji_dir):
    at = words_page(emoji_dir, emoji_prompt="smiling cat")
    assert_ok(at)
    assert any(h.value == "7. Turn your photo into an emoji" for h in at.subheader)
    caps = image_captions(at)
    assert all(c in caps for c in PICTURES)
    assert "noised to t = 599" in caps and "the emoji: smiling cat" in caps  # default strength 0.6: round(0.6 · 999)
    assert at.slider(key="emoji_strength").value == pytest.approx(0.6)
    assert any("`astronaut`" in c.value and "3 steps from t = 599" in c.value for c in at.caption)
    at.slider(key="emoji_strength").set_value(1.0).run()
    assert_ok(at)
    assert "noised to t = 999" in image_captions(at)
    at.slider(key="emoji_strength").set_value(0.05).run()
    assert_ok(at)
    assert "noised to t = 50" in image_captions(at)


def test_without_a_photo_the_section_says_where_to_get_one_and_the_page_runs_on(emoji_dir):
    at = words_page(emoji_dir, image_source="Upload")
    assert_ok(at)
    assert any("There is no photo to start from" in i.value for i in at.info)
    assert not any(c in image_captions(at) for c in PICTURES)
    assert "the finished picture" in image_captions(at)  # the rest of the page is drawn


def test_an_upload_that_cannot_be_read_gets_a_sentence(emoji_dir):
    at = words_page(
        emoji_dir,
        image_source="Upload",
        upload_bytes=b"not a picture at all",
        upload_digest="0" * 64,
        upload_name="junk.png",
    )
    assert_ok(at)
    assert len(at.warning) == 1 and "Traceback" not in at.warning[0].value
    assert not any(c in image_captions(at) for c in PICTURES)
