"""The Particle lab's free-form inputs are capped before they are read, and a hand-made brush selection gets one
sentence (issue 32, items 2 and 7); the brush adds to the typed points (issue 36, item 6)."""

from __future__ import annotations

import math

import pytest
import torch

from model.particles import data

GRID = data.brush_grid()


def test_text_over_the_character_cap_is_refused_before_it_is_read():
    text = "0.1 0.2\n" * (data.MAX_TEXT_CHARS // 8 + 1)
    with pytest.raises(ValueError, match=r"characters, more than the 64,000"):
        data.parse_points(text)


def test_more_points_than_the_cap_stop_the_reading_at_the_cap():
    with pytest.raises(ValueError, match="more than 2,000 points"):
        data.parse_points("0.1 0.2\n" * (data.MAX_POINTS + 1))
    assert len(data.parse_points("0.1 0.2\n" * data.MAX_POINTS)) == data.MAX_POINTS
    # the reading stops at the first point past the cap: a bad line after it is never looked at
    with pytest.raises(ValueError, match="more than 2,000 points"):
        data.parse_points("0.1 0.2\n" * (data.MAX_POINTS + 1) + "not a point\n")


@pytest.mark.parametrize(
    "entries",
    [
        [{"point_index": None}],
        [{"point_index": math.inf}],
        [{"point_index": [1, 2]}],
        [{"point_index": "abc"}],
        [{"point_index": 1.0}],
        [{"point_index": True}],
        [{"point_index": -1}],
        [{"point_index": len(GRID)}],
        [7],
        [{"x": 0.1}],
        "abc",
        None,
        [{"point_index": 1}] * (len(GRID) + 1),
    ],
)
def test_a_hand_made_selection_gets_one_sentence(entries):
    with pytest.raises(ValueError, match=r"^The brush selection is not one the grid could have made \(.*\): draw"):
        data.selection_indices(entries, len(GRID))


def test_brushed_refuses_text_indices_in_a_sentence_not_int_s_message():
    with pytest.raises(ValueError, match="The brush selection"):
        data.brushed(["abc"], GRID)
    with pytest.raises(ValueError, match="The brush selection"):
        data.brushed([None], GRID)


def test_a_real_selection_gives_its_dots_once_each():
    entries = [{"point_index": i, "curve_number": 1} for i in (5, 3, 5, 1680)]
    assert data.selection_indices(entries, len(GRID)) == [5, 3, 5, 1680]
    pts = data.brushed(data.selection_indices(entries, len(GRID)), GRID)
    assert torch.equal(pts, GRID[[3, 5, 1680]])


def test_brushed_points_are_added_to_the_text_once():
    typed = "0.5, 0.3\n-0.5, -0.2\n"
    once = data.add_to_text(typed, data.brushed([0, 1, 840], GRID))
    assert len(data.parse_points(once)) == 5 and once.startswith(typed)
    twice = data.add_to_text(once, data.brushed([1, 2, 840], GRID))  # 1 and 840 are there already
    assert len(data.parse_points(twice)) == 6
    assert torch.allclose(data.parse_points(twice)[2:], GRID[[0, 1, 840, 2]])
    assert data.add_to_text("", data.brushed([3], GRID)).count("\n") == 0
    assert data.add_to_text("not a point", data.brushed([3], GRID)).startswith("not a point\n")
