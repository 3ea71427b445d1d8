"""bench/soak.py's verdict: a growing series fails, a flat one passes (no server needed)."""

from __future__ import annotations

import math
import random

import pytest

from harness.soak_report import MAX_RSS_SLOPE, slope_per_10min, verdict  # bench/ is on pytest's pythonpath

MINUTES = [60.0 * k for k in range(31)]  # a sample a minute for 30 minutes


def test_slope_is_per_10_minutes_and_exact_on_a_line():
    assert slope_per_10min(MINUTES, [500.0 + 3.0 * t / 60 for t in MINUTES]) == pytest.approx(30.0)
    assert slope_per_10min(MINUTES, [700.0] * len(MINUTES)) == pytest.approx(0.0)
    assert math.isnan(slope_per_10min([0.0], [1.0]))


def test_a_flat_noisy_series_after_warm_up_passes():
    rnd = random.Random(0)
    # caches fill in the first 5 minutes (+300 MiB), then RSS wanders +-15 MiB around 1400
    rss = [1100.0 + 60.0 * t / 60 if t < 300 else 1400.0 + rnd.uniform(-15, 15) for t in MINUTES]
    media = [6.0 + rnd.uniform(-0.5, 0.5) for _ in MINUTES]
    v = verdict(MINUTES, rss, media, errors=0, warmup_s=300)
    assert v["passed"], v["reasons"]
    assert v["baseline_t_s"] == 300
    assert abs(v["rss_growth_mib"]) <= 30
    assert abs(v["rss_slope_mib_per_10min"]) < MAX_RSS_SLOPE
    assert v["second_half_samples"] == 16  # minutes 15..30


def test_a_slow_leak_fails_and_says_by_how_much():
    rss = [1200.0 + 4.0 * t / 60 for t in MINUTES]  # 40 MiB per 10 min, never levels off
    v = verdict(MINUTES, rss, [6.0] * len(MINUTES), errors=0, warmup_s=300)
    assert not v["passed"]
    assert v["rss_slope_mib_per_10min"] == pytest.approx(40.0)
    assert v["rss_growth_mib"] == pytest.approx(100.0)  # minute 5 to minute 30
    assert v["rss_growth_pct"] == pytest.approx(100.0 * 100 / 1220)
    assert any("RSS slope" in r for r in v["reasons"])


def test_a_growing_media_store_errors_or_missing_numbers_fail():
    flat = [1400.0] * len(MINUTES)
    growing_media = [0.5 * t / 60 for t in MINUTES]  # 5 MiB per 10 min
    assert "media-store slope" in verdict(MINUTES, flat, growing_media, errors=0)["reasons"][0]
    assert verdict(MINUTES, flat, [6.0] * len(MINUTES), errors=2)["reasons"] == ["2 errors"]
    assert "no media-store numbers" in verdict(MINUTES, flat, [None] * len(MINUTES), errors=0)["reasons"][0]


def test_too_few_samples_in_the_second_half_fail():
    v = verdict([0.0, 600.0, 1800.0], [1000.0] * 3, [5.0] * 3, errors=0)
    assert not v["passed"] and "samples in the second half" in v["reasons"][0]


def test_the_samples_are_written_as_csv_and_plotted(tmp_path):
    """The report writers run on real Sample rows (a name only imported for type checking once broke them)."""
    import csv

    from harness.soak_report import Sample, write_csv, write_png

    rows = [
        Sample(
            t_s=60.0 * i,
            phase="load",
            rss_mib=900.0 + i,
            rss_max_mib=950.0,
            sessions=30,
            actions=100 * i,
            errors=0,
            step_p95_s=0.2,
            media_files=40,
            media_mib=3.0,
            server_sessions=30,
            held_sessions=30,
            media_ref_sessions=30,
            upload_files=30,
            cache_data_mib=12.0,
        )  # fmt: skip
        for i in range(4)
    ]
    write_csv(tmp_path / "s.csv", rows)
    with (tmp_path / "s.csv").open() as f:
        read = list(csv.DictReader(f))
    assert len(read) == 4 and read[2]["rss_mib"] == "902.0" and read[3]["actions"] == "300"
    write_csv(tmp_path / "empty.csv", [])
    assert (tmp_path / "empty.csv").read_text().strip() == ""
    if write_png(tmp_path / "s.png", rows, warmup_s=60.0, run_s=180.0, title="test"):
        assert (tmp_path / "s.png").stat().st_size > 0
