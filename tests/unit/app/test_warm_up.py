"""The app's entry file starts loading the default model in the background, once per process."""

from __future__ import annotations

import pytest

from app import settings
from app.compute import models


@pytest.fixture
def fresh(monkeypatch, tiny_model_dir, server_env):
    server_env("DIFFUSION_LENS_MODEL", str(tiny_model_dir))
    server_env(settings.WARM_UP_ENV, "1")
    models._warm_up_thread.clear()
    models._CACHE.clear()
    yield tiny_model_dir
    models._CACHE.clear()


def test_warm_up_loads_the_default_model_once(fresh):
    assert models._CACHE.peek(str(fresh)) is None
    thread = models.warm_up()
    assert thread is not None
    thread.join(timeout=60)
    assert models._CACHE.peek(str(fresh)) is not None  # the first visitor finds it loaded
    assert models.warm_up() is thread  # once per process


def test_warm_up_can_be_switched_off(fresh, monkeypatch, server_env):
    server_env(settings.WARM_UP_ENV, "0")
    assert models.warm_up() is None
    assert models._CACHE.peek(str(fresh)) is None


def test_warm_up_leaves_a_broken_default_to_the_page(monkeypatch, tmp_path, server_env):
    server_env("DIFFUSION_LENS_MODEL", str(tmp_path / "missing"))
    server_env(settings.WARM_UP_ENV, "1")
    models._warm_up_thread.clear()
    thread = models.warm_up()
    thread.join(timeout=30)
    assert not thread.is_alive()  # no exception escaped to kill the process; the page will say what is wrong
