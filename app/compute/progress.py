"""How a computation in app/compute/ reports its progress without drawing: a callback the page passes in.

A slow cached function takes ``_progress: Progress | None`` (the leading underscore keeps it out of the cache key)
and calls it with the fraction done (0 to 1) and one line of text; the page draws the bar
(``app.ui.common.progress_bar``), a benchmark or a test passes nothing.
"""

from __future__ import annotations

from collections.abc import Callable

Progress = Callable[[float, str], None]


def no_progress(fraction: float, text: str) -> None:
    """The callback used when the caller passes none."""


def reporter(progress: Progress | None) -> Progress:
    return progress or no_progress
