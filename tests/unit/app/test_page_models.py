"""Page layer: the sidebar model picker through AppTest (no network: the Hub download is mocked)."""

from __future__ import annotations

import pytest
from conftest import APP_ENTRY
from streamlit.testing.v1 import AppTest

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(autouse=True)
def every_source_allowed(monkeypatch, server_env):
    """These tests are about loading; the classroom lock (tests/unit/app/test_sources.py) would refuse folders and
    arbitrary Hub ids, because AppTest, like a plain `streamlit run`, does not listen on loopback only."""
    server_env("DIFFUSION_LENS_SOURCES", "all")


def _app() -> AppTest:
    at = AppTest.from_file(APP_ENTRY, default_timeout=120)
    at.session_state["resolution"] = 32
    at.switch_page("views/forward.py")  # "/" is the Start page (issue 26)
    at.run()
    assert not at.exception, at.exception
    return at


def _use(at: AppTest, kind: str, **inputs: str) -> AppTest:
    at.radio(key="mp_kind").set_value(kind).run()
    if "hub_choice" in inputs:
        at.selectbox(key="mp_hub_choice").set_value(inputs["hub_choice"]).run()
    if "hub_id" in inputs:
        at.text_input(key="mp_hub_custom").input(inputs["hub_id"]).run()
    if "path" in inputs:
        at.text_input(key="mp_local_path").input(inputs["path"]).run()
    at.button(key="mp_apply").click().run()
    assert not at.exception, at.exception
    return at


def _sidebar_text(at: AppTest) -> str:
    return " ".join(c.value for c in at.sidebar.caption)


def test_switch_to_a_local_folder_and_render_a_model_page(tiny_model_dir):
    at = _use(_app(), "Local folder", path=str(tiny_model_dir))
    assert at.session_state["model_source"] == str(tiny_model_dir)
    assert not at.sidebar.error
    text = _sidebar_text(at)
    assert "native 32 px" in text and "GMAC" in text and "predicts epsilon" in text
    at.switch_page("views/denoise.py").run()
    assert not at.exception, at.exception
    assert not at.error and at.title[0].value.startswith("Denoise")
    # back to the bundled model in one click
    at.radio(key="mp_kind").set_value("Bundled").run()
    assert at.session_state["model_source"] == "bundled" and not at.exception


def test_bad_folder_shows_a_clear_error_and_falls_back_to_bundled(tmp_path):
    at = _use(_app(), "Local folder", path=str(tmp_path / "no-such-model"))
    assert at.session_state["model_source"] == "bundled"
    errors = [e.value for e in at.sidebar.error]
    assert len(errors) == 1 and "No model folder" in errors[0] and "bundled model instead" in errors[0]
    assert "Traceback" not in errors[0]
    at.switch_page("views/forward.py").run()  # the app still works
    assert not at.exception and at.title[0].value.startswith("Forward process")


@pytest.mark.parametrize(
    ("hub_id", "expected"),
    [("nobody/no-such-model", "no model called nobody/no-such-model"), ("not a hub id!", "not a Hub id")],
)
def test_bad_hub_id_shows_a_clear_error(monkeypatch, hub_id, expected):
    import huggingface_hub
    from fakes import http_error

    calls = []

    def no_such_repo(repo_id, **kwargs):
        from huggingface_hub import errors

        calls.append(repo_id)
        raise http_error(errors.RepositoryNotFoundError, 404, "404 Client Error. Repository Not Found")

    monkeypatch.setattr(huggingface_hub, "snapshot_download", no_such_repo)
    at = _use(_app(), "Hub", hub_choice="other", hub_id=hub_id)
    assert at.session_state["model_source"] == "bundled"
    assert any(expected in e.value for e in at.sidebar.error), [e.value for e in at.sidebar.error]
    assert calls == ([hub_id] if "/" in hub_id else [])


def test_known_hub_model_offline_says_so(monkeypatch):
    import huggingface_hub
    from huggingface_hub import errors

    def offline(repo_id, **kwargs):
        raise errors.LocalEntryNotFoundError("Got: ConnectError: [Errno -2] Name or service not known")

    monkeypatch.setattr(huggingface_hub, "snapshot_download", offline)
    at = _app()
    at.radio(key="mp_kind").set_value("Hub").run()
    assert "256 px" in at.selectbox(key="mp_hub_choice").format_func("google/ddpm-ema-church-256")
    at = _use(at, "Hub", hub_choice="google/ddpm-cifar10-32")
    assert any("offline" in e.value for e in at.sidebar.error)
    assert at.session_state["model_source"] == "bundled"
