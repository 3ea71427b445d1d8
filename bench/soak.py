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

Pass rule ("flat"), computed by :func:`harness.soak_report.verdict` over the samples taken while students act:

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
from dataclasses import asdict
from pathlib import Path

from harness.measure import RssSampler, tree_rss
from harness.server import OUT, STATS_FILE_ENV, Server, load_average, server_env
from harness.soak_report import MIB, Sample, describe, print_row, verdict, write_csv, write_png
from harness.stats import percentile
from harness.students import Results, add_media_arg, student_photos, ws_student
from harness.ws_client import StreamlitSession

STEPS = ("fwd_step", "denoise_step")


# ---------------------------------------------------------------------------------
# The run
# ---------------------------------------------------------------------------------


class Classroom:
    """The students' shared counters: results (harness.students.Results), who is connected now."""

    def __init__(self) -> None:
        self.res = Results()
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
    """Visits until ``deadline``: each visit a fresh session (harness.students.ws_student) with the next photo."""
    rnd = random.Random(5000 + i)
    visit = 0
    while time.monotonic() < deadline:
        stay = rnd.uniform(args.stay_min, args.stay_max) * 60
        errors_before = len(room.res.errors)
        room.connected += 1
        try:
            photo = photos[(i + visit * args.sessions) % len(photos)]
            await ws_student(i, url, photo, min(deadline, time.monotonic() + stay), args, room.res)
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
    photos = student_photos(args.sessions * 4)  # a new photo on each of the first 4 visits
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
    add_media_arg(ap)
    args = ap.parse_args()
    args.max_actions = 10**9  # ws_student's cap: none, students act until the end
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
