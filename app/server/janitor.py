"""Freeing what Streamlit still holds for sessions that ended without being shut down.

When a browser tab goes away, Streamlit keeps its session for reconnection
(``server.disconnectedSessionTTL``, 120 s by default, in a TTL cache). When that time runs
out the cache simply forgets the session: ``AppSession.shutdown()`` never runs, so the
session's references to pictures in the media store and its uploaded files are never
released (Streamlit 1.67). A classroom where students come and go then grows by the
pictures and uploads of every student who left (bench/soak.py measured about 0.2 MiB of
pictures and 0.05 MiB of uploads per departed session).

:func:`sweep` releases them: every session id that holds media references or uploads but
is neither connected nor kept for reconnection gets its references cleared (the media store
then drops files nobody refers to) and its uploads removed. :func:`start` runs it every
``SWEEP_S`` seconds in one daemon thread per process; the app's entry file starts it.
"""

from __future__ import annotations

import threading
import time

import streamlit as st

SWEEP_S = 30.0

_freed = {"sweeps": 0, "media_sessions": 0, "upload_sessions": 0}


def sweep(rt=None) -> dict[str, int]:
    """Release the media references and uploads of sessions the server no longer knows.

    ``rt``: a Streamlit ``Runtime`` (default: the running one; ``{}`` when there is none).
    Returns how many sessions' media references and uploads were released this time.
    """
    if rt is None:
        from streamlit.runtime import Runtime

        if not Runtime.exists():
            return {}
        rt = Runtime.instance()
    sessions = getattr(rt, "_session_mgr", None)
    if sessions is None:
        return {}
    live = {info.session.id for info in sessions.list_sessions()}  # connected + kept for reconnection
    media = rt.media_file_mgr
    with media._lock:
        holders = list(getattr(media, "_files_by_session_and_coord", {}))
    gone_media = [sid for sid in holders if sid not in live]
    for sid in gone_media:
        media.clear_session_refs(sid)
    if gone_media:
        media.remove_orphaned_files()
    uploads = rt.uploaded_file_mgr
    gone_uploads = [sid for sid in list(getattr(uploads, "file_storage", {})) if sid not in live]
    for sid in gone_uploads:
        uploads.remove_session_files(sid)
    return {"media_sessions": len(gone_media), "upload_sessions": len(gone_uploads)}


def freed() -> dict[str, int]:
    """Totals since the process started: sweeps run, sessions whose media / uploads were released."""
    return dict(_freed)


@st.cache_resource(show_spinner=False)
def start(every_s: float = SWEEP_S) -> threading.Thread:
    """Once per process: run :func:`sweep` every ``every_s`` seconds in a daemon thread."""

    def loop() -> None:
        while True:
            time.sleep(every_s)
            try:
                done = sweep()
            except Exception:  # noqa: BLE001 -- Streamlit internals may change; never take the server down
                continue
            _freed["sweeps"] += 1
            for key, n in done.items():
                _freed[key] += n

    thread = threading.Thread(target=loop, name="diffusion-lens-janitor", daemon=True)
    thread.start()
    return thread
