"""Which inference concurrency gives the better p95 on this machine?

Many client threads (one per simulated student) each ask for single forward passes of
the shipped UNet architecture ("photo", random weights) with a little think time in
between; every pass goes through ``model.serving.runtime.InferenceQueue.slot``. For each setting of
(slots, torch threads) it prints the p50/p95 latency of a request, queue wait included,
and the throughput. "unlimited" bypasses the queue (what happens without it).
``--batch-ms 5`` adds the same slot settings with the dynamic batcher (model/serving/batching.py)
in front of the queue, and prints the batch sizes it formed.

    .venv/bin/python bench/concurrency.py [--clients 12] [--seconds 15] [--res 64] [--batch-ms 5]
"""

from __future__ import annotations

import argparse
import contextlib
import random
import statistics
import threading
import time
from pathlib import Path

import torch

from harness.stats import percentile
from model.serving import process
from model.serving.batching import DynamicBatcher
from model.serving.runtime import InferenceQueue
from model.training.train_lib import build_unet

ROOT = Path(__file__).resolve().parent.parent


def run(unet, slots: int | None, threads: int, clients: int, seconds: float, res: int, batch_ms: float = 0.0) -> dict:
    queue = InferenceQueue(slots or 1)
    batcher = DynamicBatcher(queue, batch_ms) if batch_ms > 0 else None  # one slot of this queue per batch
    process.configure_threads(threads)
    latencies: list[float] = []
    lock = threading.Lock()
    stop = time.perf_counter() + seconds

    def network(x, t, y):  # what LoadedModel._network is to the app: (x, t, y) -> output tensor
        return unet(x, t).sample

    def client(i: int) -> None:
        rnd = random.Random(i)
        x = torch.randn(1, 3, res, res, generator=torch.Generator().manual_seed(i))
        t = torch.tensor([rnd.randrange(1000)])
        while time.perf_counter() < stop:
            time.sleep(rnd.uniform(0.0, 0.3))  # think time: a slider being dragged
            start = time.perf_counter()
            if batcher is not None:  # the batcher takes one slot per batch itself
                with torch.inference_mode():
                    batcher.run(network, x, t)
            else:
                guard = queue.slot() if slots else contextlib.nullcontext()
                with guard, torch.inference_mode():
                    unet(x, t)
            with lock:
                latencies.append(time.perf_counter() - start)

    pool = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for th in pool:
        th.start()
    for th in pool:
        th.join()
    return {
        "n": len(latencies),
        "p50": statistics.median(latencies),
        "p95": percentile(latencies, 0.95),
        "per_s": len(latencies) / seconds,
        "batcher": batcher.stats() if batcher is not None else None,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clients", type=int, default=12)
    ap.add_argument("--seconds", type=float, default=15.0)
    ap.add_argument("--res", type=int, default=64)
    ap.add_argument("--reverse", action="store_true", help="run the settings in reverse order (load drift check)")
    ap.add_argument("--batch-ms", type=float, default=0.0, help="also run with the dynamic batcher (0: don't)")
    args = ap.parse_args()
    cores = process.available_cores()
    unet = build_unet("photo", args.res).eval().requires_grad_(False)
    with torch.inference_mode():  # warm up
        unet(torch.zeros(1, 3, args.res, args.res), torch.tensor([0]))
    print(f"{args.clients} clients, {args.seconds:.0f} s each, photo UNet at {args.res} px, {cores} cores")
    print(f"{'slots':>9} {'threads':>7} {'requests':>8} {'p50 ms':>8} {'p95 ms':>8} {'req/s':>6}")
    settings = [(1, cores), (2, cores), (2, max(1, cores // 2)), (1, max(1, cores // 2)), (None, 1), (None, cores)]
    if args.reverse:
        settings.reverse()
    runs = [(slots, threads, None) for slots, threads in settings]
    if args.batch_ms > 0:
        runs += [(slots, threads, "batched") for slots, threads in settings if slots]
    for slots, threads, batched in runs:
        r = run(unet, slots, threads, args.clients, args.seconds, args.res, args.batch_ms if batched else 0.0)
        label = ("unlimited" if slots is None else str(slots)) + (" +batch" if batched else "")
        line = f"{label:>9} {threads:>7} {r['n']:>8} {r['p50'] * 1e3:>8.0f} {r['p95'] * 1e3:>8.0f} {r['per_s']:>6.1f}"
        if r["batcher"] is not None:
            s = r["batcher"]
            sizes = " ".join(f"{k}x{v}" for k, v in s["requests_per_batch"].items())
            line += f"   {s['mean_requests_per_batch']:.2f} requests per batch ({sizes})"
        print(line)


if __name__ == "__main__":
    main()
