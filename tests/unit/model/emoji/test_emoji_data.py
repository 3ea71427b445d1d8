"""The emoji data script on a small stand-in: two fake npm tarballs built here (no network), pins of their own."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile

import numpy as np
import pytest
from PIL import Image

from model.emoji import data as ed

RED, BLUE = (255, 0, 0), (0, 0, 255)


def _sheet(colours: dict[tuple[int, int], tuple[int, int, int]], alpha: int = 255) -> bytes:
    """A 2×2-cell RGBA sheet (68×68): cell (x, y) filled with its colour inside the 1-px border, border black."""
    a = np.zeros((2 * ed.CELL, 2 * ed.CELL, 4), np.uint8)
    a[..., 3] = 255
    for (x, y), c in colours.items():
        a[y * ed.CELL + 1 : y * ed.CELL + 33, x * ed.CELL + 1 : x * ed.CELL + 33] = (*c, alpha)
    buf = io.BytesIO()
    Image.fromarray(a, "RGBA").save(buf, "PNG")
    return buf.getvalue()


def _tgz(path, files: dict[str, bytes]) -> str:
    with tarfile.open(path, "w:gz") as tar:
        for name, raw in files.items():
            info = tarfile.TarInfo(f"package/{name}")
            info.size = len(raw)
            tar.addfile(info, io.BytesIO(raw))
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _item(name, unified, x, y, category, google=True, twitter=True):
    return {
        "name": name,
        "unified": unified,
        "short_names": [name.lower().replace(" ", "_")],
        "category": category,
        "subcategory": "face-smiling",
        "sheet_x": x,
        "sheet_y": y,
        "sort_order": x + 2 * y,
        "has_img_google": google,
        "has_img_twitter": twitter,
        "has_img_apple": True,
    }


@pytest.fixture
def stand_in(tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    cache.mkdir()
    table = [
        _item("SMILING FACE", "263A-FE0F", 0, 0, "Smileys & Emotion"),
        _item("CAT", "1F408", 1, 0, "Animals & Nature", twitter=False),
        _item("LIGHT SKIN TONE", "1F3FB", 0, 1, "Component"),
    ]
    files = {
        "emoji.json": json.dumps(table).encode(),
        "img/google/sheets/32.png": _sheet({(0, 0): RED, (1, 0): BLUE}),
        "img/twitter/sheets/32.png": _sheet({(0, 0): BLUE}, alpha=0),
        "img/apple/sheets/32.png": b"not a png: reading the apple sheet would fail",
    }
    pins = {
        ed.DATASOURCE: ("ds.tgz", _tgz(cache / "ds.tgz", files)),
        ed.EMOJILIB: (
            "lib.tgz",
            _tgz(cache / "lib.tgz", {"dist/emoji-en-US.json": json.dumps({"☺️": ["smile", ":)"]}).encode()}),
        ),
    }

    def no_network(*a, **k):
        raise AssertionError("the test must not fetch")

    monkeypatch.setattr(ed.subprocess, "run", no_network)
    return tmp_path, cache, pins


def test_build_cuts_google_and_twitter_cells_on_white_with_their_words(stand_in):
    tmp, cache, pins = stand_in
    m = ed.build_emoji(tmp / "out", cache, pins)
    d = ed.load_emoji(tmp / "out")
    assert d.images.shape == (3, 32, 32, 3) and d.images.dtype == np.uint8  # 2 + 1 sets, Component left out
    assert [(r["unified"], r["set"]) for r in d.rows] == [
        ("263A-FE0F", "google"),
        ("263A-FE0F", "twitter"),
        ("1F408", "google"),
    ]
    assert (d.images[0] == RED).all() and (d.images[2] == BLUE).all()  # the cell without its border
    assert (d.images[1] == 255).all()  # a transparent cell composited on white
    assert d.categories.tolist() == [0, 0, 2]
    assert d.rows[0]["name"] == ["smiling", "face"] and d.rows[0]["keywords"] == ["smile"]
    assert d.rows[0]["subcategory"] == ["face", "smiling"] and d.rows[2]["keywords"] == []
    assert m["licences"]["twitter"].startswith("CC-BY-4.0") and set(m["sets"]) == {"google", "twitter"}


def test_a_tarball_with_another_checksum_is_refused(stand_in):
    tmp, cache, pins = stand_in
    bad = dict(pins)
    bad[ed.EMOJILIB] = ("lib.tgz", "0" * 64)
    with pytest.raises(ValueError, match="SHA-256"):
        ed.build_emoji(tmp / "out", cache, bad)


def test_missing_data_says_how_to_build_it(tmp_path):
    with pytest.raises(FileNotFoundError, match="model.cli.data emoji"):
        ed.load_emoji(tmp_path)


def test_words_and_held_out_split_are_stable():
    assert ed.words("Flag: Côte-d'Ivoire 2") == ["flag", "c", "te", "d", "ivoire", "2"]
    assert ed.held_out("1F600") == ed.held_out("1F600")
    share = np.mean([ed.held_out(f"{i:05X}") for i in range(2000)])
    assert 0.02 < share < 0.08
