"""A restart students can read: on SIGTERM the server drains its long runs and says it is restarting (issue 28, 7).

Streamlit stops at once on SIGTERM: every browser loses its websocket mid-run and, after a few retries, says
"Are you connected to the internet?". Kubernetes sends SIGTERM before every rolling update, eviction or scale
down, so in a classroom that happens in the middle of a lesson. With :func:`install` (called by the entry
file once per process), SIGTERM instead:

1. marks the server as draining: every page shows :data:`MESSAGE` at its top (:func:`notice`), and no new
   long run starts (:func:`app.server.lanes.refuse_new`);
2. reruns the pages of the connected students who are not in the middle of a long run, so they read the
   message now;
3. waits up to ``DIFFUSION_LENS_DRAIN_S`` seconds (default 20, ``app/settings.py``) for the long runs in
   progress (:mod:`app.server.lanes`) to finish, then reruns the pages of the students whose run just ended (their
   result stays on the page, the message above it);
4. waits for those reruns to finish (at least :data:`NOTICE_S`, at most until the drain time is up), so the
   sentence reaches the browsers and no script is cut off mid-computation, then hands over to Streamlit's own
   handler, which stops the server.

A second SIGTERM while draining stops at once. Kubernetes' ``terminationGracePeriodSeconds`` should exceed
the drain time plus a few seconds (docs/classroom-limits.md).
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable

import streamlit as st
from streamlit.runtime.app_session import AppSessionState

from app import settings
from app.server import lanes

NOTICE_S = 1.5  # for the last reruns to reach the browsers before the websockets close
MESSAGE = (
    "The server is restarting (an update or a move to another machine): this page reconnects by itself in a "
    "minute or so, and your settings are kept in the address, so nothing needs to be redone by hand."
)

_lock = threading.Lock()
_state: dict = {"installed": False, "draining_since": None, "log": []}


def drain_seconds() -> float:
    """Seconds to wait for long runs: ``$DIFFUSION_LENS_DRAIN_S`` (app/settings.py, default 20)."""
    return settings.current().drain_s


def draining() -> bool:
    return _state["draining_since"] is not None


def notice() -> None:
    """At the top of every page while the server drains: one sentence saying what happens (the entry file)."""
    if draining():
        st.warning(MESSAGE, icon=":material/restart_alt:")


def _runtime():
    from streamlit.runtime import Runtime

    return Runtime.instance() if Runtime.exists() else None


def _same_page(session):
    """The session's last client state (its page, widgets and address) as a whole-script rerun, as Streamlit's
    own rerun-on-save does; None (the default page) when there is none."""
    from streamlit.proto.ClientState_pb2 import ClientState

    last = getattr(session, "_client_state", None)
    if not isinstance(last, ClientState):
        return None
    state = ClientState()
    state.CopyFrom(last)
    state.fragment_id = ""  # the whole script: the sentence is drawn by the entry file, outside any fragment
    state.is_auto_rerun = False
    return state


def _rerun_sessions(skip: set[str], done: set[str]) -> None:
    """Ask every connected session not in ``skip`` or ``done`` to rerun its page (on the server's event loop)."""
    rt = _runtime()
    if rt is None:
        return
    loop = rt._get_async_objs().eventloop
    for info in rt._session_mgr.list_active_sessions():
        sid = info.session.id
        if sid in skip or sid in done:
            continue
        done.add(sid)
        loop.call_soon_threadsafe(info.session.request_rerun, _same_page(info.session))


def _scripts_running() -> int:
    """Sessions whose script is running now (a rerun asked for by :func:`_rerun_sessions`, a student's click)."""
    rt = _runtime()
    if rt is None:
        return 0
    return sum(
        getattr(info.session, "_state", None) is AppSessionState.APP_IS_RUNNING
        for info in rt._session_mgr.list_active_sessions()
    )


def drain(stop: Callable[[], None], wait_s: float | None = None, poll_s: float = 0.2) -> dict:
    """Steps 1-4 of the module docstring, then ``stop()``; returns what happened (for tests and the log)."""
    wait_s = drain_seconds() if wait_s is None else wait_s
    start = time.monotonic()
    _state["draining_since"] = start
    lanes.refuse_new("the server is restarting")
    told: set[str] = set()
    _rerun_sessions(lanes.sessions_running(), told)
    runs_at_start = lanes.running()
    while lanes.running() > 0 and time.monotonic() - start < wait_s:
        time.sleep(poll_s)
    left = lanes.running()
    _rerun_sessions(set(), told)
    if told:  # the reruns finish (their pages and the sentence reach the browsers) before the server stops
        time.sleep(min(NOTICE_S, 0.3))
        deadline = max(start + wait_s, time.monotonic() + NOTICE_S)
        while _scripts_running() > 0 and time.monotonic() < deadline:
            time.sleep(poll_s)
        time.sleep(min(NOTICE_S, 0.3))
    report = {
        "runs_at_start": runs_at_start,
        "runs_left": left,
        "sessions_told": len(told),
        "seconds": round(time.monotonic() - start, 2),
    }
    _state["log"].append(report)
    print(f"diffusion-lens: drained for SIGTERM: {report}", flush=True)
    stop()
    return report


def install() -> bool:
    """Once per process, in a running Streamlit server: SIGTERM drains (:func:`drain`) before Streamlit stops.

    The handler is set on the server's main thread (the event loop's), where Python allows it. False when
    there is no server (AppTest, a command line) or it was installed already.
    """
    with _lock:
        rt = _runtime()
        if _state["installed"] or rt is None:
            return False
        _state["installed"] = True
    loop = rt._get_async_objs().eventloop
    loop.call_soon_threadsafe(_set_handler)
    settings.serving().add_stats_source(
        "long_runs", lanes.stats
    )  # benchmarks: runs in progress (a no-op without the file)
    return True


def _set_handler() -> None:
    """On the main thread: wrap the handler Streamlit set for SIGTERM."""
    previous = signal.getsignal(signal.SIGTERM)

    def stop_now(signum: int = signal.SIGTERM) -> None:
        if callable(previous):
            previous(signum, None)
        else:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            os.kill(os.getpid(), signal.SIGTERM)

    def on_sigterm(signum, _frame) -> None:
        if draining():  # a second SIGTERM: no more waiting
            stop_now(signum)
            return
        rt = _runtime()
        loop = rt._get_async_objs().eventloop if rt is not None else None

        def stop() -> None:
            if loop is not None and not loop.is_closed():
                loop.call_soon_threadsafe(stop_now, signum)
            else:
                stop_now(signum)

        threading.Thread(target=drain, args=(stop,), name="diffusion-lens-drain", daemon=True).start()

    signal.signal(signal.SIGTERM, on_sigterm)
