"""What the server-side timing benchmarks share (bench/inside_page.py, bench/frequency.py, bench/particles.py): their
common options, the median and p90 of repeated timings, and the table they print."""

from __future__ import annotations

import argparse
import statistics
from collections.abc import Callable


def add_common_args(ap: argparse.ArgumentParser) -> None:
    """--res, --repeats, --threads and --json, as every one of these benchmarks takes them."""
    ap.add_argument("--res", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=15)
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: as the app chooses)")
    ap.add_argument("--json", default=None, help="also write the figures to this file")


def quiet_streamlit() -> None:
    """No "No runtime found" warnings: st.cache_* works without a server."""
    import streamlit.logger

    streamlit.logger.set_log_level("error")


def stats(ms: list[float]) -> tuple[float, float]:
    """(median, p90) of timings in ms."""
    ms = sorted(ms)
    return statistics.median(ms), ms[min(len(ms) - 1, round(0.9 * (len(ms) - 1)))]


def print_table(
    results: dict[str, list[float]], width: int, note: Callable[[str, float], str] = lambda name, med: ""
) -> dict[str, dict]:
    """Prints one row per timing (median and p90 in ms, then ``note(name, median)``); returns them by name."""
    print(f"{'':{width + 2}s}{'median ms':>10s}{'p90 ms':>10s}")
    summary = {}
    for name, ms in results.items():
        med, p90 = stats(ms)
        summary[name] = {"median_ms": med, "p90_ms": p90, "runs_ms": ms}
        print(f"  {name:{width}s}{med:10.1f}{p90:10.1f}{note(name, med)}")
    return summary
