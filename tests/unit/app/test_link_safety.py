"""A shared link cannot put markdown, LaTeX or a remote image on the receiver's page (issue 28 item 4), and a value
the page cannot use gets a sentence, never a silent reset (issue 26: ``/inside?qrow=99``)."""

from __future__ import annotations

import re

import pytest
from conftest import app_test, assert_ok
from fakes import tiny_attention_unet

from app.session.text import code
from model.diffusion.schedule import make_schedule

pytestmark = pytest.mark.usefixtures("one_torch_thread")

IMAGE = "![x](http://127.0.0.1:9/p.png)"  # the receiving browser would fetch this
LINK = "[x](http://127.0.0.1:9/)"  # a clickable link
COVER = r"$\rule{200em}{200em}$"  # LaTeX that covers the page
BREAKOUT = "`x` ![y](http://127.0.0.1:9/q.png)"  # tries to end the code span


def _outside_code(text: str) -> str:
    return re.sub(r"`[^`\n]*`", "", text)


def _assert_inert(sentences: list[str]) -> None:
    """No markdown link or image, no LaTeX, outside inline code."""
    for s in sentences:
        bare = _outside_code(s)
        assert "](" not in bare and "$" not in bare and "\\rule" not in bare, s


def test_code_makes_any_value_one_inert_span():
    assert code(IMAGE) == f"`{IMAGE}`"
    assert code(BREAKOUT).count("`") == 2 and "](" not in _outside_code(code(BREAKOUT))
    assert code("a\nb\rc") == "`a b c`"
    assert code("x" * 100, limit=10) == "`" + "x" * 10 + "…`"
    assert code("") == "(empty)" and code("   ") == "(empty)"


def test_link_values_are_echoed_as_code_only(tiny_model_dir):
    at = app_test(tiny_model_dir, 32, page="views/forward.py")
    for k, v in {"img": IMAGE, "t": LINK, "seed": COVER, "schedule": BREAKOUT, "model": IMAGE}.items():
        at.query_params[k] = v
    at.run()
    assert_ok(at)
    said = [w.value for w in at.warning]
    assert len(said) == 5, said  # each bad value still gets its sentence ...
    _assert_inert(said)  # ... and none of them renders
    text = " ".join(said)
    for value in (IMAGE, LINK, COVER):
        assert f"`{value}`" in text, text  # the value is still named, as code


def test_names_checked_by_the_inside_page_are_echoed_as_code(tiny_model_dir):
    at = app_test(tiny_model_dir, 32, page="views/inside.py")
    at.query_params["res"] = "32"
    at.query_params["block"] = LINK
    at.run()
    assert_ok(at)
    said = [w.value for w in at.warning]
    assert any(f"block=`{LINK}`" in s for s in said), said
    _assert_inert(said)


@pytest.fixture(scope="module")
def attention_model_dir(tmp_path_factory):
    """A tiny RGB model with self-attention (its grid at 32 px is smaller than 99)."""
    from model.nets.checkpoint_io import save_model

    folder = tmp_path_factory.mktemp("tiny-attention-links")
    save_model(tiny_attention_unet(), make_schedule("linear"), folder)
    return folder


def test_a_query_position_outside_the_grid_gets_a_sentence(attention_model_dir):
    at = app_test(attention_model_dir, 32, page="views/inside.py")
    at.query_params["res"] = "32"
    at.query_params["qrow"] = "99"
    at.query_params["qcol"] = "98"
    at.run()
    assert_ok(at)
    said = " ".join(w.value for w in at.warning)
    row, col = at.slider(key="ins_qrow"), at.slider(key="ins_qcol")
    assert row.value < 99 and col.value < 98
    assert "qrow=`99` is outside" in said and f"using {row.value}" in said, said
    assert "qcol=`98` is outside" in said and f"using {col.value}" in said, said
    at.run()  # said once
    assert "is outside" not in " ".join(w.value for w in at.warning)
