"""A student uploads a decoding bomb (issue 28, item 2): the page says in one sentence what is wrong and what to
do, the app keeps running, and a second rerun with the same upload does not decode it again."""

from __future__ import annotations

import pytest
from conftest import APP_ENTRY
from image_bytes import assert_one_sentence
from streamlit.testing.v1 import AppTest

from app.server import uploads
from harness import bombs


@pytest.mark.parametrize(("kind", "mime"), [("webp", "image/webp"), ("tiff_rgba", "image/tiff")])
def test_a_bomb_upload_gets_one_sentence_and_is_decoded_once(tiny_model_dir, kind, mime, monkeypatch):
    calls = []
    real = uploads.decode_image
    monkeypatch.setattr(uploads, "decode_image", lambda data, **kw: calls.append(data) or real(data, **kw))
    uploads.forget()
    data = bombs.ALL[kind](variant=7)
    at = AppTest.from_file(APP_ENTRY, default_timeout=240)
    at.session_state["model_source"] = str(tiny_model_dir)
    at.session_state["resolution"] = 32
    at.switch_page("views/denoise.py").run()
    at.radio(key="image_source").set_value("Upload").run()
    at.sidebar.get("file_uploader")[0].set_value((f"bomb.{bombs.SUFFIX[kind]}", data, mime)).run()
    assert not at.exception, [e.value for e in at.exception]
    shown = [e.value for e in at.error]
    assert len(shown) == 1 and "5999×5999" in shown[0] and "megapixels" in shown[0], shown
    assert_one_sentence(shown[0])
    at.run()  # the student moves on: a rerun with the same upload
    assert [e.value for e in at.error] == shown
    assert calls.count(data) == 1  # the refusal was kept, not worked out again
