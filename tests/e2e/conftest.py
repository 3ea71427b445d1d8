"""Fixtures for the browser tests: one `streamlit run` server, Debian's Chromium, one page per test.

The server runs on a free port on 127.0.0.1 with the tiny random model from
``tests/conftest.py`` as its default model (``DIFFUSION_LENS_MODEL``), so runs are fast.
Screenshots go to ``tests/e2e/artifacts/`` (git-ignored), kept as test artifacts.

Every test here is marked ``e2e`` and skips, with the reason, when Chromium or
Playwright is missing. Install Chromium with ``bash scripts/install_chromium.sh``.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# bench/ is on sys.path through pytest's `pythonpath` setting (pyproject.toml): the benchmarks' server helper
from harness.server import CHROMIUM_ARGS, IDLE, RUNNING, Server  # noqa: F401  (IDLE, RUNNING: re-exported)

CHROMIUM = Path(os.environ.get("DIFFUSION_LENS_CHROMIUM", "/usr/bin/chromium"))
ARTIFACTS = Path(__file__).resolve().parent / "artifacts"

SERVER_START_TIMEOUT_S = 120


@pytest.fixture(scope="session")
def chromium_path() -> str:
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is missing: install Debian's Chromium (bash scripts/install_chromium.sh)")
    pytest.importorskip("playwright.sync_api", reason="playwright (python) is not installed")
    return str(CHROMIUM)


@pytest.fixture(scope="session")
def app_url(chromium_path, tiny_model_dir, tmp_path_factory) -> str:
    """Base URL of a fresh `streamlit run` whose default model is the tiny test model."""
    log = tmp_path_factory.mktemp("streamlit") / "server.log"
    # One torch thread: the tests check behaviour, and on a busy shared CI box two OpenMP
    # threads per forward pass can be 10x slower than one (measured here: 1.4 s vs 0.08 s).
    env = {"DIFFUSION_LENS_MODEL": str(tiny_model_dir), "DIFFUSION_LENS_THREADS": "1", "OMP_NUM_THREADS": "1"}
    server = Server(env, log)
    try:
        server.wait_healthy(SERVER_START_TIMEOUT_S)
        yield server.url
    finally:
        server.stop()
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        if log.exists():
            (ARTIFACTS / "server.log").write_bytes(log.read_bytes())


@pytest.fixture(scope="session")
def browser(chromium_path):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=chromium_path, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture
def page(browser, app_url, request):
    """A new browser context (= a new Streamlit session) per test; a screenshot when it ends."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000}, accept_downloads=True)
    context.set_default_timeout(60_000)
    pg = context.new_page()
    yield pg
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    try:
        pg.screenshot(path=str(ARTIFACTS / f"{request.node.name}-end.png"), full_page=True)
    finally:
        context.close()


@pytest.fixture
def shot(request):
    """shot(page, "label"): save a full-page screenshot under tests/e2e/artifacts/."""

    def _shot(pg, label: str) -> Path:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        path = ARTIFACTS / f"{request.node.name}-{label}.png"
        pg.screenshot(path=str(path), full_page=True)
        return path

    return _shot
