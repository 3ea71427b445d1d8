"""Failover: the classroom load through the local cluster's sticky proxy, one replica killed mid-run.

Starts the same cluster as ``make cluster`` (``scripts/cluster.sh``: REPLICAS app replicas
on 127.0.0.1 behind Debian's haproxy, cookie affinity, one shared cookie secret) in its own
folder and on free ports, warms every replica, then runs the classroom of ``bench/load.py``
(its websocket student, :func:`harness.students.ws_student`) through the proxy.
At ``--kill-at`` seconds it kills one replica (SIGKILL: a crash, not a polite stop).

Each session is tied to its replica by the proxy's ``DLREPLICA`` cookie, which this client
keeps and sends like a browser (the upload PUT and every /media fetch carry it). A session
whose replica died gets a lost connection; like a browser, it reconnects through the proxy
with its old cookie, which names a replica that is down, so haproxy balances it to a live
one and sets a new cookie. The server-side state (the uploaded photo) died with the
replica, so the student uploads again and goes on.

Prints:

* errors on sessions whose replica survived (target 0), each with its message;
* what the killed replica's sessions saw (their error messages), and how soon they were
  working again on another replica: kill -> first page shown, kill -> own photo shown again,
  and the same from the moment each session noticed the loss;
* p50/p95 per action, before and after the kill;
* peak RSS per replica, and when haproxy marked the killed replica DOWN;
* an affinity audit from haproxy's log: requests carrying a replica's cookie that another
  replica served while theirs was up (target 0).

With ``--scaling 1,2,3`` it instead runs the same class, with no kill, once per replica
count and prints the throughput (actions per second) and latencies of each: with the
default 1-4 s of think time that is the students' demand, with ``--think-max 0`` the
cluster's capacity.

    .venv/bin/python bench/failover.py [--sessions 60] [--seconds 120] [--replicas 3] [--kill-at 60]
    .venv/bin/python bench/failover.py --scaling 1,2,3 [--sessions 30] [--think-min 0 --think-max 0]

Writes the same figures as JSON under bench/out/. Everything it starts it stops; traffic
goes to 127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import time
from math import nan

from harness.cluster import Cluster, Kill, ProxiedSession, Student, bind_student
from harness.failover_report import report
from harness.measure import RssSampler
from harness.server import OUT, ROOT, load_average, server_env
from harness.students import add_media_arg, student_photos, ws_student
from harness.ws_client import StreamlitSession

FIRST_DENOISE = ("to_denoise (1st) x_t", "to_denoise (1st)")  # a student's first Denoise visit: x_t shown, whole run


# --------------------------------------------------------------------------- one student
async def run_student(st: Student, url: str, photo, deadline: float, args, kill: Kill) -> None:
    """bench/load.py's student; if its replica is killed, it reconnects (at most twice) and goes on."""
    bind_student(st)
    remaining = args.max_actions
    while remaining > 0 and time.monotonic() < deadline:
        n_errors = len(st.errors)
        sub = argparse.Namespace(**{**vars(args), "max_actions": remaining})
        remaining -= await ws_student(st.i, url, photo, deadline, sub, st.res, session=ProxiedSession)
        if len(st.errors) == n_errors:
            return  # its class is over
        lost = kill.time is not None and st.errors[-1][0] >= kill.time and st.errors[-1][1] == kill.replica
        if not lost or st.lost_at is not None:
            return  # an error for another reason ends the session, as in bench/load.py
        st.lost_at = st.errors[-1][0]  # a browser reconnects at once; this client noticed now


async def warm_up(cluster: Cluster) -> None:
    """The teacher opens both pages on every replica (directly, not through the proxy) before class."""
    t0 = time.monotonic()
    for port in cluster.ports.values():
        async with StreamlitSession(f"http://127.0.0.1:{port}", timeout=300) as s:
            await s.open()
            await s.rerun(page="denoise")
    print(f"warm-up (both pages on each replica): {time.monotonic() - t0:.1f} s")


async def killer(cluster: Cluster, students: list[Student], t0: float, kill: Kill) -> None:
    await asyncio.sleep(max(0.0, t0 + kill.at_s - time.monotonic()))
    names = list(cluster.ports)
    if kill.which == "busiest":
        counts = {n: sum(st.replica == n for st in students) for n in names}
        kill.replica = max(names, key=lambda n: counts[n])
    else:
        kill.replica = kill.which
    pid = cluster.pids[names.index(kill.replica)]
    on_it = sum(st.replica == kill.replica for st in students)
    kill.time, kill.wall = time.monotonic(), time.time()
    os.kill(pid, kill.sig)
    print(f"t = {kill.time - t0:.1f} s: {signal.Signals(kill.sig).name} replica {kill.replica} "
          f"(PID {pid}, {on_it} session(s) on it)")  # fmt: skip
    while time.monotonic() - kill.time < 30:
        if cluster.states().get(kill.replica, "UP") != "UP":
            kill.down_after_s = time.monotonic() - kill.time
            break
        await asyncio.sleep(0.1)


async def classroom(cluster: Cluster, args, kill: Kill) -> tuple[list[Student], dict]:
    photos = student_photos(args.sessions)
    students = [Student(i) for i in range(args.sessions)]
    await warm_up(cluster)
    t0 = time.monotonic()
    deadline = t0 + args.seconds
    kill_task = asyncio.create_task(killer(cluster, students, t0, kill)) if kill.at_s is not None else None
    tasks = []
    for st in students:
        tasks.append(asyncio.create_task(run_student(st, cluster.url, photos[st.i], deadline, args, kill)))
        await asyncio.sleep(args.ramp / max(args.sessions, 1))
    await asyncio.gather(*tasks)
    if kill_task is not None:
        await kill_task
    return students, {"t0": t0, "wall_s": time.monotonic() - t0}


# --------------------------------------------------------------------------- figures
def run_once(replicas: int, args, env: dict[str, str], kill: Kill, stamp: str) -> dict:
    with Cluster(replicas, OUT / f"failover-{stamp}-cluster{replicas}", env) as cluster:
        sampler = RssSampler({name: pid for name, pid in zip(cluster.ports, cluster.pids, strict=True)})
        sampler.start()
        students, summary = asyncio.run(classroom(cluster, args, kill))
        peaks = sampler.stop()
        return report(students, summary, kill, peaks, cluster)


def main() -> None:
    ap = argparse.ArgumentParser(description="classroom load through the sticky proxy; one replica killed mid-run")
    ap.add_argument("--sessions", type=int, default=60)
    ap.add_argument("--seconds", type=float, default=120.0, help="how long students keep acting")
    ap.add_argument("--replicas", type=int, default=3)
    ap.add_argument("--kill-at", type=float, default=None, help="seconds into the class (default: half of --seconds)")
    ap.add_argument("--kill", default="busiest", help="replica to kill: r1, r2, ... or busiest (most sessions)")
    ap.add_argument("--signal", choices=["KILL", "TERM"], default="KILL")
    ap.add_argument("--scaling", default="", help="e.g. 1,2,3: no kill; throughput per replica count")
    ap.add_argument("--ramp", type=float, default=20.0, help="seconds over which students arrive")
    ap.add_argument("--max-actions", type=int, default=40, help="per student, upload and page switches included")
    ap.add_argument("--think-min", type=float, default=1.0)
    ap.add_argument("--think-max", type=float, default=4.0)
    ap.add_argument("--model", default="auto", help="auto | tiny | photo-random | a model folder")
    ap.add_argument("--env", action="append", default=[], help="extra replica env, NAME=VALUE (repeatable)")
    add_media_arg(ap)
    args = ap.parse_args()

    OUT.mkdir(parents=True, exist_ok=True)
    env, model_label = server_env(args.model, args.env)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    print(f"failover: {args.sessions} websocket sessions x {args.seconds:.0f} s, model: {model_label}, "
          f"env {env or '-'}; load average before: {load_average()}")  # fmt: skip
    result: dict = {"args": vars(args), "model": model_label}
    if args.scaling:
        counts = [int(n) for n in args.scaling.split(",")]
        runs = {}
        for n in counts:
            print(f"\n=== {n} replica(s), no kill")
            runs[n] = run_once(n, args, env, Kill(None, "", signal.SIGKILL), stamp)
        # issue 38's figures: slider step p95 <= 1 s, first Denoise visit x_t p95 <= 1 s and whole run p95 <= 3 s
        print(f"\n{'replicas':>8}{'actions/s':>11}{'step p50 s':>12}{'step p95 s':>12}{'1st Denoise x_t p95':>21}"
              f"{'whole p95':>11}{'errors':>8}{'peak RSS GiB':>14}")  # fmt: skip
        for n, r in runs.items():
            s = r["slider_steps"]["before"]
            rss = sum(r["peak_rss_bytes"].values()) / 2**30
            first = {k: r["actions"].get(k, {}).get("before", {}).get("p95", nan) for k in FIRST_DENOISE}
            print(f"{n:>8}{r['actions_done'] / r['wall_s']:>11.2f}{s.get('p50', nan):>12.2f}{s.get('p95', nan):>12.2f}"
                  f"{first['to_denoise (1st) x_t']:>21.2f}{first['to_denoise (1st)']:>11.2f}"
                  f"{len(r['errors_not_failover']):>8}{rss:>14.2f}")  # fmt: skip
        result["scaling"] = runs
    else:
        kill_at = args.kill_at if args.kill_at is not None else args.seconds / 2
        kill = Kill(kill_at, args.kill, getattr(signal, f"SIG{args.signal}"))
        result["failover"] = run_once(args.replicas, args, env, kill, stamp)
    print(f"load average after: {load_average()}")
    path = OUT / f"failover-{stamp}.json"
    path.write_text(json.dumps(result, indent=2, default=str))
    print(f"figures: {path.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
