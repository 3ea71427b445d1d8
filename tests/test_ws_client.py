"""bench/ws_client.py picks the rerun's fragment as the browser does (no server needed; the real server run is in
tests/e2e/test_fragment_steps.py)."""

from __future__ import annotations

from ws_client import StreamlitSession, Widget  # bench/ is on pytest's pythonpath (pyproject.toml)


def _session() -> StreamlitSession:
    s = StreamlitSession("http://127.0.0.1:1")
    s.widgets = {
        "fwd_t": Widget("$$ID-a-fwd_t", "slider", "Timestep t", None, "frag1"),
        "fwd_schedule": Widget("$$ID-b-fwd_schedule", "radio", "Schedule", None, "frag1"),
        "den_t": Widget("$$ID-c-den_t", "slider", "Timestep t", None, "frag2"),
        "image_source": Widget("$$ID-d-image_source", "radio", "Image source", None, ""),
    }
    return s


def test_widgets_of_one_fragment_rerun_that_fragment_once():
    s = _session()
    s.set_slider("fwd_t", 300)
    s.set_radio("fwd_schedule", "cosine")
    assert s._fragment_to_rerun(None) == "frag1"
    assert s._fragment_to_rerun(None) == ""  # nothing changed since: the whole script


def test_anything_else_reruns_the_whole_script():
    s = _session()
    s.set_slider("fwd_t", 300)
    s.set_radio("image_source", "Upload")  # the sidebar is outside every fragment
    assert s._fragment_to_rerun(None) == ""
    s.set_slider("fwd_t", 301)
    s.set_slider("den_t", 5)  # two fragments
    assert s._fragment_to_rerun(None) == ""
    s.set_slider("fwd_t", 302)
    assert s._fragment_to_rerun("denoise") == ""  # a page change runs the new page's whole script
