"""A classroom server no student can break (issue 32), tried against a real `streamlit run` with the websocket client
of the benchmarks (bench/harness/ws_client.py, Streamlit's own protocol): what a student's script can send, sent raw.

* item 1: ``BackMsg(clear_cache=True)`` empties nothing (the tally stays; the server logs its refusal);
* item 2 (config): a 24 MB message closes that student's connection before it is parsed; an upload (HTTP) still works;
* item 3: one vote per browser, whatever its tabs; students never see the class's answers nor reset them;
* item 4: one training queued per browser, not per tab;
* item 5: a fresh server's first pages never show students an error box (pandas imported whole before any page);
* item 6: the glossary echoes a search as inline code.
"""

from __future__ import annotations

import asyncio
import io
import re
import threading
import time

import numpy as np
import pytest
from PIL import Image
from streamlit.proto.BackMsg_pb2 import BackMsg
from streamlit.proto.WidgetStates_pb2 import WidgetState
from websockets.exceptions import ConnectionClosed

from harness.server import Server
from harness.ws_client import StreamlitError, StreamlitSession

pytestmark = pytest.mark.e2e

KEY = "k-" + "3f" * 16  # the presenter key of the test server
QUESTION = "reveal_pick_forward_t900"
COUNTS = "**The class's answers** ("


def _in_thread(coro, timeout: float = 400):
    """Run ``coro`` on an event loop of its own thread (Playwright's sync API may hold this thread's loop)."""
    out: dict = {}

    def body():
        try:
            out["value"] = asyncio.run(coro)
        except BaseException as exc:  # noqa: BLE001 - surfaced below
            out["error"] = exc

    th = threading.Thread(target=body, daemon=True)
    th.start()
    th.join(timeout)
    if "error" in out:
        raise out["error"]
    assert "value" in out, "the websocket students did not finish"
    return out["value"]


def _env(tiny_model_dir) -> dict[str, str]:
    return {
        "DIFFUSION_LENS_MODEL": str(tiny_model_dir),
        "DIFFUSION_LENS_THREADS": "1",
        "OMP_NUM_THREADS": "1",
        "DIFFUSION_LENS_PRESENTER_KEY": KEY,
    }


@pytest.fixture(scope="module")
def server(tiny_model_dir, tmp_path_factory):
    log = tmp_path_factory.mktemp("guard") / "server.log"
    srv = Server(_env(tiny_model_dir), log_path=log)
    try:
        srv.wait_healthy()
        yield srv, log
    finally:
        srv.stop()


def _counts(run) -> str | None:
    lines = [m for m in run.markdown if m.startswith(COUNTS)]
    return lines[-1] if lines else None


async def _presenter(url: str) -> StreamlitSession:
    """A session in presentation mode that gave the presenter key (the caller closes it)."""
    p = StreamlitSession(url, timeout=120)
    await p.__aenter__()
    p.query = "present=1"
    await p.open("forward")
    if "present_key" in p.widgets:  # (a server without presenter keys shows the counts to anyone presenting)
        p.set_text("present_key", KEY)
        await p.rerun()
    return p


async def _vote(s: StreamlitSession, option_index: int = 0) -> None:
    w = s.widgets[QUESTION]
    s.set_radio(QUESTION, w.proto.options[option_index])
    await s.rerun()


# --- item 3: the votes ----------------------------------------------------------------------------------------------
async def _vote_from_tabs_and_a_student_presenting(url: str) -> dict:
    p = await _presenter(url)
    try:
        p.click(f"reveal_reset_{QUESTION.removeprefix('reveal_pick_')}")
        await p.rerun()
        out = {"start": _counts(await p.rerun())}
        async with StreamlitSession(url, timeout=120) as a:
            tabs = [StreamlitSession(url, timeout=120) for _ in range(3)]  # three more tabs of browser a
            for t in tabs:
                t.xsrf = a.xsrf
            async with StreamlitSession(url, timeout=120) as b, tabs[0] as t0, tabs[1] as t1, tabs[2] as t2:
                for s in (a, t0, t1, t2, b):
                    await s.open("forward")
                    await _vote(s)
                out["voted"] = _counts(await p.rerun())
        async with StreamlitSession(url, timeout=120) as student:
            student.query = "present=1"  # a student who opens the presenter's address
            out["student_counts"] = _counts(await student.open("forward"))
            out["student_widgets"] = sorted(student.widgets)
    finally:
        await p.__aexit__(None, None, None)
    return out


def test_votes_count_once_per_browser_and_only_the_presenter_sees_them(server):
    srv, _ = server
    out = _in_thread(_vote_from_tabs_and_a_student_presenting(srv.url))
    assert out["start"] and out["start"].startswith(COUNTS + "0)"), out
    assert out["voted"].startswith(COUNTS + "2)"), out  # four tabs of one browser and one other browser (it read 5)
    # a student with ?present=1 sees neither the counts nor the reset button
    assert out["student_counts"] is None and not [k for k in out["student_widgets"] if k.startswith("reveal_reset")]


# --- item 1: clear_cache ------------------------------------------------------------------------------------------
async def _votes_then_clear_cache(url: str) -> dict:
    p = await _presenter(url)
    try:
        p.click(f"reveal_reset_{QUESTION.removeprefix('reveal_pick_')}")
        await p.rerun()
        async with StreamlitSession(url, timeout=120) as a, StreamlitSession(url, timeout=120) as b:
            for s in (a, b):
                await s.open("forward")
                await _vote(s, 1)
            out = {"voted": _counts(await p.rerun())}
            for _ in range(3):
                await a.send_raw(BackMsg(clear_cache=True))
            await a.rerun()  # the messages are handled in order: the clears came before this run
        out["after_clear"] = _counts(await p.rerun())
    finally:
        await p.__aexit__(None, None, None)
    return out


def test_a_students_clear_cache_empties_nothing(server):
    srv, log = server
    out = _in_thread(_votes_then_clear_cache(srv.url))
    assert out["voted"].startswith(COUNTS + "2)"), out
    assert out["after_clear"].startswith(COUNTS + "2)"), out  # the tally is whole (one message took it to 0)
    assert "Refused a clear_cache request" in log.read_text(errors="replace")


# --- item 2: the size of a message --------------------------------------------------------------------------------
def _png(megabytes: float) -> bytes:
    side = int((megabytes * 1e6 / 3) ** 0.5)
    pixels = np.random.default_rng(0).integers(0, 256, (side, side, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="PNG", compress_level=0)
    return buf.getvalue()


async def _big_message_and_upload(url: str) -> dict:
    out: dict = {}
    async with StreamlitSession(url, timeout=120) as hostile, StreamlitSession(url, timeout=120) as honest:
        await hostile.open("glossary")
        await honest.open("glossary")
        hostile.set_text("gloss_find", "0.1 0.2\n" * 3_000_000)  # 24 MB of points, typed into a text box
        try:
            await hostile.rerun()
            out["hostile"] = "served"
        except (StreamlitError, ConnectionClosed) as exc:  # the server closed it (1009: message too big)
            out["hostile"] = f"closed: {exc}"
        honest.set_radio("image_source", "Upload")
        await honest.rerun()
        uploader = next(k for k, w in honest.widgets.items() if w.kind == "file_uploader")
        await honest.upload(uploader, "photo.png", _png(3.0), "image/png")  # over HTTP: raises unless accepted
        run = await honest.rerun()
        out["upload_alerts"] = run.alerts
        out["largest"] = honest.largest
    return out


def test_a_24_mb_message_closes_that_connection_and_uploads_still_work(server):
    srv, _ = server
    out = _in_thread(_big_message_and_upload(srv.url))
    assert out["hostile"].startswith("closed"), out
    assert not [a for a in out["upload_alerts"] if "too large" in a.lower()], out


# --- item 4: the training queue -------------------------------------------------------------------------------
async def _train_from_two_tabs_and_another_browser(url: str) -> list[list[str]]:
    a = StreamlitSession(url, timeout=300)
    async with a:
        a2 = StreamlitSession(url, timeout=300)
        a2.xsrf = a.xsrf
        async with a2, StreamlitSession(url, timeout=300) as b:
            for s in (a, a2, b):
                await s.open("particles")
                w = s.widgets["pl_train_steps"]
                state = WidgetState(id=w.id)
                state.string_array_value.data.append("2000")  # the longest training: both tabs overlap
                s.states[w.id] = state
                await s.rerun()
                s.click("Train the network")
            runs = await asyncio.gather(a.rerun(), a2.rerun(), b.rerun())
    return [r.alerts for r in runs]


def test_one_training_per_browser_whatever_its_tabs(server):
    srv, _ = server
    alerts = _in_thread(_train_from_two_tabs_and_another_browser(srv.url))
    busy = ["already queued or running" in " ".join(a) for a in alerts]
    assert busy[:2] in ([True, False], [False, True]), alerts  # one of browser a's two tabs was told to wait
    assert busy[2] is False, alerts  # browser b queued as usual


# --- item 6: the glossary's echo ------------------------------------------------------------------------------
HOSTILE_QUERY = "![x](http://127.0.0.1:9/p.png) $\\rule{200em}{200em}$"


async def _search(url: str) -> list[str]:
    async with StreamlitSession(url, timeout=120) as s:
        await s.open("glossary")
        s.set_text("gloss_find", HOSTILE_QUERY)
        return (await s.rerun()).alerts


def test_the_glossary_echoes_a_search_as_inline_code(server):
    srv, _ = server
    alerts = [a for a in _in_thread(_search(srv.url)) if a.startswith("No entry mentions")]
    assert len(alerts) == 1, alerts
    outside_code = re.sub(r"`[^`]*`", "", alerts[0])
    assert "![" not in outside_code and "$" not in outside_code and "](" not in outside_code, alerts


# --- item 5: a fresh server's first pages ------------------------------------------------------------------------
async def _first_visits(url: str) -> list[str]:
    """Five students on a fresh server: four open Denoise and keep moving its slider; once they are moving, the fifth
    opens the Sampler race, the first page that needs pandas (its table)."""
    moving, raced = asyncio.Event(), asyncio.Event()

    async def racer() -> list[str]:
        await moving.wait()
        async with StreamlitSession(url, timeout=300) as s:
            try:
                await s.open("race")
            except StreamlitError as exc:
                return [f"race: {exc}"]
            finally:
                raced.set()
            return []

    async def denoiser(i: int) -> list[str]:
        async with StreamlitSession(url, timeout=300) as s:
            try:
                await s.open("denoise")
                for step in range(400):
                    s.set_slider("den_t", 100 + 7 * step + i)
                    await s.rerun()
                    moving.set()
                    if raced.is_set() and step > 3:
                        break
            except StreamlitError as exc:
                raced.set()
                return [f"denoise: {exc}"]
        return []

    results = await asyncio.gather(racer(), *(denoiser(i) for i in range(4)))
    return [e for r in results for e in r]


def test_a_fresh_server_shows_no_error_box_on_its_first_pages(tiny_model_dir, tmp_path):
    log = tmp_path / "server.log"
    srv = Server(_env(tiny_model_dir), log_path=log)
    try:
        srv.wait_healthy()
        start = time.monotonic()
        errors = _in_thread(_first_visits(srv.url))
    finally:
        srv.stop()
    text = log.read_text(errors="replace")
    raised = [line for line in text.splitlines() if "Error" in line][-6:]  # the server log's exception lines
    assert not errors and "partially initialized module" not in text, (errors, raised, time.monotonic() - start)
