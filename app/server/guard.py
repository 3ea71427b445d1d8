"""What a student's browser may ask of the server, decided at the app's edge; and how one browser is told apart.

**Clear cache.** Streamlit's frontend sends ``BackMsg(clear_cache=True)`` from its menu, and Streamlit's server
empties every ``st.cache_data`` and ``st.cache_resource`` of the process for it, whatever ``client.toolbarMode``
says ("viewer" only hides the menu item). One student sending it twice a second made every other student's slider
wait seconds for recomputed results. :func:`install` replaces that handler, once per process, by one that refuses
the message (a line in the server's log says who asked). The server's operator keeps a way: with
``DIFFUSION_LENS_ALLOW_CLEAR_CACHE=1`` (a teacher's own laptop) the menu's *Clear cache* works again. Either way
what must survive lives outside Streamlit's caches: the loaded models (:mod:`app.compute.models`), the class's tally
(:mod:`app.ui.reveal`) and the trained particle networks (:mod:`app.compute.particles`).

**One browser.** :func:`browser_id` names the browser a session runs in: the token of Streamlit's XSRF cookie
(``_streamlit_xsrf``, set once per browser and presented by every tab's websocket, which the server checks against
the handshake). All tabs of one browser share it; a script that throws its cookies away looks like a new browser,
which no anonymous server can tell from a new student (docs/security.md says what that leaves open). Where there is
no cookie (AppTest) the session is its own browser.
"""

from __future__ import annotations

import hashlib
import logging
import uuid

import streamlit as st

from app import settings

ALLOW_CLEAR_ENV = settings.ALLOW_CLEAR_CACHE_ENV
XSRF_COOKIE = "_streamlit_xsrf"
SESSION_KEY = "_guard_browser"  # the fallback id of a session without the cookie
_LOG = logging.getLogger("diffusion_lens.guard")


def clear_cache_allowed() -> bool:
    return settings.current().allow_clear_cache


ORIGINAL_ATTR = "_diffusion_lens_streamlit_clear_cache"  # where install() keeps Streamlit's own handler


def _refuse_clear_cache(session) -> None:
    """The replacement of ``AppSession._handle_clear_cache_request``: a log line, nothing cleared."""
    if clear_cache_allowed():
        from streamlit.runtime.app_session import AppSession

        getattr(AppSession, ORIGINAL_ATTR)(session)
        return
    _LOG.warning("Refused a clear_cache request from session %s (set %s=1 to allow it)", session.id, ALLOW_CLEAR_ENV)


def install() -> None:
    """Refuse ``clear_cache`` from browsers from now on (idempotent: the entry calls it on every run).

    Before the first script run of the process nothing of the app is cached yet, so there is nothing to protect."""
    from streamlit.runtime.app_session import AppSession

    if AppSession._handle_clear_cache_request is not _refuse_clear_cache:
        setattr(AppSession, ORIGINAL_ATTR, AppSession._handle_clear_cache_request)
        AppSession._handle_clear_cache_request = _refuse_clear_cache


def browser_id() -> str:
    """A short anonymous id of this session's browser: a hash of its XSRF token, shared by all its tabs (else one
    per session)."""
    raw = st.context.cookies.get(XSRF_COOKIE) if st.context.cookies else None
    token = _xsrf_token(raw) if raw else None
    if token:
        return "b-" + hashlib.sha256(token).hexdigest()[:16]
    ss = st.session_state
    if SESSION_KEY not in ss:
        ss[SESSION_KEY] = "s-" + uuid.uuid4().hex[:16]
    return ss[SESSION_KEY]


def _xsrf_token(cookie: str) -> bytes | None:
    """The token inside an XSRF cookie value (its mask and timestamp change when it is reissued, the token not)."""
    try:
        from streamlit.web.server.starlette.starlette_app_utils import decode_xsrf_token_string

        token, _ = decode_xsrf_token_string(cookie)
    except (ImportError, ValueError):
        token = None
    return token or cookie.encode("utf-8", "replace")
