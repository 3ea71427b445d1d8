"""Per-session state, set up in one place.

Every key a page reads from ``st.session_state`` gets its default here, so pages can
rely on it. Page widgets use these keys with ``persist_state="session"`` (Streamlit 1.67),
so their values survive a trip to another page and back.
"""

from __future__ import annotations

import streamlit as st

DEFAULTS: dict[str, object] = {
    # image choice (sidebar)
    "image_source": "Sample photo",
    "sample_name": "astronaut",
    "upload_digest": None,  # sha256 of the uploaded bytes, or None
    "upload_bytes": None,
    "upload_name": None,
    "resolution": 64,
    # model choice (sidebar); "bundled" or a local folder / Hub id
    "model_source": "bundled",
    # forward page
    "fwd_t": 250,
    "fwd_schedule": "linear",
    "fwd_seed": 0,
    # presentation mode (sidebar toggle or ?present=1)
    "present": False,
}


PENDING = "_pending_values"


def init() -> None:
    """Fill in every default that is not set yet, and apply values set for this run (call once per run, from the
    entry file, before any widget)."""
    for key, value in DEFAULTS.items():
        if key not in st.session_state:
            st.session_state[key] = value
    for key, value in st.session_state.pop(PENDING, {}).items():
        st.session_state[key] = value


def set_next_run(key: str, value) -> None:
    """Give a widget a value from the next run on (a widget drawn in this run cannot be set), e.g. the t
    slider after a Play animation; call ``st.rerun()`` afterwards."""
    st.session_state.setdefault(PENDING, {})[key] = value


def set_default(key: str, value) -> None:
    """Give a page-specific key a default the first time that page runs."""
    if key not in st.session_state:
        st.session_state[key] = value


# --- t and the seed, shared by the pages that show them -------------------------------------------------------
# Forward, Denoise and Inside the network each keep their own widget (its own key, kept across pages), and the
# value last set on any of them is where the next one opens: a learner who noised the photo to t = 700 on Forward
# sees the network at t = 700 on Denoise. Per name, the session keeps the value last published and, per widget key,
# the value that page last saw, so a page takes another page's change but never overrides its own widget's.
SHARED = "_shared_{}"
SEEN = "_shared_seen_{}"


def follow_shared(name: str, key: str, hi: int | None = None) -> None:
    """Before a page draws widget ``key``: take the value of ``name`` ("t" or "seed") if another page changed it
    since this page last published; ``hi`` clamps it to this page's range (a model with a shorter chain)."""
    value = st.session_state.get(SHARED.format(name))
    if value is None or st.session_state.get(SEEN.format(key)) == value:
        return
    st.session_state[key] = min(value, hi) if hi is not None else value
    st.session_state[SEEN.format(key)] = value


def publish_shared(name: str, key: str, value) -> None:
    """After a page drew widget ``key``: its value is now the shared ``name`` for the other pages."""
    st.session_state[SHARED.format(name)] = value
    st.session_state[SEEN.format(key)] = value
