"""The classroom lock behind a proxy (issue 28 item 1): it follows the address students reach (``make cluster``'s
replicas listen on 127.0.0.1 while haproxy may publish them on 0.0.0.0), and its answers never tell whether a path
exists on the server."""

from __future__ import annotations

import re

import pytest
from conftest import app_test
from streamlit import config

from app.session import sources


def _without(sentence: str, path: str) -> str:
    """The sentence with the path (or a code span naming it) left out."""
    return re.sub(r"`[^`]*`", "CODE", sentence).replace(path, "PATH")


@pytest.fixture
def replica(monkeypatch, server_env):
    """A replica as scripts/cluster.sh starts it: listening on 127.0.0.1, no DIFFUSION_LENS_SOURCES."""
    before = config.get_option("server.address")
    config.set_option("server.address", "127.0.0.1")
    server_env(sources.ENV, None)
    yield server_env
    config.set_option("server.address", before)


def test_the_lock_follows_the_address_the_proxy_publishes(replica):
    replica("DIFFUSION_LENS_PUBLIC_ADDRESS", "0.0.0.0")  # CLUSTER_BIND=0.0.0.0
    p = sources.policy()
    assert p.locked and not p.local and not p.hub_any
    replica("DIFFUSION_LENS_PUBLIC_ADDRESS", "127.0.0.1")  # the default CLUSTER_BIND: this machine only
    assert not sources.policy().locked


def test_the_cluster_script_hands_its_bind_address_to_the_replicas():
    from conftest import ROOT

    script = (ROOT / "scripts" / "cluster.sh").read_text()
    launch = script[script.index('STREAMLIT_SERVER_COOKIE_SECRET="$secret"') : script.index("app/streamlit_app.py")]
    assert 'DIFFUSION_LENS_PUBLIC_ADDRESS="$CLUSTER_BIND"' in launch


@pytest.mark.parametrize("setting", ["hub", "known", "bundled"])
def test_refusals_do_not_tell_whether_a_path_exists(setting, tmp_path):
    p = sources.parse(setting, "test")
    there, missing = tmp_path, tmp_path / "no-such-folder"
    for a, b in [(str(there), str(missing)), ("/etc", "/no-such-dir-here"), ("~", "~no-such-user-here")]:
        assert p.refusal(a) == p.refusal(b) and p.refusal(a), (a, b)


def test_the_picker_says_the_same_for_a_server_folder_and_a_missing_one(monkeypatch, tmp_path, server_env):
    """Any Hub id may be typed (DIFFUSION_LENS_SOURCES=hub), folders are not allowed: the answer for an existing
    folder and a missing path is the same sentence."""
    server_env(sources.ENV, "hub")
    answers = []
    for path in (str(tmp_path), str(tmp_path / "nothing-here")):
        at = app_test(page="views/about.py", timeout=120)
        at.run()
        at.radio(key="mp_kind").set_value("Hub").run()
        at.selectbox(key="mp_hub_choice").set_value("other").run()
        at.text_input(key="mp_hub_custom").input(path).run()
        at.button(key="mp_apply").click().run()
        assert not at.exception
        answers.append([_without(e.value, path) for e in at.sidebar.error])
    assert answers[0] == answers[1] and len(answers[0]) == 1, answers


def test_a_link_naming_a_server_path_gets_the_same_sentence_whether_it_exists_or_not(monkeypatch, tmp_path, server_env):
    server_env(sources.ENV, "known")
    answers = []
    for path in (str(tmp_path), str(tmp_path / "nothing-here")):
        at = app_test(page="views/about.py", timeout=120)
        at.query_params["model"] = path
        at.run()
        assert not at.exception
        answers.append([_without(w.value, path) for w in at.warning])
        assert at.session_state["model_source"] == "bundled"
    assert answers[0] == answers[1] and len(answers[0]) == 1, answers
