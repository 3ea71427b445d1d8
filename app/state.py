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
}


def init() -> None:
    """Fill in every default that is not set yet (call once per run, from the entry file)."""
    for key, value in DEFAULTS.items():
        if key not in st.session_state:
            st.session_state[key] = value


def set_default(key: str, value) -> None:
    """Give a page-specific key a default the first time that page runs."""
    if key not in st.session_state:
        st.session_state[key] = value
