"""Presentation mode: larger type and no sidebar, for a projector; and the Play animations' pacing.

Turned on by the sidebar's toggle or by ``?present=1`` in the address (see :mod:`app.session.urlstate`). While it is on
the sidebar is hidden, so the page shows one button to leave it.

Anyone may present (it is only larger type), but only the *presenter* sees the class's answers to the questions and
may start a new count (:mod:`app.ui.reveal`): a session that gave the presenter key the teacher set in
``$DIFFUSION_LENS_PRESENTER_KEY`` (as the cookie secret is set: deploy/secret.yaml), or, on a server students cannot
reach (it listens on this machine only, see :mod:`app.session.sources`) and with no key set, whoever presents.
"""

from __future__ import annotations

import hmac

import streamlit as st

from app import settings
from app.session import sources

KEY = "present"
PRESENTER_ENV = settings.PRESENTER_KEY_ENV
PRESENTER_STATE = "_presenter"  # True once this session gave the presenter key
KEY_BOX = "present_key"
FRAME_SECONDS = 0.12  # the pause between two frames of a Play animation
PLAY_FRAMES = 40  # a Play animation shows at most this many frames

# Always on: on a phone, display formulas a little smaller (KaTeX draws them at 1.21 em and cannot wrap them),
# so the two-line formulas of Forward and Denoise fit a 400-px screen without sideways scrolling.
# A row of pictures in a container keyed "pics_..." stays one row on a phone (Streamlit stacks columns below
# 640 px, which put x_t two screens below its t slider), and the page links drawn by phone_nav() show only there.
PHONE_CSS = """
<style>
.st-key-phone_nav { display: none !important; }
@media (max-width: 640px) {
  [data-testid="stMain"] .katex-display > .katex { font-size: 1.02em !important; }
  .st-key-phone_nav { display: flex !important; }
  [class*="st-key-pics_"] [data-testid="stHorizontalBlock"] {
    flex-direction: row !important; flex-wrap: nowrap !important; gap: 0.4rem !important;
  }
  [class*="st-key-pics_"] [data-testid="stColumn"] {
    min-width: 0 !important; width: auto !important; flex: 1 1 0 !important;
  }
  [class*="st-key-pics_"] [data-testid="stImageCaption"] { font-size: 0.7rem !important; }
}
</style>
"""


def phone_nav(pages) -> None:
    """The pages as links at the top of the main area, shown on a phone only (there the sidebar, which holds the
    navigation, is folded away behind a small "»")."""
    with st.container(key="phone_nav", horizontal=True, gap="small"):
        for page in pages:
            st.page_link(page, label=page.title, icon=page.icon)


# A picture drawn to its column's width keeps that width (wider than outside this mode: the page's margins are
# narrower) and is at most PICTURE_VH tall, the whole picture shown (object-fit), so a row of pictures with its
# slider and caption fits one 1080-px screen. Numbers (st.metric) grow, instead of taking the paragraphs' size.
PICTURE_VH = "52vh"
CSS = """
<style>
[data-testid="stSidebar"], [data-testid="stSidebarCollapsedControl"], [data-testid="stExpandSidebarButton"] {
  display: none !important;
}
[data-testid="stMainBlockContainer"] { max-width: 100% !important; padding: 3.8rem 2.5rem 2rem !important; }
[data-testid="stMain"] h1 { font-size: 2.3rem !important; padding-top: 0 !important; }
[data-testid="stMain"] h2, [data-testid="stMain"] h3 { font-size: 1.7rem !important; }
[data-testid="stMain"] [data-testid="stMarkdownContainer"] p,
[data-testid="stMain"] [data-testid="stMarkdownContainer"] li { font-size: 1.3rem !important; line-height: 1.45; }
[data-testid="stMain"] [data-testid="stCaptionContainer"],
[data-testid="stMain"] [data-testid="stCaptionContainer"] p,
[data-testid="stMain"] [data-testid="stImageCaption"] {
  font-size: 1.15rem !important; color: inherit !important; opacity: 0.9;
}
[data-testid="stMain"] [data-testid="stWidgetLabel"] p { font-size: 1.2rem !important; }
[data-testid="stMain"] .katex { font-size: 1.35em !important; }
[data-testid="stMain"] [data-testid="stMetricValue"],
[data-testid="stMain"] [data-testid="stMetricValue"] p { font-size: 3rem !important; line-height: 1.2; }
[data-testid="stMain"] [data-testid="stImage"] img { max-height: PICTURE_VH; object-fit: contain; }
[data-testid="stMain"] [class*="st-key-pics_reveal"] img { max-height: 14vh; }
[data-testid="stMain"] .js-plotly-plot .xtick text, [data-testid="stMain"] .js-plotly-plot .ytick text,
[data-testid="stMain"] .js-plotly-plot .legendtext, [data-testid="stMain"] .js-plotly-plot .annotation-text {
  font-size: 17px !important;
}
[data-testid="stMain"] .js-plotly-plot .g-xtitle text, [data-testid="stMain"] .js-plotly-plot .g-ytitle text,
[data-testid="stMain"] .js-plotly-plot .gtitle { font-size: 19px !important; }
[data-testid="stMain"] [data-testid="stNumberInput"] input, [data-testid="stMain"] [data-testid="stTextInput"] input {
  font-size: 1.3rem !important; min-height: 2.9rem;
}
[data-testid="stMain"] [data-testid="stSliderThumbValue"], [data-testid="stMain"] [data-testid="stSliderTickBar"] {
  font-size: 1.1rem !important;
}
</style>
""".replace("PICTURE_VH", PICTURE_VH)


def on() -> bool:
    return bool(st.session_state.get(KEY))


def presenter_key() -> str:
    return (settings.current().presenter_key or "").strip()


def presenter() -> bool:
    """Whether this session presents to the class: presentation mode on, and the presenter key given (or no key
    set on a server only this machine reaches)."""
    if not on():
        return False
    if st.session_state.get(PRESENTER_STATE):
        return True
    return not presenter_key() and not sources.listens_beyond_loopback(sources.public_address())


def _check_key() -> None:
    given = str(st.session_state.get(KEY_BOX) or "").strip()
    st.session_state[KEY_BOX] = ""  # the key is not kept in the box
    key = presenter_key()
    st.session_state[PRESENTER_STATE] = bool(key) and hmac.compare_digest(given.encode(), key.encode())
    st.session_state["_presenter_refused"] = bool(given) and not st.session_state[PRESENTER_STATE]


def _key_box() -> None:
    """In presentation mode, for the teacher: where to give the presenter key (or how to set one)."""
    if presenter():
        return
    with st.popover("Teacher: show the class's answers", icon=":material/key:"):
        if not presenter_key():
            st.caption(
                f"Only the presenter sees the class's answers. This server has no presenter key: its operator sets "
                f"one in {PRESENTER_ENV} (a long random value, like the cookie secret) and restarts it."
            )
            return
        st.text_input("Presenter key", type="password", key=KEY_BOX, on_change=_check_key)
        if st.session_state.get("_presenter_refused"):
            st.warning("That is not this server's presenter key: ask whoever runs the server for it.")


def _leave() -> None:
    st.session_state[KEY] = False


def apply() -> None:
    """Draw the phone rules, and the presentation style and its exit button when the mode is on (call once per
    run, in the entry)."""
    st.html(PHONE_CSS)
    if not on():
        return
    st.html(CSS)
    with st.container(horizontal=True, key="present_bar"):  # one row: the page's own elements keep their place
        st.button("Leave presentation mode", key="present_exit", on_click=_leave, icon=":material/close_fullscreen:")
        _key_box()


def frames(lo: int, hi: int, count: int = PLAY_FRAMES) -> list[int]:
    """At most ``count`` evenly spaced whole numbers from ``lo`` to ``hi`` (both included, increasing)."""
    if hi <= lo:
        return [lo]
    n = min(count, hi - lo + 1)
    return sorted({lo + round(i * (hi - lo) / (n - 1)) for i in range(n)})
