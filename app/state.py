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
