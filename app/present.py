"""Presentation mode: larger type and no sidebar, for a projector; and the Play animations' pacing.

Turned on by the sidebar's toggle or by ``?present=1`` in the address (see :mod:`app.urlstate`). While it is on
the sidebar is hidden, so the page shows one button to leave it.
"""

from __future__ import annotations

import streamlit as st

KEY = "present"
FRAME_SECONDS = 0.12  # the pause between two frames of a Play animation
PLAY_FRAMES = 40  # a Play animation shows at most this many frames

# Always on: on a phone, display formulas a little smaller (KaTeX draws them at 1.21 em and cannot wrap them),
# so the two-line formulas of Forward and Denoise fit a 400-px screen without sideways scrolling.
PHONE_CSS = """
<style>
@media (max-width: 640px) {
  [data-testid="stMain"] .katex-display > .katex { font-size: 1.02em !important; }
}
</style>
"""

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
[data-testid="stMain"] [data-testid="stImage"] img { max-height: 40vh; width: auto !important; margin: 0 auto; }
</style>
"""


def on() -> bool:
    return bool(st.session_state.get(KEY))


def _leave() -> None:
    st.session_state[KEY] = False


def apply() -> None:
    """Draw the phone rules, and the presentation style and its exit button when the mode is on (call once per
    run, in the entry)."""
    st.html(PHONE_CSS)
    if not on():
        return
    st.html(CSS)
    st.button("Leave presentation mode", key="present_exit", on_click=_leave, icon=":material/close_fullscreen:")


def frames(lo: int, hi: int, count: int = PLAY_FRAMES) -> list[int]:
    """At most ``count`` evenly spaced whole numbers from ``lo`` to ``hi`` (both included, increasing)."""
    if hi <= lo:
        return [lo]
    n = min(count, hi - lo + 1)
    return sorted({lo + round(i * (hi - lo) / (n - 1)) for i in range(n)})
