"""Issue 26: the pages that show t and a seed share them. A t set on one page is where the next page opens, and a
page's own slider is never pulled back by a stale shared value."""

from __future__ import annotations

import pytest
from conftest import app_test, assert_ok

pytestmark = pytest.mark.slow


def test_t_and_seed_follow_the_learner_from_page_to_page(tiny_model_dir):
    at = app_test(tiny_model_dir, page="views/forward.py")
    at.run()
    assert_ok(at)
    at.slider(key="fwd_t").set_value(700)
    at.number_input(key="fwd_seed").set_value(4).run()
    assert_ok(at)
    assert at.slider(key="fwd_t").value == 700  # its own change stays

    at.switch_page("views/denoise.py").run()
    assert_ok(at)
    assert at.slider(key="den_t").value == 700 and at.number_input(key="den_seed").value == 4

    at.slider(key="den_t").set_value(123).run()
    assert_ok(at)
    assert at.slider(key="den_t").value == 123
    at.run()  # a rerun with no change keeps it
    assert at.slider(key="den_t").value == 123

    at.switch_page("views/inside.py").run()
    assert_ok(at)
    assert at.slider(key="ins_t").value == 123 and at.number_input(key="ins_seed").value == 4

    at.switch_page("views/forward.py").run()
    assert_ok(at)
    assert at.slider(key="fwd_t").value == 123 and at.number_input(key="fwd_seed").value == 4
