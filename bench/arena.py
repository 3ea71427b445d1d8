"""Benchmark: a forward pass in a session's thread against the same pass in the main thread, with glibc's allocator
as the app tunes it (model.serving.process.configure_allocator: one arena for every thread) and with one arena per
thread (glibc's default count, the thresholds tuned as before).

Every session's script runs in a Streamlit thread of its own, so its passes ran on an arena glibc gave that thread,
where the heap thresholds the app sets do not hold. Each configuration runs in a fresh process (the arena count must
be set before any thread starts), alternating, ``--rounds`` times; each process times ``--passes`` warm passes of
the bundled model in fp32 (the arithmetic of a CPU without bf16 units) at ``--batch`` x 64 px, first in the main
thread and then in a new thread. Prints the median seconds per pass and the thread / main ratio per configuration.

    .venv/bin/python bench/arena.py [--batch 50] [--passes 4] [--rounds 5]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CHILD = """
import ctypes, json, sys, threading, time, torch
from model.serving import process
from model.nets.network import load_model
process.configure_allocator()
if sys.argv[1] == "per-thread":
    ctypes.CDLL("libc.so.6").mallopt(-8, 8 * process.available_cores())  # M_ARENA_MAX: glibc's default count
process.configure_threads(1)
m = load_model(None)
x = torch.randn(int(sys.argv[2]), 3, 64, 64, generator=torch.Generator().manual_seed(0))
n = int(sys.argv[3])
out = {}


def run(where):
    with torch.inference_mode():
        m.eps(x, 999)  # warm-up
        times = []
        for _ in range(n):
            t0 = time.perf_counter()
            m.eps(x, 999)
            times.append(time.perf_counter() - t0)
    out[where] = times


run("main")
th = threading.Thread(target=run, args=("thread",))
th.start()
th.join()
print(json.dumps(out))
"""


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--batch", type=int, default=50, help="images per pass (50: a chunk of the bound's terms)")
    ap.add_argument("--passes", type=int, default=4, help="timed passes per thread per process")
    ap.add_argument("--rounds", type=int, default=5, help="processes per configuration, alternating")
    a = ap.parse_args()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "DIFFUSION_LENS_PRECISION": "fp32"}
    configs = ("one arena (the app)", "per-thread")
    times: dict[str, dict[str, list[float]]] = {c: {"main": [], "thread": []} for c in configs}
    for r in range(a.rounds):
        for c in configs:
            arg = "per-thread" if c == "per-thread" else "one"
            out = subprocess.run(
                [sys.executable, "-c", CHILD, arg, str(a.batch), str(a.passes)],
                env=env, cwd=ROOT, capture_output=True, text=True, timeout=600, check=True,
            )  # fmt: skip
            got = json.loads(out.stdout.strip().splitlines()[-1])
            for where in ("main", "thread"):
                times[c][where] += got[where]
        print(f"round {r + 1}/{a.rounds} done, load average {os.getloadavg()[0]:.2f}", flush=True)
    print(f"\nbatch {a.batch} at 64 px, fp32, 1 torch thread; {a.rounds} processes x {a.passes} passes per cell")
    print(f"{'allocator':<22}{'main thread s':>15}{'new thread s':>15}{'thread / main':>15}")
    for c in configs:
        main_s, thread_s = statistics.median(times[c]["main"]), statistics.median(times[c]["thread"])
        print(f"{c:<22}{main_s:>15.3f}{thread_s:>15.3f}{thread_s / main_s:>15.2f}")
    one, per = (statistics.median(times[c]["thread"]) for c in configs)
    print(f"\na pass in a session's thread: {per / one:.2f}x as long with an arena per thread as with one")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
