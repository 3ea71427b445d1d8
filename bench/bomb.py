"""Decoding bombs against a running server (issue 28, item 2): N students upload the worst small files at once
while other students move a slider.

Each uploader opens the app, switches the sidebar to Upload and uploads, one after the other, ``--rounds``
variants of each file of bench/bombs.py, its own (different bytes for every uploader and round, so neither
the decode-once cache nor a shared decode helps): a 38-byte lossless 5999×5999
WebP, a 16-bit grey 5999×5999 PNG, an RGBA 5999×5999 TIFF and a progressive 64-MP JPEG. Before the fix each
decode cost 370-620 MiB and eight uploaders took the server to 7.6 GiB.

Prints the server's peak RSS (its process tree, psutil, every 0.25 s), the other students' Denoise step
latency (p50 / p95 / max), the uploads' outcome (refused with a sentence, or decoded) and latency, and the
health endpoint's latency (/_stcore/health, polled every 0.5 s). Goals: RSS < 2 GiB, others' p95 <= 1 s.

    .venv/bin/python bench/bomb.py [--uploaders 8] [--rounds 1] [--students 6] [--seconds 60] [--model auto]

About two minutes (building the files takes ~30 s of it); ``--model tiny --uploaders 2`` for a smoke run.
"""

from __future__ import annotations

import argparse
import asyncio
import threading
import time
import urllib.request
from collections import Counter

from harness import bombs
from harness.measure import CpuSplit, RssSampler, describe_cpu
from harness.server import Server, server_env
from harness.stats import percentile
from harness.students import WS_TIMEOUT_S, Results, add_slider_args, slider_student
from harness.ws_client import StreamlitSession

GOAL_RSS = 2 * 2**30
GOAL_P95_S = 1.0


def bomb_files(uploaders: int, rounds: int) -> list[list[tuple[str, str, bytes]]]:
    """Per uploader, (file name, mime, bytes) for every kind and round: different bytes everywhere."""
    out = []
    for i in range(uploaders):
        mine = []
        for r in range(rounds):
            v = i * rounds + r
            for kind, make in bombs.ALL.items():
                mine.append((f"{kind}-{v}.{bombs.SUFFIX[kind]}", bombs.MIME[kind], make(variant=v)))
        out.append(mine[i % 4 :] + mine[: i % 4])  # uploaders start on different kinds
    return out


async def uploader(i: int, url: str, files, res: Results, outcomes: Counter) -> None:
    action = "open"
    try:
        async with StreamlitSession(url, timeout=WS_TIMEOUT_S, keep_alive=True) as s:
            await s.open()
            s.set_radio("image_source", "Upload")
            await s.rerun()
            action = "bomb_upload"
            for name, mime, data in files[i]:
                start = time.perf_counter()
                await s.upload("uploader", name, data, mime)
                r = await s.rerun()
                res.ok("bomb_upload", time.perf_counter() - start)
                refused = [a for a in r.alerts if "megapixels" in a or "memory" in a]
                shown = any(c.startswith(f"x₀: {name}") for c in r.images)
                outcomes["refused" if refused else "decoded" if shown else "other"] += 1
                if refused:
                    outcomes[refused[0][:90] + "…"] += 0  # keep one of each message
    except Exception as exc:
        res.error(i, action, exc)


class HealthPoller(threading.Thread):
    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.url, self.latency, self._halt = f"{url}/_stcore/health", [], threading.Event()

    def run(self) -> None:
        while not self._halt.is_set():
            start = time.perf_counter()
            try:
                with urllib.request.urlopen(self.url, timeout=30) as r:
                    r.read()
                self.latency.append(time.perf_counter() - start)
            except OSError:
                self.latency.append(float("inf"))
            self._halt.wait(0.5)

    def stop(self) -> list[float]:
        self._halt.set()
        self.join(35)
        return self.latency


async def classroom(url: str, args, files, res: Results, outcomes: Counter) -> None:
    async with StreamlitSession(url, timeout=300) as s:  # the teacher opens the pages once: warm-up off the clock
        await s.open("denoise")
    res.t0 = time.monotonic()
    deadline = time.monotonic() + args.seconds
    others = [asyncio.create_task(slider_student(i, url, deadline, args, res)) for i in range(args.students)]
    await asyncio.sleep(args.calm)  # the others' steps before the bombs, for comparison
    res.ok("bombs start", time.monotonic() - res.t0)
    await asyncio.gather(*(uploader(i, url, files, res, outcomes) for i in range(args.uploaders)))
    res.ok("bombs end", time.monotonic() - res.t0)
    await asyncio.gather(*others)


def line(name: str, values: list[float]) -> str:
    if not values:
        return f"{name:<28} (none)"
    return (
        f"{name:<28} n={len(values):<4} p50 {percentile(values, 0.5):6.2f} s  p95 {percentile(values, 0.95):6.2f} s"
        f"  max {max(values):6.2f} s"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--uploaders", type=int, default=8)
    ap.add_argument("--rounds", type=int, default=1, help="variants of each bomb per uploader")
    ap.add_argument("--seconds", type=float, default=60.0, help="how long the other students move their slider")
    ap.add_argument("--calm", type=float, default=10.0, help="seconds of slider steps before the bombs")
    ap.add_argument("--model", default="auto", help="auto | tiny | photo-random | a model folder")
    ap.add_argument("--env", action="append", default=[], help="extra server env, NAME=VALUE (repeatable)")
    add_slider_args(ap)
    args = ap.parse_args()

    t0 = time.monotonic()
    files = bomb_files(args.uploaders, args.rounds)
    print(
        f"{sum(map(len, files))} files built in {time.monotonic() - t0:.0f} s: "
        + ", ".join(f"{n} {len(d)} B" for n, _, d in files[0][:4])
    )
    env, label = server_env(args.model, args.env)
    with Server(env) as server:
        server.wait_healthy()
        print(f"server {server.url}, {label}")
        with urllib.request.urlopen(server.url + "/", timeout=60) as r:
            r.read()
        sampler, health, cpu = (
            RssSampler({"server": server.proc.pid}, 0.25),
            HealthPoller(server.url),
            CpuSplit(server.proc.pid),
        )
        res, outcomes = Results(), Counter()
        sampler.start()
        health.start()
        cpu.start()
        asyncio.run(classroom(server.url, args, files, res, outcomes))
        peak = sampler.stop()["server"]
        health_lat = health.stop()
        cpu_report = cpu.stop()
    start_s, end_s = res.latency["bombs start"][0], res.latency["bombs end"][0]
    print(f"\nthe bombs went up from {start_s:.0f} s to {end_s:.0f} s of {args.seconds:.0f} s")
    steps = list(zip(res.latency["denoise_step"], res.ended_at["denoise_step"], strict=True))
    before = [lat for lat, end in steps if end < start_s]
    during = [lat for lat, end in steps if end - lat >= start_s]  # began once the bombs started (and after)
    print()
    print(
        f"{args.uploaders} uploaders × {len(files[0])} files ({args.rounds} of each kind), {args.students} other students"
    )
    print(line("others' step, before bombs", before))
    print(line("others' step, from the bombs", during))
    print(line("others' step x_t, all", res.latency["denoise_step x_t"]))
    print(line("bomb upload -> page", res.latency["bomb_upload"]))
    print(
        line("/_stcore/health", [x for x in health_lat if x != float("inf")])
        + f"  failures {sum(x == float('inf') for x in health_lat)}"
    )
    print("upload outcomes: " + ", ".join(f"{k}: {v}" for k, v in outcomes.items() if v))
    for msg in (k for k, v in outcomes.items() if v == 0):
        print(f"  message: {msg}")
    print(describe_cpu(cpu_report))
    print(
        f"server peak RSS {peak / 2**30:.2f} GiB (goal < {GOAL_RSS / 2**30:.0f} GiB): {'met' if peak < GOAL_RSS else 'NOT met'}"
    )
    p95 = percentile(during, 0.95)
    print(
        f"others' step p95 from the bombs on {p95:.2f} s (goal <= {GOAL_P95_S:g} s): {'met' if p95 <= GOAL_P95_S else 'NOT met'}"
    )
    if res.errors:
        print(f"{len(res.errors)} errors:", *res.errors[:10], sep="\n  ")


if __name__ == "__main__":
    main()
