"""Page layer: "Start here" is the landing page (issue 26): a story in live pictures, no formula above the first
picture, and a link into every page."""

from __future__ import annotations

import re

import pytest
import torch
from conftest import app_test, assert_ok, image_captions

torch.set_num_threads(1)

FORMULA = re.compile(r"\$|\\[a-zA-Z]+|\\\(|\\\[")  # markdown math, a LaTeX command


def walk(node):
    """Every element and block under ``node``, in the order they are drawn."""
    yield node
    for child in getattr(node, "children", {}).values():
        yield from walk(child)


def formulas_before_the_first_picture(at) -> tuple[bool, list[str]]:
    """(a picture was found, the formulas drawn before it in the main area)."""
    seen = []
    for el in walk(at.main):
        kind = getattr(el, "type", "")
        if kind == "imgs" or kind == "image":
            return True, seen
        if kind == "latex":
            seen.append(el.value)
        elif kind in ("markdown", "title", "header", "subheader", "caption") and FORMULA.search(str(el.value)):
            seen.append(el.value)
    return False, seen


@pytest.fixture(scope="module")
def start(tiny_model_dir):
    at = app_test(tiny_model_dir)  # no page asked for: what "/" shows
    at.run()
    return at


def test_root_is_start_here_with_no_formula_above_the_first_picture(start):
    assert_ok(start)
    assert start.title[0].value.startswith("Start here")
    found, formulas = formulas_before_the_first_picture(start)
    assert found and formulas == [], formulas


def test_the_rule_catches_a_formula():
    """The check can fail: a page that opens with a formula."""
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_string("import numpy as np, streamlit as st\nst.latex('x_t')\nst.image(np.zeros((4, 4, 3)))")
    at.run()
    found, formulas = formulas_before_the_first_picture(at)
    assert found and len(formulas) == 1 and "x_t" in formulas[0]


@pytest.mark.parametrize("page", ["forward", "denoise", "inside", "objective"])
def test_every_teaching_page_has_a_picture_before_any_formula(tiny_model_dir, page):
    """Issue 36: Forward opened with q(x_t | x_{t-1}) = N(...), the Markov chain and the reparametrisation."""
    at = app_test(tiny_model_dir, page=f"views/{page}.py")
    at.run()
    assert_ok(at)
    found, formulas = formulas_before_the_first_picture(at)
    assert found and not formulas, formulas


def test_the_story_is_computed_live_drowning_guess_and_emerging(start):
    caps = image_captions(start)
    for t in (0, 150, 350, 600, 999):
        assert f"step t = {t}" in caps
    assert "its guess of the noise" in caps and "photo minus the guessed noise" in caps
    assert "the new picture" in caps
    # the pictures differ: the drowning photo is not one picture repeated
    drown = [img.value[0] for img in start.image if img.captions and img.captions[0].startswith("step t = ")]
    assert len(set(drown)) == len(drown)


def test_links_into_every_page(start):
    links = {el.proto.page for el in walk(start.main) if getattr(el, "type", "") == "page_link"}
    assert {"forward", "denoise", "trajectory", "inside", "objective", "about", "glossary"} <= links


def test_where_next_links_every_page_of_the_navigation(start):
    """Issue 36: "Where next" left out the Particle lab and the Sampler race."""
    from pathlib import Path

    from conftest import APP_ENTRY

    pages = set(re.findall(r'st\.Page\(\s*"views/(\w+)\.py"', Path(APP_ENTRY).read_text())) - {"start"}
    drawn = list(walk(start.main))  # (the phone's navigation links every page too, above the page: not counted)
    heading = next(
        i for i, el in enumerate(drawn) if getattr(el, "type", "") == "subheader" and el.value == "Where next"
    )
    links = {el.proto.page for el in drawn[heading:] if getattr(el, "type", "") == "page_link"}
    assert {"particles", "race"} <= pages and pages <= links, pages - links


def test_forward_is_asked_for_by_name(tiny_model_dir):
    at = app_test(tiny_model_dir, page="views/forward.py")
    at.run()
    assert_ok(at)
    assert at.title[0].value.startswith("Forward process")
