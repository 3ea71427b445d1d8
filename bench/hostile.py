"""Hostile students against a running server (issue 32): one sends ``BackMsg(clear_cache=True)`` twice a second,
three send 24 MB of typed points into the Particle lab's text box, again and again, while other students move a
slider.

Before the fix the clear_cache student alone took the others' Denoise step from p50 0.07 / p95 0.10 s to 3.14 /
4.74 s (every shared cache emptied twice a second) and the server from 1.16 to 1.87 GiB; three 24 MB senders took it
to 3.4 GiB. Now the server refuses clear_cache (app/server/guard.py) and closes a connection whose message is over
``server.maxWidgetStateSize`` (1 MB, .streamlit/config.toml) before reading it.

First, off the clock, one session opens every page once at its defaults (the warm-up) and the largest message the
server sent is printed: what ``server.maxMessageSize`` must leave room for. Then ``--calm`` seconds of slider students
alone, then ``--seconds`` with the hostile ones. Prints the others' step p50 / p95 / max in both periods, what became
of the hostile messages, and the server's peak RSS (its process tree, every 0.25 s). Goals: p95 <= 1 s, RSS < 2 GiB.

    .venv/bin/python bench/hostile.py [--students 5] [--calm 20] [--seconds 60] [--senders 3] [--pause 0] [--model auto]

A sender whose connection was closed opens a new session at once (``--pause 0``): each time a page load of the
Particle lab (two script runs), so with no pause that part measures a reconnect flood, not the 24 MB messages.

About two minutes; ``--model tiny --calm 5 --seconds 15`` for a smoke run.
"""

from __future__ import annotations

import argparse
import asyncio
import time

from streamlit.proto.BackMsg_pb2 import BackMsg
from streamlit.proto.WidgetStates_pb2 import WidgetState

from harness.measure import CpuSplit, RssSampler, describe_cpu
from harness.server import Server, server_env
from harness.stats import percentile
from harness.students import STEP_ACTIONS, Results, add_slider_args, slider_student
from harness.ws_client import StreamlitSession

GOAL_RSS = 2 * 2**30
GOAL_P95_S = 1.0
PAGES = ["", "forward", "denoise", "trajectory", "inside", "objective", "particles", "race", "about", "glossary"]
TEXT_MB = 24


async def warm_up(url: str) -> int:
    """Every page once, in one session; the largest message the server sent (bytes)."""
    largest = 0
    for page in PAGES:
        async with StreamlitSession(url, timeout=600) as s:
            await s.open(page)
            largest = max(largest, s.largest)
    return largest


async def clearer(url: str, until: float, tally: dict) -> None:
    """One student's script: clear_cache twice a second, on one session."""
    async with StreamlitSession(url, timeout=60) as s:
        await s.open("glossary")
        while time.monotonic() < until:
            await s.send_raw(BackMsg(clear_cache=True))
            tally["clear_cache sent"] = tally.get("clear_cache sent", 0) + 1
            await asyncio.sleep(0.5)


async def sender(url: str, until: float, tally: dict, text: str, pause: float) -> None:
    """One student's script: 24 MB of points typed into the Particle lab's text box, sent, again on a new session
    ``pause`` seconds after the server closed the connection (each new session opens the page: a page load)."""
    while time.monotonic() < until:
        await asyncio.sleep(pause)
        try:
            async with StreamlitSession(url, timeout=120) as s:
                await s.open("particles")
                data_set = s.widgets["pl_data"]
                s.states[data_set.id] = WidgetState(id=data_set.id, string_value="your points")  # the text box shows
                await s.rerun()
                s.set_text("pl_text", text)
                await s.rerun()
                outcome = "served"
        except Exception as exc:  # noqa: BLE001 - the closed connection is the expected outcome
            outcome = (
                "connection closed"
                if "1009" in str(exc) or "closed" in str(exc)
                else f"{type(exc).__name__}: {exc}"[:80]
            )
        tally[outcome] = tally.get(outcome, 0) + 1


def line(name: str, values: list[float]) -> str:
    if not values:
        return f"{name:<34} (none)"
    return (
        f"{name:<34} n={len(values):<4} p50 {percentile(values, 0.5):6.2f} s  p95 {percentile(values, 0.95):6.2f} s"
        f"  max {max(values):6.2f} s"
    )


async def classroom(url: str, args, res: Results, tally: dict, marks: dict) -> None:
    res.t0 = time.monotonic()
    attack_at = res.t0 + args.calm
    end = attack_at + args.seconds
    others = [asyncio.create_task(slider_student(i, url, end, args, res)) for i in range(args.students)]
    await asyncio.sleep(args.calm)
    marks["attack"] = time.monotonic() - res.t0
    text = "0.1 0.2\n" * (TEXT_MB * 10**6 // 8)
    hostile = [clearer(url, end, tally)] + [sender(url, end, tally, text, args.pause) for _ in range(args.senders)]
    await asyncio.gather(*hostile, *others)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--calm", type=float, default=20.0, help="seconds of slider students alone, first")
    ap.add_argument("--seconds", type=float, default=60.0, help="seconds with the hostile students")
    ap.add_argument("--senders", type=int, default=3, help="students sending 24 MB of text")
    ap.add_argument("--pause", type=float, default=0.0, help="seconds a sender waits before it reconnects")
    ap.add_argument("--model", default="auto", help="auto | tiny | photo-random | a model folder")
    ap.add_argument("--env", action="append", default=[], help="extra server env, NAME=VALUE (repeatable)")
    add_slider_args(ap)
    ap.set_defaults(students=5)
    args = ap.parse_args()

    env, label = server_env(args.model, args.env)
    res, tally, marks = Results(), {}, {}
    with Server(env) as server:
        server.wait_healthy()
        print(f"server {server.url}, {label}")
        largest = asyncio.run(warm_up(server.url))
        print(f"largest message the server sent on a walk of every page at its defaults: {largest / 1e3:.0f} kB")
        sampler, cpu = RssSampler({"server": server.proc.pid}, 0.25), CpuSplit(server.proc.pid)
        sampler.start()
        cpu.start()
        asyncio.run(classroom(server.url, args, res, tally, marks))
        peak = sampler.stop()["server"]
        cpu_report = cpu.stop()
    attack = marks.get("attack", float("inf"))
    steps = [(lat, end) for a in STEP_ACTIONS[:1] for lat, end in zip(res.latency[a], res.ended_at[a], strict=True)]
    before = [lat for lat, end in steps if end < attack]
    during = [lat for lat, end in steps if end - lat >= attack]
    print(f"{args.students} students move Denoise's t; the hostile ones start at {attack:.0f} s")
    print(line("others' step, before", before))
    print(line("others' step, under attack", during))
    print("hostile messages: " + ", ".join(f"{k}: {v}" for k, v in sorted(tally.items())))
    p95 = percentile(during, 0.95)
    print(
        f"others' p95 under attack {p95:.2f} s (goal <= {GOAL_P95_S:g} s): {'met' if p95 <= GOAL_P95_S else 'NOT met'}"
    )
    print(
        f"server peak RSS {peak / 2**30:.2f} GiB (goal < {GOAL_RSS / 2**30:g} GiB): {'met' if peak < GOAL_RSS else 'NOT met'}"
    )
    print(describe_cpu(cpu_report))
    if res.errors:
        print(f"{len(res.errors)} errors:", *res.errors[:10], sep="\n  ")


if __name__ == "__main__":
    main()
