"""The real app in a real browser: pick the bundled Fashion generator in the sidebar, generate one of each
class from pure noise, and run a guided trajectory that shows ε̂(x_t, y), ε̂(x_t, ∅) and the guided ε̃."""

from __future__ import annotations

import pytest

from model.nets.hub import FASHION_MODEL
from model.training.fashion import CLASSES

from .test_browser import image_with_caption, no_traceback, open_app, slider_input, wait_idle

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(not (FASHION_MODEL / "config.json").is_file(), reason="no Fashion generator checkpoint"),
]


def test_generate_one_of_each_class_and_a_guided_run(page, app_url, shot):
    open_app(page, f"{app_url}/trajectory")
    page.get_by_test_id("stSidebar").get_by_text("Fashion generator", exact=True).click()
    wait_idle(page)
    page.get_by_text("Pure noise (generate)", exact=True).click()
    wait_idle(page)
    steps = slider_input(page, "traj_steps")
    steps.focus()
    steps.press("Home")  # 10 steps: quick
    wait_idle(page)
    page.locator(".st-key-traj_each button").click()
    page.get_by_text("took", exact=False).first.wait_for(timeout=120_000)
    wait_idle(page)
    for name in CLASSES:
        assert image_with_caption(page, name).count() >= 1, name
    shot(page, "one-of-each")

    w = slider_input(page, "traj_guidance")
    w.focus()
    w.press("ArrowRight")  # w = 2.5 (it starts at the card's recommended 2): the page shows the three predictions
    wait_idle(page)
    page.locator(".st-key-traj_go button").click()
    page.locator("[data-testid='stAlert']").filter(has_text="guidance w =").first.wait_for(timeout=120_000)
    wait_idle(page)
    for caption in ("ε̂(x_t, y): with the class", "ε̂(x_t, ∅): without a label", "ε̃ = "):
        assert image_with_caption(page, caption).count() == 1, caption
    no_traceback(page)
    shot(page, "guided-run")
