"""Text that comes from outside (a link's values, a name a student typed) shown inside markdown, safely.

``st.warning``, ``st.info`` and ``st.markdown`` render markdown and LaTeX, so a link value such as
``![x](http://host/p.png)`` would make the receiving browser fetch an image, ``[x](http://host)`` would become a
clickable link, and ``$\\rule{200em}{200em}$`` would cover the page. Every such value goes out through
:func:`code`: an inline code span, in which markdown, HTML and LaTeX are shown as the characters they are.
"""

from __future__ import annotations

ELLIPSIS = "…"


def code(value: object, limit: int = 40) -> str:
    """``value`` as one inline code span of at most ``limit`` characters (plus "…" when cut).

    Backticks become ' (a backtick would end the span), and line breaks and other control characters become
    spaces (a span is one line). An empty value is shown as "(empty)".
    """
    text = "".join(ch if ch.isprintable() else " " for ch in str(value)).replace("`", "'")
    if len(text) > limit:
        text = text[:limit] + ELLIPSIS
    if not text.strip():
        return "(empty)"
    return f"`{text}`"
