"""The classroom lock (app/session/sources.py): which model sources students may use, from DIFFUSION_LENS_SOURCES or from
where the server listens; the picker offers only those, and a link or the picker gets one sentence otherwise."""

from __future__ import annotations

import pytest
from conftest import app_test
from streamlit import config
from streamlit.testing.v1 import AppTest

from app.session import sources
from model.nets import hub

KNOWN = list(hub.KNOWN_HUB_MODELS)


@pytest.fixture
def address():
    """Set Streamlit's server.address for one test, and put it back."""
    before = config.get_option("server.address")
    yield lambda value: config.set_option("server.address", value)
    config.set_option("server.address", before)


@pytest.mark.parametrize(
    ("addr", "beyond"),
    [(None, True), ("", True), ("0.0.0.0", True), ("::", True), ("192.168.1.20", True), ("classroom.local", True),
     ("127.0.0.1", False), ("127.0.1.1", False), ("::1", False), ("localhost", False)],
)  # fmt: skip
def test_loopback_or_not(addr, beyond):
    assert sources.listens_beyond_loopback(addr) is beyond


def test_parse_the_setting():
    p = sources.parse("bundled", "test")
    assert not p.hub and not p.local and p.locked
    assert "bundled models (test)" in p.why
    p = sources.parse("known", "test")
    assert p.hub_ids == tuple(KNOWN) and not p.hub_any and not p.local
    p = sources.parse("google/ddpm-cifar10-32, local", "test")
    assert p.hub_ids == ("google/ddpm-cifar10-32",) and p.local and p.locked
    assert not sources.parse("hub,local", "test").locked and not sources.parse("all", "test").locked
    typo = sources.parse("known,locale", "test")  # a typo never opens the server up
    assert not typo.hub and not typo.local and "locale" in typo.problem


def test_refusals_are_one_sentence(tiny_model_dir):
    p = sources.parse("google/ddpm-cifar10-32", "test")
    assert p.refusal("bundled") is None and p.refusal("fashion") is None
    assert p.refusal("google/ddpm-cifar10-32") is None
    for source in (str(tiny_model_dir), "someone/huge-model"):
        text = p.refusal(source)
        assert text and text.endswith(".") and text.count(". ") == 0, text
    assert "someone/huge-model is not one of them" in p.refusal("someone/huge-model")
    assert sources.parse("all", "test").refusal(str(tiny_model_dir)) is None


def test_the_default_follows_the_address(monkeypatch, address, server_env):
    server_env(sources.ENV, None)
    address("127.0.0.1")
    assert not sources.policy().locked
    address("0.0.0.0")
    p = sources.policy()
    assert p.hub_ids == tuple(KNOWN) and not p.local and sources.ENV in p.why
    server_env(sources.ENV, "all")
    assert not sources.policy().locked


def _app() -> AppTest:
    return app_test(page="views/about.py", timeout=120)


def test_the_picker_offers_only_what_is_allowed(monkeypatch, address, server_env):
    server_env(sources.ENV, None)
    address("0.0.0.0")
    at = _app()
    at.run()
    assert not at.exception
    assert at.sidebar.radio(key="mp_kind").options == ["Bundled", "Hub"]  # no local folders
    assert any("Classroom server" in c.value for c in at.sidebar.caption)
    at.sidebar.radio(key="mp_kind").set_value("Hub").run()
    assert at.sidebar.selectbox(key="mp_hub_choice").options == [
        f"{k} ({hub.KNOWN_HUB_MODELS[k].resolution} px)" for k in KNOWN
    ]
    assert not at.sidebar.text_input  # no "Other Hub id…" to type into

    server_env(sources.ENV, "bundled")
    only = _app()
    only.run()
    assert only.sidebar.radio(key="mp_kind").options == ["Bundled"]

    server_env(sources.ENV, "known,lcoal")
    typo = _app()
    typo.run()
    assert any("lcoal" in w.value for w in typo.sidebar.warning)
    assert typo.sidebar.radio(key="mp_kind").options == ["Bundled"]


def test_a_link_cannot_pick_a_hub_model_off_the_list(monkeypatch, server_env):
    server_env(sources.ENV, "google/ddpm-cifar10-32")
    at = _app()
    at.query_params["model"] = "someone/huge-model"
    at.run()
    assert not at.exception
    warnings = [w.value for w in at.warning]
    assert any("someone/huge-model is not one of them" in w for w in warnings), warnings
    assert at.session_state["model_source"] == "bundled"
