"""Fixtures for the browser tests: one `streamlit run` server, Debian's Chromium, one page per test.

The server runs on a free port on 127.0.0.1 with the tiny random model from
``tests/conftest.py`` as its default model (``DIFFUSION_LENS_MODEL``), so runs are fast.
Screenshots go to ``tests/e2e/artifacts/`` (git-ignored), kept as test artifacts.

Every test here is marked ``e2e`` and skips, with the reason, when Chromium or
Playwright is missing. Install Chromium with ``bash scripts/install_chromium.sh``.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

# bench/ is on sys.path through pytest's `pythonpath` setting (pyproject.toml)
from _server import CHROMIUM_ARGS, IDLE, RUNNING, free_port  # noqa: F401  (shared with bench/; re-exported)

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = Path(os.environ.get("DIFFUSION_LENS_CHROMIUM", "/usr/bin/chromium"))
ARTIFACTS = Path(__file__).resolve().parent / "artifacts"

SERVER_START_TIMEOUT_S = 120


def start_server(port: int, env: dict[str, str] | None = None, log_path: Path | None = None) -> subprocess.Popen:
    """`streamlit run app/streamlit_app.py` on 127.0.0.1:port in its own process group."""
    cmd = [
        sys.executable, "-m", "streamlit", "run", str(ROOT / "app" / "streamlit_app.py"),
        "--server.headless", "true",
        "--server.port", str(port),
        "--server.address", "127.0.0.1",
        "--browser.gatherUsageStats", "false",
    ]  # fmt: skip
    out = open(log_path, "wb") if log_path else subprocess.DEVNULL  # noqa: SIM115 - closed by the OS at exit
    return subprocess.Popen(
        cmd, cwd=ROOT, env={**os.environ, **(env or {})}, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
    )


def wait_healthy(proc: subprocess.Popen, port: int, timeout: float = SERVER_START_TIMEOUT_S) -> None:
    deadline = time.monotonic() + timeout
    url = f"http://127.0.0.1:{port}/_stcore/health"
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"streamlit exited with code {proc.returncode} before it was healthy")
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200 and r.read().strip() == b"ok":
                    return
        except OSError:
            pass
        time.sleep(0.3)
    raise RuntimeError(f"streamlit was not healthy on port {port} after {timeout:.0f} s")


def stop_server(proc: subprocess.Popen) -> None:
    """SIGTERM the server's process group (only the group we started), then SIGKILL if needed."""
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=10)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait(timeout=10)


@pytest.fixture(scope="session")
def chromium_path() -> str:
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is missing: install Debian's Chromium (bash scripts/install_chromium.sh)")
    pytest.importorskip("playwright.sync_api", reason="playwright (python) is not installed")
    return str(CHROMIUM)


@pytest.fixture(scope="session")
def app_url(chromium_path, tiny_model_dir, tmp_path_factory) -> str:
    """Base URL of a fresh `streamlit run` whose default model is the tiny test model."""
    port = free_port()
    log = tmp_path_factory.mktemp("streamlit") / "server.log"
    # One torch thread: the tests check behaviour, and on a busy shared CI box two OpenMP
    # threads per forward pass can be 10x slower than one (measured here: 1.4 s vs 0.08 s).
    env = {"DIFFUSION_LENS_MODEL": str(tiny_model_dir), "DIFFUSION_LENS_THREADS": "1", "OMP_NUM_THREADS": "1"}
    proc = start_server(port, env, log)
    try:
        wait_healthy(proc, port)
        yield f"http://127.0.0.1:{port}"
    finally:
        stop_server(proc)
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
