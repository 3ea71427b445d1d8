"""Soak: a classroom for 30 minutes against one server; its memory must stay flat (issue 18, item 5).

The students of ``bench/load.py`` (websocket clients speaking Streamlit's protocol: upload a photo,
step the forward and denoise sliders, switch pages, fetch every picture from /media) keep acting
for the whole run, with ``--think-min``..``--think-max`` seconds between actions and no cap on
actions. Each student also leaves and comes back now and then (``--stay-min``..``--stay-max``
minutes per visit, a fresh session with another photo), so Streamlit must free what finished
sessions held: their media files, uploads and session state. After an error a student waits
5 s and comes back, so the load does not thin out.

Every ``--sample-every`` seconds (and once more when the students stop) it records:

* the server process tree's RSS (psutil): the mean and the max of the readings taken once a second
  since the previous sample (the verdict uses the mean: single readings swing by 100 MiB and more
  as a rerun's tensors come and go);
* the students connected now, the actions done and the errors so far, and the slider steps' p95
  since the previous sample;
* from inside the server (app/server/stats.py, through the stats file model/serving/batching.py rewrites
  every second): the files and bytes in Streamlit's in-memory media store, the sessions the server
  holds (connected, plus disconnected ones kept ``server.disconnectedSessionTTL`` = 120 s for a
  reconnect) and the sessions that still hold media files, uploads held, and ``st.cache_data``
  bytes. Streamlit 1.67 keeps no server-side
  forward-message cache, so there is no message count to sample.

Then ``--cooldown`` seconds with no students show what the server gives back once the
disconnected sessions expire. It prints the table and the verdict, and writes
bench/out/soak-<stamp>.json, .csv and .png (RSS, media and cache MiB over time; the PNG needs matplotlib).

Table columns: ``srv/held/ref`` = sessions connected / held by the server (connected + disconnected
kept for a reconnect) / holding media files. A ``ref`` count above ``held`` means sessions that
expired still pin their pictures: Streamlit 1.67's ``MemorySessionStorage`` drops an expired
session without ``AppSession.shutdown()``, which is what frees its media references and uploads.

Pass rule ("flat"), computed by :func:`verdict` over the samples taken while students act:

* the server RSS's least-squares slope over the second half of the run < 20 MiB per 10 min
  (at that rate it would take over 8 h, a whole school day, to grow 1 GiB), and
* the media store's slope over the second half < 2 MiB per 10 min, and
* 0 errors.

It also reports the RSS growth from the first sample after ``--warmup`` (default 5 min; at most a
third of the run) to the end, in MiB and %. The 30-minute run, about 33 minutes with warm-up
and cool-down::

    .venv/bin/python bench/soak.py --sessions 30 --seconds 1800 --sample-every 60

A smoke run: ``--sessions 4 --seconds 90 --sample-every 20 --stay-min 0.5 --stay-max 1 --cooldown 30``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import load
from _server import OUT, RssSampler, Server, load_average, percentile, server_env, tree_rss
from load import STATS_FILE_ENV
from soak_report import print_row, write_csv, write_png
from ws_client import StreamlitSession

MIB = 2**20
STEPS = ("fwd_step", "denoise_step")
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
    """Is the server's memory flat? (Pass rule in the module docstring.)

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
# The run
# ---------------------------------------------------------------------------------


class Classroom:
    """The students' shared counters: results (load.Results), who is connected now."""

    def __init__(self) -> None:
        self.res = load.Results()
        self.connected = 0
        self._seen = dict.fromkeys(STEPS, 0)  # slider steps already in an earlier sample, per kind

    def actions(self) -> int:
        return sum(len(v) for v in self.res.latency.values())

    def new_steps(self) -> list[float]:
        """The slider steps' latencies (s) completed since the last call."""
        fresh = [s for a in STEPS for s in self.res.latency.get(a, [])[self._seen[a] :]]
        self._seen = {a: len(self.res.latency.get(a, [])) for a in STEPS}
        return fresh


async def student(i: int, url: str, photos: list, deadline: float, args, room: Classroom) -> None:
    """Visits until ``deadline``: each visit a fresh session (load.ws_student) with the next photo."""
    rnd = random.Random(5000 + i)
    visit = 0
    while time.monotonic() < deadline:
        stay = rnd.uniform(args.stay_min, args.stay_max) * 60
        errors_before = len(room.res.errors)
        room.connected += 1
        try:
            photo = photos[(i + visit * args.sessions) % len(photos)]
            await load.ws_student(i, url, photo, min(deadline, time.monotonic() + stay), args, room.res)
        finally:
            room.connected -= 1
        visit += 1
        pause = 5.0 if len(room.res.errors) > errors_before else rnd.uniform(args.think_min, args.think_max)
        await asyncio.sleep(min(pause, max(0.0, deadline - time.monotonic())))


def read_stats(path: Path) -> dict:
    """The server's latest stats file (rewritten every second), ``{}`` if none yet."""
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


class RssTrace(threading.Thread):
    """Reads the RSS of a process tree every ``every_s`` seconds; :meth:`take` hands over the readings since the last call.

    A sample's RSS is the mean of its interval's readings, not one reading: allocations come and go within a
    rerun (a denoise pass, a picture's bytes), so single readings are noisy; a leak moves the mean.
    """

    def __init__(self, pid: int, every_s: float = 1.0) -> None:
        super().__init__(daemon=True)
        self.pid, self.every_s = pid, every_s
        self._readings: list[int] = []
        self._lock = threading.Lock()
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.wait(self.every_s):
            rss = tree_rss(self.pid)
            with self._lock:
                self._readings.append(rss)

    def take(self) -> list[int]:
        with self._lock:
            out, self._readings = self._readings, []
        return out or [tree_rss(self.pid)]

    def stop(self) -> None:
        self._stop_event.set()
        self.join(timeout=5)


def take_sample(t_s: float, phase: str, rss: list[int], room: Classroom, stats_file: Path) -> Sample:
    st = read_stats(stats_file).get("streamlit") or {}
    mib = lambda key: round(st[key] / MIB, 3) if key in st else None  # noqa: E731
    return Sample(
        t_s=round(t_s, 1),
        phase=phase,
        rss_mib=round(sum(rss) / len(rss) / MIB, 1),
        rss_max_mib=round(max(rss) / MIB, 1),
        sessions=room.connected,
        actions=room.actions(),
        errors=len(room.res.errors),
        step_p95_s=percentile(room.new_steps(), 0.95),
        media_files=st.get("media_files"),
        media_mib=mib("media_bytes"),
        server_sessions=st.get("sessions_active"),
        held_sessions=st.get("sessions_held"),
        media_ref_sessions=st.get("media_ref_sessions"),
        upload_files=st.get("upload_files"),
        cache_data_mib=mib("cache_data_bytes"),
    )


async def soak(url: str, pid: int, args, stats_file: Path) -> tuple[list[Sample], Classroom]:
    room = Classroom()
    photos = load.student_photos(args.sessions * 4)  # a new photo on each of the first 4 visits
    t0 = time.monotonic()
    async with StreamlitSession(url, timeout=300) as s:  # the teacher opens both pages before class
        await s.open()
        await s.rerun(page="denoise")
    print(f"warm-up (first loads of the forward and denoise pages): {time.monotonic() - t0:.1f} s")
    await asyncio.sleep(1.5)  # a fresh stats file

    samples: list[Sample] = []
    rss = RssTrace(pid)
    t0 = time.monotonic()
    deadline = t0 + args.seconds

    def sample(phase: str) -> None:
        samples.append(take_sample(time.monotonic() - t0, phase, rss.take(), room, stats_file))
        print_row(samples[-1], header=len(samples) == 1)

    async def arrive() -> None:
        tasks = []
        for i in range(args.sessions):
            tasks.append(asyncio.create_task(student(i, url, photos, deadline, args, room)))
            await asyncio.sleep(args.ramp / max(args.sessions, 1))
        await asyncio.gather(*tasks)

    sample("load")
    rss.start()
    students = asyncio.create_task(arrive())
    k = 1
    while not students.done():
        await asyncio.wait({students}, timeout=max(0.0, t0 + k * args.sample_every - time.monotonic()))
        if not students.done():
            sample("load")
            k += 1
    await students
    sample("load")  # the end: every student has left
    end = time.monotonic()
    every = min(args.sample_every, 30.0)
    while time.monotonic() - end < args.cooldown - 1e-6:
        await asyncio.sleep(min(every, args.cooldown - (time.monotonic() - end)))
        sample("after")
    rss.stop()
    return samples, room


# ---------------------------------------------------------------------------------
# Output
# ---------------------------------------------------------------------------------


def main() -> None:
    ap = argparse.ArgumentParser(description="Soak: a classroom against one server, its memory sampled over time")
    ap.add_argument("--sessions", type=int, default=30)
    ap.add_argument("--seconds", type=float, default=1800.0, help="how long students keep acting")
    ap.add_argument("--sample-every", type=float, default=60.0, help="seconds between samples")
    ap.add_argument("--warmup", type=float, default=300.0, help="the growth is measured from here (s)")
    ap.add_argument("--ramp", type=float, default=20.0, help="seconds over which students arrive")
    ap.add_argument("--think-min", type=float, default=1.0, help="seconds between a student's actions")
    ap.add_argument("--think-max", type=float, default=4.0)
    ap.add_argument("--stay-min", type=float, default=5.0, help="minutes a visit lasts before a fresh session")
    ap.add_argument("--stay-max", type=float, default=15.0)
    ap.add_argument("--cooldown", type=float, default=150.0, help="seconds sampled after the students leave")
    ap.add_argument("--model", default="auto", help="auto | tiny | photo-random | a model folder")
    ap.add_argument("--env", action="append", default=[], help="extra server env, NAME=VALUE (repeatable)")
    load.add_media_arg(ap)
    args = ap.parse_args()
    args.max_actions = 10**9  # load.ws_student's cap: none, students act until the end
    warmup = min(args.warmup, args.seconds / 3)

    OUT.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    stats_file = OUT / f"soak-{stamp}-server-stats.json"
    env, model_label = server_env(args.model, args.env)
    env[STATS_FILE_ENV] = str(stats_file)
    print(f"soak: {args.sessions} sessions x {args.seconds:.0f} s, a sample every {args.sample_every:g} s, "
          f"model: {model_label}, env {env}")  # fmt: skip
    print(f"load average before: {load_average()}")
    with Server(env, OUT / f"soak-{stamp}-server.log") as server:
        print(f"server up in {server.wait_healthy():.1f} s at {server.url}")
        peaks = RssSampler({"server": server.proc.pid})
        peaks.start()
        samples, room = asyncio.run(soak(server.url, server.proc.pid, args, stats_file))
        peak = peaks.stop()["server"]
    print(f"load average after: {load_average()}")

    during = [s for s in samples if s.phase == "load"]
    v = verdict(
        [s.t_s for s in during],
        [s.rss_mib for s in during],
        [s.media_mib for s in during],
        len(room.res.errors),
        warmup_s=warmup,
    )
    for e in room.res.errors[:20]:
        print(f"  {e}")
    steps = [x for a in STEPS for x in room.res.latency.get(a, [])]
    print(f"\n{room.actions()} actions; slider steps n = {len(steps)}, p95 {percentile(steps, 0.95):.2f} s; "
          f"server peak RSS {peak / MIB:.0f} MiB")  # fmt: skip
    print(describe(v))
    report = {
        "args": vars(args),
        "model": model_label,
        "warmup_s": warmup,
        "verdict": v,
        "server_peak_rss_mib": peak / MIB,
        "errors": room.res.errors,
        "samples": [asdict(s) for s in samples],
        "server_stats_last": read_stats(stats_file),  # batches, queue and Streamlit's stores, per cached function
    }
    base = OUT / f"soak-{stamp}"
    base.with_suffix(".json").write_text(json.dumps(report, indent=2))
    write_csv(base.with_suffix(".csv"), samples)
    title = f"Soak: {args.sessions} sessions, {args.seconds / 60:g} min"
    png = write_png(base.with_suffix(".png"), samples, warmup, during[-1].t_s, title[:90])
    print(f"wrote {base}.json, .csv" + (", .png" if png else " (no PNG: matplotlib is not installed)"))


if __name__ == "__main__":
    main()
