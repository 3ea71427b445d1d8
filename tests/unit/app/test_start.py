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


def test_the_rule_catches_a_formula(tiny_model_dir):
    """The check above can fail: the Forward page opens with its formula."""
    at = app_test(tiny_model_dir, page="views/forward.py")
    at.run()
    found, formulas = formulas_before_the_first_picture(at)
    assert found and formulas


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


def test_forward_is_asked_for_by_name(tiny_model_dir):
    at = app_test(tiny_model_dir, page="views/forward.py")
    at.run()
    assert_ok(at)
    assert at.title[0].value.startswith("Forward process")
