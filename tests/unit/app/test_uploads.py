"""Uploads are decoded once per upload and a few at a time (issue 28, item 2): app/server/uploads.py."""

from __future__ import annotations

import threading
import time

import pytest
from image_bytes import encode
from PIL import Image

from app.compute import core
from app.server import admission, uploads
from model.images.decode import ImageLoadError


@pytest.fixture(autouse=True)
def _fresh():
    uploads.forget()
    yield
    uploads.forget()


def _photo(colour) -> bytes:
    return encode(Image.new("RGB", (300, 200), colour), "PNG")


def test_every_resolution_and_every_session_share_one_decode(monkeypatch):
    calls = []
    real = uploads.decode_image
    monkeypatch.setattr(uploads, "decode_image", lambda data, **kw: calls.append(len(data)) or real(data, **kw))
    data = _photo((1, 2, 3))
    key = core.digest(data)
    shapes = [tuple(core.image_tensor(key, res, data).shape) for res in (32, 64, 128)]
    assert shapes == [(1, 3, 32, 32), (1, 3, 64, 64), (1, 3, 128, 128)]
    assert len(calls) == 1


def test_a_refusal_is_kept_too(monkeypatch):
    calls = []
    real = uploads.decode_image
    monkeypatch.setattr(uploads, "decode_image", lambda data, **kw: calls.append(1) or real(data, **kw))
    bad = b"this is not a picture at all"
    for _ in range(3):  # three reruns of the page with the same bad upload
        with pytest.raises(ImageLoadError, match="not a PNG"):
            uploads.decoded(core.digest(bad), bad)
    assert len(calls) == 1


def test_sessions_waiting_for_the_same_bytes_get_the_one_decode(monkeypatch):
    started = []

    def slow(data, **kw):
        started.append(1)
        time.sleep(0.3)
        return Image.new("RGB", (8, 8))

    monkeypatch.setattr(uploads, "decode_image", slow)
    results = []
    threads = [threading.Thread(target=lambda: results.append(uploads.decoded("k", b"x"))) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert len(results) == 6 and len(started) == 1
    assert all(r is results[0] for r in results)


def test_at_most_decode_slots_decodes_run_at_once(monkeypatch):
    monkeypatch.setattr(uploads, "decode_image", lambda data, **kw: time.sleep(0.2) or Image.new("RGB", (8, 8)))
    threads = [threading.Thread(target=uploads.decoded, args=(f"key{i}", b"x")) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(20)
    stats = uploads.stats()
    assert stats["decodes"] == 8
    assert stats["peak_running"] == admission.decode_slots().size == 2
