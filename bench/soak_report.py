"""What bench/soak.py prints and writes: the per-minute table, the CSV and the PNG of RSS and media over time."""

from __future__ import annotations

import csv
from dataclasses import asdict, fields
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from soak import Sample


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
