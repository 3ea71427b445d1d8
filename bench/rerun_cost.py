"""What one slider step costs the server: CPU milliseconds per rerun, one student alone.

bench/load.py measures a classroom's latencies, which depend on everything else the machine
runs. This measures the server's own work per interaction, which a busy machine changes far
less: one websocket student (bench/harness/ws_client.py) on a fresh server moves the t slider of
each page ``--steps`` times, one step after the other, and the server process's CPU time
(user + system) is read before and after. A 60-student classroom on 2 cores has about
2000 ms of CPU per second for all of its students' steps together::

    .venv/bin/python bench/rerun_cost.py [--steps 60] [--model auto]

Prints, per page: server CPU ms per step, and the step's p50 / p95 wall time.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time

from harness.measure import cpu_seconds
from harness.server import OUT, Server, load_average, server_env
from harness.stats import percentile
from harness.ws_client import StreamlitSession

PAGES = {
    "forward": ("forward", "fwd_t", "x_t at t = {t}"),
    "denoise": ("denoise", "den_t", "x_t: the input at t = {t}"),
}
WARM_STEPS = 5  # per page, before the clock: the first visits load the model and fill caches


async def step(s: StreamlitSession, page: str, i: int) -> float:
    """Move ``page``'s t slider to a new value (as a drag does); the rerun's wall time."""
    _, key, caption = PAGES[page]
    t = 100 + (i * 7) % 800
    s.set_slider(key, t)
    r = await s.rerun()
    if caption.format(t=t) not in r.images:
        raise RuntimeError(f"{page}: no picture for t = {t} (alerts: {r.alerts})")
    return r.seconds


async def steps(url: str, pid: int, n: int) -> dict[str, dict]:
    out = {}
    async with StreamlitSession(url, timeout=300) as s:
        await s.open()
        for page, (path, _, _) in PAGES.items():  # first visits: the model, its estimates, the caches
            await s.rerun(page=path)
            for i in range(WARM_STEPS):
                await step(s, page, i)
        for page, (path, _, _) in PAGES.items():
            await s.rerun(page=path)
            cpu0 = cpu_seconds(pid)
            walls = [await step(s, page, WARM_STEPS + i) for i in range(n)]
            cpu = cpu_seconds(pid) - cpu0
            out[page] = {"steps": n, "cpu_ms_per_step": 1000 * cpu / n, "p50_s": statistics.median(walls)}
            out[page]["p95_s"] = percentile(walls, 0.95)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--model", default="auto", help="auto | tiny | photo-random | a model folder")
    ap.add_argument("--env", action="append", default=[], help="extra server env, NAME=VALUE (repeatable)")
    args = ap.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    env, label = server_env(args.model, args.env)
    print(f"rerun cost: one student, {args.steps} slider steps per page, model: {label}, env {env}")
    print(f"load average before: {load_average()}")
    with Server(env, OUT / f"rerun-cost-{time.strftime('%Y%m%d-%H%M%S')}-server.log") as server:
        server.wait_healthy()
        rows = asyncio.run(steps(server.url, server.proc.pid, args.steps))
    print(f"load average after: {load_average()}")
    print(f"\n{'page':<10}{'steps':>6}{'server CPU ms/step':>20}{'p50 s':>8}{'p95 s':>8}")
    for page, r in rows.items():
        print(f"{page:<10}{r['steps']:>6}{r['cpu_ms_per_step']:>20.1f}{r['p50_s']:>8.3f}{r['p95_s']:>8.3f}")


if __name__ == "__main__":
    main()
