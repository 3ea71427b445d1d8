"""The guided tour (issue 26): offered once per session on the Start page, each step bound to a widget that gets an
outline, Next crosses pages, and it can be dismissed for good: a cookie keeps "seen" across reloads."""

from __future__ import annotations

import ast
from pathlib import Path

import torch
from conftest import app_test, assert_ok

from app.ui import tour

torch.set_num_threads(1)
ROOT = Path(__file__).resolve().parents[3]


def outlined(at) -> list[str]:
    """The widget keys the tour's style outlines in this run."""
    return [h.proto.body.split(".st-key-")[1].split(" ")[0] for h in at.get("html") if ".st-key-" in h.proto.body
            and "outline" in h.proto.body]  # fmt: skip


def panel(at) -> str:
    return " ".join(m.value for m in at.markdown if m.value.startswith("**Tour "))


def test_every_step_is_bound_to_a_widget_key_the_app_draws():
    keys = set()
    for path in (ROOT / "app").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call):
                keys |= {k.value.value for k in node.keywords if k.arg == "key" and isinstance(k.value, ast.Constant)}
    for step in tour.STEPS:
        assert step.widget in keys, step
        assert (ROOT / "app" / step.page).is_file(), step


def test_the_tour_is_offered_taken_and_crosses_pages(tiny_model_dir):
    at = app_test(tiny_model_dir)
    at.run()
    assert_ok(at)
    assert at.button(key="tour_take") and not panel(at)  # offered, not forced
    at.button(key="tour_take").click().run()
    assert_ok(at)
    assert panel(at).startswith(f"**Tour 1 of {len(tour.STEPS)}: Your photo.**")
    assert outlined(at) == ["sample_name"]
    assert not any(b.key == "tour_take" for b in at.button)  # the offer is gone while the tour runs
    at.button(key="tour_next").click().run()
    assert_ok(at)
    assert at.title[0].value.startswith("Forward process")  # Next went to the step's page
    assert panel(at).startswith("**Tour 2 of") and outlined(at) == ["fwd_t"]
    assert at.slider(key="fwd_t")  # the outlined widget is on this page
    at.button(key="tour_back").click().run()
    assert at.title[0].value.startswith("Start here") and outlined(at) == ["sample_name"]
    for _ in range(len(tour.STEPS) - 1):
        at.button(key="tour_next").click().run()
        assert_ok(at)
    assert panel(at).startswith(f"**Tour {len(tour.STEPS)} of")
    at.button(key="tour_next").click().run()  # "Done" on the last step
    assert_ok(at)
    assert not panel(at) and not outlined(at)
    at.switch_page("views/start.py").run()
    assert not any(b.key == "tour_take" for b in at.button)  # once per session


def test_no_thanks_and_end_dismiss_it_for_the_session(tiny_model_dir):
    at = app_test(tiny_model_dir)
    at.run()
    at.button(key="tour_no").click().run()
    assert_ok(at)
    assert not any(b.key in ("tour_take", "tour_no") for b in at.button) and not panel(at)
    at2 = app_test(tiny_model_dir)
    at2.run()
    at2.button(key="tour_take").click().run()
    at2.button(key="tour_end").click().run()
    assert_ok(at2)
    assert not panel(at2) and not outlined(at2)
    at2.switch_page("views/forward.py").run()
    at2.switch_page("views/start.py").run()
    assert not panel(at2) and not any(b.key == "tour_take" for b in at2.button)


def test_a_first_visit_to_another_page_is_not_interrupted(tiny_model_dir):
    at = app_test(tiny_model_dir, page="views/forward.py")
    at.run()
    assert not panel(at) and not any(b.key == "tour_take" for b in at.button)
    at.switch_page("views/start.py").run()
    assert not any(b.key == "tour_take" for b in at.button)  # seen: the learner found their own way in


def cookie_scripts(at) -> list[str]:
    return [h.proto.body for h in at.get("html") if "document.cookie" in h.proto.body]


def test_once_seen_the_browser_is_told_once_and_a_browser_that_was_told_is_not_offered_it(tiny_model_dir, monkeypatch):
    at = app_test(tiny_model_dir)
    at.run()
    assert cookie_scripts(at) == []  # offered, not yet seen
    at.button(key="tour_no").click().run()
    assert_ok(at)
    assert cookie_scripts(at) == [tour.COOKIE_JS] and f"{tour.COOKIE}=seen" in tour.COOKIE_JS
    at.run()
    assert cookie_scripts(at) == []  # once per session
    # a new session (a reload) in a browser that carries the cookie: no offer
    monkeypatch.setattr(tour, "_cookie_says_seen", lambda: True)
    at2 = app_test(tiny_model_dir)
    at2.run()
    assert_ok(at2)
    assert not any(b.key == "tour_take" for b in at2.button) and cookie_scripts(at2) == []
