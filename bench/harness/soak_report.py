"""What bench/soak.py records, judges, prints and writes: one sample, the verdict (is the server's memory flat?), the
per-minute table, the CSV and the PNG of RSS and media over time."""

from __future__ import annotations

import csv
from dataclasses import asdict, dataclass, fields
from pathlib import Path

MIB = 2**20
MAX_RSS_SLOPE = 20.0  # MiB per 10 min over the second half
MAX_MEDIA_SLOPE = 2.0  # MiB per 10 min over the second half


@dataclass
class Sample:
    t_s: float  # seconds since the first student arrived
    phase: str  # "load" while students act, "after" once they have all left
    rss_mib: float  # the server's process tree: mean of the readings (1 a second) since the previous sample
    rss_max_mib: float  # and their max
    sessions: int  # students connected now (client side)
    actions: int  # completed so far: opens, uploads, slider steps, page switches
    errors: int  # so far
    step_p95_s: float  # slider steps completed since the previous sample (NaN: none)
    media_files: int | None  # in Streamlit's media store (None: the server wrote no stats)
    media_mib: float | None
    server_sessions: int | None  # connected, as the server counts them
    held_sessions: int | None  # connected + disconnected ones kept for a reconnect
    media_ref_sessions: int | None  # sessions holding media files (more than held: a session's files outlive it)
    upload_files: int | None
    cache_data_mib: float | None


# ---------------------------------------------------------------------------------
# The verdict: pure functions of the samples
# ---------------------------------------------------------------------------------


def slope_per_10min(t_s: list[float], values: list[float]) -> float:
    """Least-squares slope of ``values`` against ``t_s`` (seconds), in units per 10 minutes; NaN under 2 points."""
    if len(t_s) < 2:
        return float("nan")
    tm, vm = sum(t_s) / len(t_s), sum(values) / len(values)
    var = sum((t - tm) ** 2 for t in t_s)
    if var == 0:
        return float("nan")
    return 600.0 * sum((t - tm) * (v - vm) for t, v in zip(t_s, values, strict=True)) / var


def verdict(
    t_s: list[float],
    rss_mib: list[float],
    media_mib: list[float | None],
    errors: int,
    *,
    warmup_s: float = 300.0,
    max_rss_slope: float = MAX_RSS_SLOPE,
    max_media_slope: float = MAX_MEDIA_SLOPE,
) -> dict:
    """Is the server's memory flat? (Pass rule in bench/soak.py's docstring.)

    ``t_s``: sample times in seconds, ascending, all taken while students act. ``rss_mib``,
    ``media_mib``: the server's RSS and media store at those times (a media value of None: not
    known). ``errors``: the run's total. The second half is the samples at ``t >= t_s[-1] / 2``;
    it needs at least 3 of them. Returns the numbers, ``passed`` and the ``reasons`` it failed.
    """
    base = next((i for i, t in enumerate(t_s) if t >= warmup_s), 0)
    growth = rss_mib[-1] - rss_mib[base]
    half = [i for i, t in enumerate(t_s) if t >= t_s[-1] / 2]
    rss_slope = slope_per_10min([t_s[i] for i in half], [rss_mib[i] for i in half])
    media_known = bool(half) and all(media_mib[i] is not None for i in half)
    media_slope = slope_per_10min([t_s[i] for i in half], [media_mib[i] for i in half]) if media_known else None
    reasons = []
    if len(half) < 3:
        reasons.append(f"only {len(half)} samples in the second half (need 3: sample more often)")
    if not rss_slope < max_rss_slope:  # NaN fails too
        reasons.append(f"RSS slope {rss_slope:.1f} MiB per 10 min (limit {max_rss_slope:g})")
    if media_slope is None:
        reasons.append("no media-store numbers from the server")
    elif not media_slope < max_media_slope:
        reasons.append(f"media-store slope {media_slope:.2f} MiB per 10 min (limit {max_media_slope:g})")
    if errors:
        reasons.append(f"{errors} errors")
    return {
        "baseline_t_s": t_s[base],
        "baseline_rss_mib": rss_mib[base],
        "end_rss_mib": rss_mib[-1],
        "rss_growth_mib": growth,
        "rss_growth_pct": 100.0 * growth / rss_mib[base] if rss_mib[base] else float("nan"),
        "second_half_samples": len(half),
        "rss_slope_mib_per_10min": rss_slope,
        "media_slope_mib_per_10min": media_slope,
        "errors": errors,
        "passed": not reasons,
        "reasons": reasons,
    }


def describe(v: dict) -> str:
    """The verdict in a few lines."""
    media = v["media_slope_mib_per_10min"]
    return "\n".join(
        [
            f"RSS growth from {v['baseline_t_s'] / 60:.1f} min to the end: {v['rss_growth_mib']:+.1f} MiB "
            f"({v['rss_growth_pct']:+.1f} %), {v['baseline_rss_mib']:.0f} -> {v['end_rss_mib']:.0f} MiB",
            f"second half ({v['second_half_samples']} samples): RSS slope {v['rss_slope_mib_per_10min']:+.1f} MiB "
            f"per 10 min (limit {MAX_RSS_SLOPE:g}), media-store slope "
            + (f"{media:+.2f}" if media is not None else "?")
            + f" MiB per 10 min (limit {MAX_MEDIA_SLOPE:g})",
            f"errors: {v['errors']} (limit 0)",
            "PASS: flat" if v["passed"] else "FAIL: " + "; ".join(v["reasons"]),
        ]
    )


# ---------------------------------------------------------------------------------
# Output
# ---------------------------------------------------------------------------------

COLUMNS = [  # header, width, format of one Sample
    ("time", 7, lambda s: f"{int(s.t_s) // 60:d}:{int(s.t_s) % 60:02d}"),
    ("RSS MiB", 9, lambda s: f"{s.rss_mib:.0f}"),
    ("max", 6, lambda s: f"{s.rss_max_mib:.0f}"),
    ("sessions", 9, lambda s: f"{s.sessions}"),
    ("srv/held/ref", 13, lambda s: f"{_opt(s.server_sessions)}/{_opt(s.held_sessions)}/{_opt(s.media_ref_sessions)}"),
    ("actions", 8, lambda s: f"{s.actions}"),
    ("errors", 7, lambda s: f"{s.errors}"),
    ("step p95", 9, lambda s: "-" if s.step_p95_s != s.step_p95_s else f"{s.step_p95_s:.2f}"),
    ("media files", 12, lambda s: _opt(s.media_files)),
    ("media MiB", 10, lambda s: _opt(s.media_mib, ".2f")),
    ("uploads", 8, lambda s: _opt(s.upload_files)),
    ("cache MiB", 10, lambda s: _opt(s.cache_data_mib, ".1f")),
    ("", 6, lambda s: "" if s.phase == "load" else s.phase),
]


def _opt(v, fmt: str = "") -> str:
    return "?" if v is None else format(v, fmt)


def print_row(s: Sample, header: bool = False) -> None:
    if header:
        print("".join(f"{h:>{w}}" for h, w, _ in COLUMNS))
    print("".join(f"{f(s):>{w}}" for _, w, f in COLUMNS), flush=True)


def write_csv(path: Path, samples: list[Sample]) -> None:
    with path.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=[fl.name for fl in fields(samples[0])] if samples else [])
        w.writeheader()
        w.writerows(asdict(s) for s in samples)


def write_png(path: Path, samples: list[Sample], warmup_s: float, run_s: float, title: str) -> bool:
    """RSS, media store and st.cache_data MiB against minutes (matplotlib, if installed); False if not written."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    minutes = [s.t_s / 60 for s in samples]
    fig, axes = plt.subplots(3, 1, sharex=True, figsize=(8, 7))
    series = [
        ("server RSS (MiB)", "tab:blue", [s.rss_mib for s in samples]),
        ("media store (MiB)", "tab:orange", [s.media_mib for s in samples]),
        ("st.cache_data (MiB)", "tab:grey", [s.cache_data_mib for s in samples]),
    ]
    for ax, (label, color, values) in zip(axes, series, strict=True):
        known = [(m, v) for m, v in zip(minutes, values, strict=True) if v is not None]
        ax.plot([m for m, _ in known], [v for _, v in known], marker="o", ms=3, color=color)
        ax.set_ylabel(label)
        ax.set_ylim(bottom=0)
    top = axes[0]
    axes[-1].set_xlabel("minutes since the first student arrived")
    for ax in axes:
        ax.axvline(warmup_s / 60, color="grey", ls=":", lw=1)
        ax.axvspan(run_s / 120, run_s / 60, color="grey", alpha=0.08, lw=0)  # the second half
        ax.axvline(run_s / 60, color="grey", ls="--", lw=1)  # the students leave
        ax.grid(alpha=0.3)
    top.set_title(f"{title} (dotted: end of warm-up; shaded: second half)", fontsize="medium")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True
