"""A restart students can read (issue 28, item 7): SIGTERM to a real `streamlit run` makes every connected page
say that the server is restarting before the websocket closes, and the server still exits cleanly.

Before app/server/drain.py the websocket simply closed, and the browser said "Are you connected to the internet?".
The student here is the websocket client of the benchmarks (bench/harness/ws_client.py, Streamlit's own protocol), so
no browser is needed.
"""

from __future__ import annotations

import asyncio
import os
import signal
import threading
import time

import pytest

from app.server.drain import MESSAGE
from harness.server import Server
from harness.ws_client import StreamlitSession

pytestmark = pytest.mark.e2e


def _in_thread(coro):
    """Run ``coro`` on an event loop of its own thread (Playwright's sync API may hold this thread's loop)."""
    out: dict = {}

    def body():
        try:
            out["value"] = asyncio.run(coro)
        except BaseException as exc:  # noqa: BLE001 - surfaced below
            out["error"] = exc

    th = threading.Thread(target=body, daemon=True)
    th.start()
    th.join(120)
    if "error" in out:
        raise out["error"]
    return out["value"]


async def _students_at_sigterm(url: str, pid: int) -> dict:
    async with StreamlitSession(url, timeout=60) as a, StreamlitSession(url, timeout=60) as b:
        await a.open()
        await b.open("denoise")
        assert not any(MESSAGE in x for x in a._run.alerts + b._run.alerts)  # not before the signal
        os.kill(pid, signal.SIGTERM)
        told_at, closed_at = {}, {}
        start = time.monotonic()
        while time.monotonic() - start < 30 and len(closed_at) < 2:
            for name, s in (("a", a), ("b", b)):
                if name not in told_at and any(MESSAGE in x for x in s._run.alerts):
                    told_at[name] = time.monotonic() - start
                if name not in closed_at and s.closed_reason:
                    closed_at[name] = time.monotonic() - start
            await asyncio.sleep(0.05)
        return {"told": told_at, "closed": closed_at}


def test_sigterm_tells_every_connected_student_then_stops(tiny_model_dir, tmp_path):
    env = {
        "DIFFUSION_LENS_MODEL": str(tiny_model_dir),
        "DIFFUSION_LENS_THREADS": "1",
        "OMP_NUM_THREADS": "1",
        "DIFFUSION_LENS_DRAIN_S": "10",
    }
    log = tmp_path / "server.log"
    server = Server(env, log_path=log)
    try:
        server.wait_healthy()
        seen = _in_thread(_students_at_sigterm(server.url, server.proc.pid))
        code = server.proc.wait(timeout=30)
    finally:
        server.stop()
    text = log.read_text(errors="replace")
    assert set(seen["told"]) == {"a", "b"}, (seen, text[-2000:])
    for name in ("a", "b"):  # the message came before the connection went
        assert seen["told"][name] <= seen["closed"].get(name, float("inf")), seen
    assert "drained for SIGTERM" in text and code in (0, -signal.SIGTERM), (code, text[-2000:])


def test_the_browser_shows_the_sentence_after_sigterm(browser, tiny_model_dir, tmp_path, shot):
    """In Chromium: the page shows that the server is restarting (instead of only a connection error)."""
    from harness.server import IDLE

    env = {"DIFFUSION_LENS_MODEL": str(tiny_model_dir), "DIFFUSION_LENS_THREADS": "1", "OMP_NUM_THREADS": "1"}
    server = Server(env, log_path=tmp_path / "server.log")
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    context.set_default_timeout(60_000)
    try:
        server.wait_healthy()
        pg = context.new_page()
        pg.goto(server.url + "/forward")
        pg.wait_for_selector(IDLE)
        pg.get_by_text("x_t at t = ", exact=False).first.wait_for()
        os.kill(server.proc.pid, signal.SIGTERM)
        pg.get_by_text("The server is restarting", exact=False).wait_for(timeout=20_000)
        shot(pg, "restarting")
        assert pg.get_by_text("x_t at t = ", exact=False).count() > 0  # still the page the student was on
        assert "/forward" in pg.url
        assert server.proc.wait(timeout=30) in (0, -signal.SIGTERM)
    finally:
        context.close()
        server.stop()
