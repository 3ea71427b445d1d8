"""The app's entry file starts loading the default model in the background, once per process."""

from __future__ import annotations

import pytest

from app import backend, model_cache, settings


@pytest.fixture
def fresh(monkeypatch, tiny_model_dir, server_env):
    server_env("DIFFUSION_LENS_MODEL", str(tiny_model_dir))
    server_env(settings.WARM_UP_ENV, "1")
    monkeypatch.setattr(backend, "_warm_thread", None)
    model_cache._CACHE.clear()
    yield tiny_model_dir
    model_cache._CACHE.clear()


def test_warm_up_loads_the_default_model_once(fresh):
    assert model_cache._CACHE.peek(str(fresh)) is None
    thread = backend.warm_up()
    assert thread is not None
    thread.join(timeout=60)
    assert model_cache._CACHE.peek(str(fresh)) is not None  # the first visitor finds it loaded
    assert backend.warm_up() is thread  # once per process


def test_warm_up_can_be_switched_off(fresh, monkeypatch, server_env):
    server_env(settings.WARM_UP_ENV, "0")
    assert backend.warm_up() is None
    assert model_cache._CACHE.peek(str(fresh)) is None


def test_warm_up_leaves_a_broken_default_to_the_page(monkeypatch, tmp_path, server_env):
    server_env("DIFFUSION_LENS_MODEL", str(tmp_path / "missing"))
    server_env(settings.WARM_UP_ENV, "1")
    monkeypatch.setattr(backend, "_warm_thread", None)
    thread = backend.warm_up()
    thread.join(timeout=30)
    assert not thread.is_alive()  # no exception escaped to kill the process; the page will say what is wrong
