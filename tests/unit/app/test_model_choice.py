"""A session's model (app/session/which_model.py, issue 28 items 1 and 5, issue 26's Hub fall back): the classroom lock is
checked in the loader itself, a shared link only proposes a Hub model (the student's click loads it), a failed load
is remembered instead of retried on every rerun, and a model that cannot load falls back to the bundled one with one
sentence. The Hub is the local FakeHub of tests/conftest.py (``hub``), which counts its requests."""

from __future__ import annotations

import pytest
from conftest import app_test, assert_ok, image_captions

from app.compute import models
from app.session import sources

pytestmark = pytest.mark.usefixtures("one_torch_thread")

PIPE = "someone/tiny-pipe"  # on the FakeHub
MISSING = "someone/no-such-model"  # not on it: 404


def _forget() -> None:
    models._CACHE.clear()
    try:
        from app.session import which_model
    except ImportError:  # the code before this feature: the tests fail on their assertions, not here
        return
    which_model.forget_failures()


@pytest.fixture(autouse=True)
def _nothing_remembered():
    """Each test starts with no model loaded from the Hub and no remembered failure."""
    _forget()
    yield
    _forget()


def _requests(hub, repo_id: str) -> int:
    return sum(1 for rid, _ in hub.calls if rid == repo_id)


def _link(params: dict[str, str], page: str = "views/about.py"):
    at = app_test(page=page, timeout=180)
    for k, v in params.items():
        at.query_params[k] = v
    return at


# --- item 5: a link proposes, the student confirms ----------------------------------------------------------------
def test_a_link_proposes_a_hub_model_and_only_a_click_loads_it(hub, monkeypatch, server_env):
    server_env(sources.ENV, "hub")  # any Hub id may be loaded, no folders
    at = _link({"model": PIPE, "res": "32"})
    at.run()
    assert_ok(at)
    for _ in range(3):  # reruns ask nothing of the Hub either
        at.run()
        assert_ok(at)
    assert hub.calls == [], "a link made the server ask the Hub without a click"
    assert at.session_state["model_source"] == "bundled"
    assert at.query_params["model"] == PIPE  # a reload still proposes it
    offer = " ".join(m.value for m in at.markdown)
    assert f"`{PIPE}`" in offer and "Load it, or keep the bundled photo model?" in offer

    at.button(key="mp_accept").click().run()
    assert_ok(at)
    assert _requests(hub, PIPE) == 2  # the configs, then the weights
    assert at.session_state["model_source"] == PIPE
    assert at.query_params["model"] == PIPE
    assert all(b.key != "mp_accept" for b in at.button)  # the proposal is gone
    assert f"In use: **{PIPE}**" in " ".join(c.value for c in at.sidebar.caption)


def test_declining_a_proposal_keeps_the_bundled_model_and_the_address_follows(hub, monkeypatch, server_env):
    server_env(sources.ENV, "hub")
    at = _link({"model": PIPE, "res": "32"})
    at.run()
    at.button(key="mp_decline").click().run()
    assert_ok(at)
    assert hub.calls == [] and at.session_state["model_source"] == "bundled"
    assert at.query_params["model"] == "bundled"
    assert all(b.key not in ("mp_accept", "mp_decline") for b in at.button)


def test_a_failed_load_is_remembered_not_retried_on_every_rerun(hub, monkeypatch, server_env):
    server_env(sources.ENV, "hub")
    at = _link({"model": MISSING, "res": "32"})
    at.run()
    assert hub.calls == []
    at.button(key="mp_accept").click().run()
    assert_ok(at)
    assert _requests(hub, MISSING) == 1
    warnings = [w.value for w in at.warning]
    assert any(f"no model called {MISSING}" in w and "Using the bundled model instead." in w for w in warnings)
    assert at.session_state["model_source"] == "bundled" and at.query_params["model"] == "bundled"
    for _ in range(5):
        at.run()
        assert_ok(at)
    assert _requests(hub, MISSING) == 1, hub.calls

    # another student opens the same link: told at once, no proposal, no request
    other = _link({"model": MISSING, "res": "32"})
    other.run()
    assert_ok(other)
    assert _requests(hub, MISSING) == 1
    assert all(b.key != "mp_accept" for b in other.button)
    assert any(f"`{MISSING}` could not be loaded" in w.value for w in other.warning)


def test_a_session_pointing_at_a_missing_hub_model_asks_the_hub_once(hub, monkeypatch, server_env):
    """The request count of issue 28: a session whose model fails asked the Hub on every rerun (3 per run)."""
    server_env(sources.ENV, "hub")
    at = app_test(MISSING, 32, page="views/about.py", timeout=180)
    for _ in range(5):
        at.run()
        assert not at.exception
    assert _requests(hub, MISSING) == 1, hub.calls


# --- issue 26: a Hub model that cannot load ---------------------------------------------------------------------
@pytest.fixture
def offline_hub(monkeypatch):
    """The Hub cannot be reached; counts the attempts."""
    import huggingface_hub
    from huggingface_hub import errors

    calls = []

    def offline(repo_id, **kwargs):
        calls.append(repo_id)
        raise errors.LocalEntryNotFoundError("Got: ConnectError: [Errno -2] Name or service not known")

    monkeypatch.setattr(huggingface_hub, "snapshot_download", offline)
    return calls


def test_a_hub_model_that_cannot_load_falls_back_to_the_bundled_model_with_one_sentence(
    offline_hub, monkeypatch, server_env
):
    """A locked classroom server (this Hub model is on its list; folders are not): the page is not left empty,
    the address stops naming the model, and the sentence does not suggest a local folder."""
    server_env(sources.ENV, "someone/offline")
    at = app_test("someone/offline", 32, page="views/forward.py", timeout=180)
    at.run()
    assert_ok(at)
    sentences = [w.value for w in at.warning]
    assert len(sentences) == 1, sentences
    (said,) = sentences
    assert "someone/offline" in said and "offline" in said and "Using the bundled model instead." in said
    assert "local folder" not in said.lower()
    assert at.session_state["model_source"] == "bundled"
    assert at.query_params["model"] == "bundled"
    assert any(c.startswith("x_t at t =") for c in image_captions(at)), "the page is empty"
    at.run()  # said once
    assert not [w.value for w in at.warning]
    assert len(offline_hub) == 1


def test_the_picker_on_a_locked_server_does_not_suggest_a_local_folder(offline_hub, monkeypatch, server_env):
    server_env(sources.ENV, "known")
    at = app_test(page="views/about.py", timeout=180)
    at.run()
    at.radio(key="mp_kind").set_value("Hub").run()
    at.selectbox(key="mp_hub_choice").set_value("google/ddpm-cifar10-32").run()
    at.button(key="mp_apply").click().run()
    assert not at.exception
    errors = [e.value for e in at.sidebar.error]
    assert len(errors) == 1 and "offline" in errors[0] and "bundled model instead" in errors[0]
    assert "local folder" not in errors[0].lower()


# --- item 1: the loader checks the lock itself ------------------------------------------------------------------
def test_the_loader_refuses_a_folder_on_a_locked_server_whatever_the_session_says(
    tiny_model_dir, monkeypatch, server_env
):
    """A session whose model_source names a server folder (set past the picker) is refused by the loader itself."""
    server_env(sources.ENV, "known")
    at = app_test(tiny_model_dir, 32, page="views/forward.py", timeout=180)
    at.run()
    assert not at.exception
    assert at.session_state["model_source"] == "bundled"
    text = " ".join(w.value for w in at.warning)
    assert "does not load" in text or "only loads" in text, text
    assert str(tiny_model_dir) not in " ".join(c.value for c in at.sidebar.caption)  # not in use


def test_the_loader_refuses_a_hub_id_off_the_list_without_asking_the_hub(hub, monkeypatch, server_env):
    server_env(sources.ENV, "google/ddpm-cifar10-32")
    at = app_test(PIPE, 32, page="views/about.py", timeout=180)
    at.run()
    assert not at.exception
    assert hub.calls == []
    assert at.session_state["model_source"] == "bundled"
    assert any(f"{PIPE} is not one of them" in w.value for w in at.warning)


def test_a_hub_id_that_is_also_a_folder_here_is_fetched_from_the_hub_not_read_from_disk(
    hub, monkeypatch, tmp_path, tiny_model_dir, server_env
):
    """On a server that loads no folders, ``owner/name`` is a Hub id even when the working directory happens to
    hold a folder of that name (it would otherwise load a server folder past the lock)."""
    import shutil

    from app.session import which_model

    server_env(sources.ENV, "hub")
    monkeypatch.chdir(tmp_path)
    shutil.copytree(tiny_model_dir, tmp_path / "someone" / "tiny-pipe")  # a folder named like the Hub id
    model = which_model.load(PIPE)
    assert _requests(hub, PIPE) == 2 and model.source == PIPE
    with pytest.raises(models.network.ModelLoadError, match="not folders or paths"):
        which_model.load(str(tmp_path / "someone" / "tiny-pipe"))
