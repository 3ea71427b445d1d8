"""Long runs in a lane of their own, one per session, stopped when the session leaves (issue 28, item 3).

A long run is a whole reverse trajectory, "one of each class" or the t_start sweep: hundreds of forward
passes in a row from one session. Every pass queues for an inference slot (model/serving/runtime.py, first
come first served), so ten students running 1000-step runs put ten passes ahead of every other student's
slider step. Three rules keep a classroom fair:

1. **A lane.** Each step of a long run holds a place in the long-run lane (:func:`app.server.admission.long_run_lane`)
   while it computes: at most that many steps of long runs (``DIFFUSION_LENS_LONG_RUN_SLOTS``; default one less than the
   inference slots, at least 1) are queued or running at once. A slider step then waits for at most that
   many long passes, and long runs take turns among themselves in arrival order (they go slower when
   there are many of them, the progress bar says so).
2. **One per session.** A session that starts a run while its previous one still goes (a rerun whose old
   script has not reached a stopping point yet) cancels the previous one.
3. **Gone means stopped.** Before each step the run checks that its session still has a browser
   connected (Streamlit's ``Runtime.is_active_session``); when the tab is closed, the run ends at its next
   step instead of computing for nobody.

A cancelled run raises :class:`RunCancelled`; inside a Streamlit script :func:`long_run` turns it into
``st.stop()`` (nobody is there to read a message, or a newer run of the same session takes over).
The pure sampling code knows nothing of this: :func:`paced` wraps its generator of steps.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TypeVar

from app import settings
from app.server import admission

ENV_SLOTS = settings.LONG_RUN_SLOTS_ENV
_T = TypeVar("_T")


class RunCancelled(Exception):
    """A long run stopped before its end: its session left, or a newer run of the session replaced it."""


@dataclass
class LongRun:
    """One long run in progress: whose (Streamlit session id, None outside a session), what, and its state."""

    session_id: str | None
    what: str
    started: float = field(default_factory=time.monotonic)
    steps: int = 0
    cancelled: str | None = None  # why, once cancelled

    def cancel(self, why: str) -> None:
        self.cancelled = why

    def check(self) -> None:
        """Raise :class:`RunCancelled` if the run was cancelled or its session has no browser any more."""
        if self.cancelled is None and not session_alive(self.session_id):
            self.cancel("its browser tab was closed")
        if self.cancelled is not None:
            raise RunCancelled(f"The {self.what} stopped because {self.cancelled}.")


_lock = threading.Lock()
_runs: dict[str | None, list[LongRun]] = {}
_stats = {"started": 0, "finished": 0, "cancelled": 0, "steps": 0}
_refusing: list[str] = []  # why new runs are refused (the server drains for a restart), empty when they are not


def _script_ctx():
    try:
        from streamlit.runtime.scriptrunner import get_script_run_ctx

        return get_script_run_ctx(suppress_warning=True)
    except Exception:  # noqa: BLE001 -- no Streamlit: no script
        return None


def current_session_id() -> str | None:
    """The Streamlit session running this thread's script, or None (a command line, a plain test)."""
    return getattr(_script_ctx(), "session_id", None)


def session_alive(session_id: str | None) -> bool:
    """False only when the running Streamlit server knows the session has no browser connected any more."""
    if session_id is None:
        return True
    try:
        from streamlit.runtime import Runtime

        if not Runtime.exists():
            return True  # AppTest, a command line: nobody to leave
        return bool(Runtime.instance().is_active_session(session_id))
    except Exception:  # noqa: BLE001 -- Streamlit internals may change; never stop a run by mistake
        return True


def refuse_new(why: str) -> None:
    """From now on a new long run is cancelled before its first step, ``because {why}`` (app/server/drain.py)."""
    with _lock:
        _refusing[:] = [why]


def sessions_running() -> set[str]:
    """The sessions with a long run in progress."""
    with _lock:
        return {sid for sid, runs in _runs.items() if sid is not None and runs}


def running() -> int:
    """Long runs in progress in this process."""
    with _lock:
        return sum(len(v) for v in _runs.values())


def stats() -> dict[str, int]:
    """Runs started, finished, cancelled, steps run, and runs in progress now (tests, benchmarks)."""
    with _lock:
        return {**_stats, "running": sum(len(v) for v in _runs.values())}


def note() -> str:
    """A few words for a progress bar while other long runs share the lane, else ""."""
    others = running() - 1
    if others < 1:
        return ""
    return f" (sharing the long-run lane with {others} other run{'s' if others != 1 else ''})"


@contextmanager
def long_run(what: str, session_id: str | None = None) -> Iterator[LongRun]:
    """Register a long run of this session (``session_id``: default the current Streamlit session) for the block.

    An earlier run of the same session still in progress is cancelled. A :class:`RunCancelled` raised in the
    block ends the Streamlit script quietly (``st.stop()``); outside a script it propagates.
    """
    sid = session_id if session_id is not None else current_session_id()
    run = LongRun(sid, what)
    with _lock:
        if sid is not None:
            for older in _runs.get(sid, []):
                older.cancel("a newer run of the same session replaced it")
        _runs.setdefault(sid, []).append(run)
        _stats["started"] += 1
        if _refusing:
            run.cancel(_refusing[0])
    try:
        yield run
        with _lock:
            _stats["finished"] += 1
    except RunCancelled:
        with _lock:
            _stats["cancelled"] += 1
        if _script_ctx() is None:
            raise
        import streamlit as st

        st.stop()
    finally:
        with _lock:
            mine = _runs.get(sid, [])
            if run in mine:
                mine.remove(run)
            if not mine:
                _runs.pop(sid, None)


def paced(steps: Iterable[_T], run: LongRun) -> Iterator[_T]:
    """The items of ``steps`` (a sampler's generator: each ``next`` runs a forward pass), each one computed while
    holding a place in the long-run lane (app/server/admission.py), after checking that ``run`` should go on."""
    it = iter(steps)
    lane = admission.long_run_lane()
    while True:
        run.check()
        lane.acquire()  # FIFO among long runs; a slider step never waits in this lane
        try:
            run.check()  # the tab may have closed while this step waited its turn
            item = next(it)
        except StopIteration:
            return
        finally:
            lane.release()
        run.steps += 1
        with _lock:
            _stats["steps"] += 1
        yield item


def reset() -> None:
    """Forget the lane and the counts (tests: after changing the inference slots or ``DIFFUSION_LENS_LONG_RUN_SLOTS``)."""
    admission.long_run_lane.clear()
    with _lock:
        _runs.clear()
        _refusing.clear()
        _stats.update(started=0, finished=0, cancelled=0, steps=0)
