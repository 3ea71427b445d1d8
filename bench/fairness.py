"""Fairness under long runs (issue 28, item 3): students start long reverse runs while others move a slider, then
close their tabs.

``--runners`` students (default 10) each open "Reverse trajectory" at ``--res`` px (default 256), set
t_start = 999 and Steps = 1000, press **Run**, keep the tab open ``--run-seconds`` (default 60) and close it.
Meanwhile ``--students`` others (default 6) move Denoise's t slider (bench/harness/students.py). Before app/server/lanes.py,
ten such runs pushed the others' step p95 from 0.18 s to 3.7 s, and the runs went on 20-25 s after the tabs
closed.

Prints the others' Denoise step p50 / p95 / max before the runs and while they go (goal: p95 <= 1 s), and how
long the server still computed long runs after the last tab closed: from the server's stats file (the
``long_runs`` gauge of app/server/lanes.py: runs in progress) where the server has it, and from its CPU either way
(the first second back under what the others' steps alone used before the runs, plus ``--idle-cores``;
rough with a small model, whose runs use little CPU).

    .venv/bin/python bench/fairness.py [--runners 10] [--res 256] [--run-seconds 60] [--students 6] [--model auto]

About three minutes with the defaults; ``--model photo-random --res 64 --runners 3 --run-seconds 8 --students 2`` for
a smoke run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from pathlib import Path

from streamlit.proto.WidgetStates_pb2 import WidgetState

from harness.measure import CpuSplit, RssSampler, cpu_seconds, describe_cpu
from harness.server import Server, server_env
from harness.stats import percentile
from harness.students import Results, add_slider_args, slider_student
from harness.ws_client import StreamlitSession

GOAL_P95_S = 1.0
RESOLUTIONS = (32, 48, 64, 96, 128, 160, 192, 224, 256)  # app.compute.core.RESOLUTIONS


def set_select_slider(s: StreamlitSession, key: str, option) -> None:
    """Choose ``option`` on the select_slider ``key`` (Streamlit 1.67 sends the option's label as a string)."""
    w = s.widgets[key]
    state = WidgetState(id=w.id)
    state.string_array_value.data.append(str(option))
    s.states[w.id] = state
    s._changed.add(w.fragment_id)


def press(s: StreamlitSession, key: str) -> None:
    """Click the button ``key`` on the next rerun (a trigger, as the browser sends it once)."""
    w = s.widgets[key]
    s.states[w.id] = WidgetState(id=w.id, trigger_value=True)
    s._changed.add(w.fragment_id)


async def runner(i: int, url: str, args, res: Results, marks: dict) -> None:
    action = "open"
    try:
        s = StreamlitSession(url, timeout=600, keep_alive=True)
        await s.__aenter__()
        try:
            await s.open("trajectory")
            action = "settings"
            set_select_slider(s, "resolution", args.res)
            await s.rerun()
            s.set_slider("traj_t_start", 999)
            s.set_slider("traj_steps", args.steps)
            seed = s.widgets["traj_seed"]  # a seed each: equal settings would share one cached run
            s.states[seed.id] = WidgetState(id=seed.id, int_value=i + 1)
            await s.rerun()
            action = "run"
            press(s, "traj_go")
            started = time.monotonic()
            marks.setdefault("first_run", started - res.t0)
            task = asyncio.create_task(s.rerun())
            done, _ = await asyncio.wait({task}, timeout=args.run_seconds)
            if done:
                res.ok("long run finished", time.monotonic() - started)
        finally:
            marks["last_close"] = time.monotonic() - res.t0
            await s.__aexit__(None, None, None)  # the student closes the tab
    except Exception as exc:
        res.error(100 + i, action, exc)


def read_stats(stats_file: Path) -> dict:
    try:
        return json.loads(stats_file.read_text())
    except (OSError, ValueError):
        return {}


def long_runs_in_progress(stats_file: Path) -> int | None:
    gauge = read_stats(stats_file).get("long_runs")
    return gauge.get("running") if isinstance(gauge, dict) else None


async def watch_after_close(pid: int, stats_file: Path, args, res: Results, marks: dict) -> None:
    """After the last tab closed: when the long_runs gauge reads 0, and when the server's CPU first idles."""
    closed = marks["last_close"] + res.t0
    marks["at_close"] = read_stats(stats_file)
    last_cpu, last_t = cpu_seconds(pid), time.monotonic()
    while time.monotonic() - closed < args.watch:
        await asyncio.sleep(0.5)
        now = time.monotonic()
        if "gauge_zero" not in marks and long_runs_in_progress(stats_file) == 0:
            marks["gauge_zero"] = now - closed
        cpu, dt = cpu_seconds(pid), now - last_t
        if dt >= 1.0:
            if "cpu_idle" not in marks and (cpu - last_cpu) / dt < marks["calm_cores"] + args.idle_cores:
                marks["cpu_idle"] = last_t - closed  # the window that began then was idle
            last_cpu, last_t = cpu, now
        served = read_stats(stats_file).get("queue", {}).get("served")
        if served is not None:
            marks.setdefault("served_after", []).append((round(now - closed, 1), served))


async def classroom(url: str, pid: int, stats_file: Path, args, res: Results, marks: dict) -> None:
    async with StreamlitSession(url, timeout=600) as s:  # warm-up off the clock: both pages once, at the run's size
        await s.open("denoise")
        await s.rerun(page="trajectory")
        set_select_slider(s, "resolution", args.res)
        await s.rerun()
    res.t0 = time.monotonic()
    deadline = res.t0 + args.calm + args.run_seconds + 5
    others = [asyncio.create_task(slider_student(i, url, deadline, args, res)) for i in range(args.students)]
    calm_cpu = cpu_seconds(pid)
    await asyncio.sleep(args.calm)
    marks["calm_cores"] = (cpu_seconds(pid) - calm_cpu) / args.calm  # the others' steps alone
    await asyncio.gather(*(runner(i, url, args, res, marks) for i in range(args.runners)))
    await watch_after_close(pid, stats_file, args, res, marks)
    marks["at_end"] = read_stats(stats_file)
    await asyncio.gather(*others)


def line(name: str, values: list[float]) -> str:
    if not values:
        return f"{name:<32} (none)"
    return (
        f"{name:<32} n={len(values):<4} p50 {percentile(values, 0.5):6.2f} s  p95 {percentile(values, 0.95):6.2f} s"
        f"  max {max(values):6.2f} s"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runners", type=int, default=10, help="students running a long reverse run each")
    ap.add_argument("--res", type=int, default=256, choices=RESOLUTIONS, help="their working resolution (px)")
    ap.add_argument("--steps", type=int, default=1000, help="reverse steps per run (t_start = 999)")
    ap.add_argument("--run-seconds", type=float, default=60.0, help="how long each runner keeps the tab open")
    ap.add_argument("--calm", type=float, default=10.0, help="seconds of slider steps before the runs")
    ap.add_argument("--watch", type=float, default=60.0, help="seconds to watch the server after the tabs close")
    ap.add_argument(
        "--idle-cores",
        type=float,
        default=0.25,
        help="server CPU under the calm period's (the others' steps alone) plus this many cores counts as idle",
    )
    ap.add_argument("--model", default="auto", help="auto | tiny | photo-random | a model folder")
    ap.add_argument("--env", action="append", default=[], help="extra server env, NAME=VALUE (repeatable)")
    add_slider_args(ap)
    args = ap.parse_args()

    env, label = server_env(args.model, args.env)
    stats_file = Path(tempfile.mkdtemp(prefix="fairness-")) / "stats.json"
    env["DIFFUSION_LENS_STATS_FILE"] = str(stats_file)
    res, marks = Results(), {}
    log = stats_file.parent / "server.log"
    print(f"server log: {log}")
    with Server(env, log_path=log) as server:
        server.wait_healthy()
        print(f"server {server.url}, {label}; {args.runners} runs of {args.steps} steps at {args.res} px")
        sampler, cpu = RssSampler({"server": server.proc.pid}, 0.5), CpuSplit(server.proc.pid)
        sampler.start()
        cpu.start()
        asyncio.run(classroom(server.url, server.proc.pid, stats_file, args, res, marks))
        peak = sampler.stop()["server"]
        cpu_report = cpu.stop()
    first, closed = marks.get("first_run", float("nan")), marks.get("last_close", float("nan"))
    steps = list(zip(res.latency["denoise_step"], res.ended_at["denoise_step"], strict=True))
    before = [lat for lat, end in steps if end < first]
    during = [lat for lat, end in steps if first <= end - lat and end <= closed]
    print()
    print(f"runs pressed at {first:.0f} s, the last tab closed at {closed:.0f} s")
    print(line("others' step, before the runs", before))
    print(line("others' step, while runs go", during))
    print(line("long runs finished with tab open", res.latency["long run finished"]))
    p95 = percentile(during, 0.95)
    print(
        f"others' step p95 while runs go {p95:.2f} s (goal <= {GOAL_P95_S:g} s): {'met' if p95 <= GOAL_P95_S else 'NOT met'}"
    )
    at_close = marks.get("at_close", {})
    print(f"at the last close: long runs {at_close.get('long_runs', 'n/a')}, queue {at_close.get('queue', 'n/a')}")
    print(f"at the end: long runs {marks.get('at_end', {}).get('long_runs', 'n/a')}")
    gauge = marks.get("gauge_zero")
    print(
        "long runs in progress after the last tab closed (app/server/lanes.py gauge): "
        + (f"none after {gauge:.1f} s" if gauge is not None else "no gauge (a server without app/server/lanes.py?)")
    )
    trail = marks.get("served_after", [])
    if trail:
        steps = ", ".join(f"{t:g} s: {n - trail[0][1]}" for t, n in trail[:: max(1, len(trail) // 12)])
        print(f"network passes served since the last close (others' steps included): {steps}")
    idle = marks.get("cpu_idle")
    print(
        f"server CPU first back under the calm {marks.get('calm_cores', float('nan')):.2f} + {args.idle_cores:g} cores: "
        + (f"{idle:.1f} s after the last tab closed" if idle is not None else f"not within {args.watch:.0f} s")
    )
    print(describe_cpu(cpu_report))
    print(f"server peak RSS {peak / 2**30:.2f} GiB")
    if res.errors:
        print(f"{len(res.errors)} errors:", *res.errors[:10], sep="\n  ")


if __name__ == "__main__":
    main()
