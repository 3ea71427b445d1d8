"""Failover: the classroom load through the local cluster's sticky proxy, one replica killed mid-run.

Starts the same cluster as ``make cluster`` (``scripts/cluster.sh``: REPLICAS app replicas
on 127.0.0.1 behind Debian's haproxy, cookie affinity, one shared cookie secret) in its own
folder and on free ports, warms every replica, then runs the classroom of ``bench/load.py``
(its websocket student, :func:`load.ws_student`, imported, not copied) through the proxy.
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
import contextvars
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.cookies import SimpleCookie
from pathlib import Path

import load
from _server import OUT, ROOT, RssSampler, load_average, server_env
from failover_report import AFFINITY_COOKIE, report
from ws_client import XSRF_COOKIE, StreamlitSession

REPLICA_HEADER = "X-Diffusion-Lens-Replica"  # ... and the header naming the replica that answered
CLUSTER_SH = ROOT / "scripts" / "cluster.sh"


# --------------------------------------------------------------------------- one student
@dataclass
class Student:
    """One student's tab across reconnects: its sessions (one per websocket), results and cookie."""

    i: int
    sessions: list[ProxiedSession] = field(default_factory=list)
    cookie: str = ""  # the proxy's affinity cookie, kept across reconnects like a browser's
    events: list[tuple[float, str, float, str]] = field(default_factory=list)  # (done at, action, s, replica)
    errors: list[tuple[float, str, str]] = field(default_factory=list)  # (at, replica, message)
    lost_at: float | None = None  # when it noticed its replica was gone
    res: load.Results = field(init=False)

    def __post_init__(self) -> None:
        self.res = StudentResults(self)

    @property
    def replica(self) -> str:
        return self.sessions[-1].replica if self.sessions else "?"


class StudentResults(load.Results):
    """bench/load.py's results, with the time and replica of every success and error."""

    def __init__(self, student: Student) -> None:
        super().__init__()
        self.student = student

    def ok(self, action: str, seconds: float) -> None:
        super().ok(action, seconds)
        self.student.events.append((time.monotonic(), action, seconds, self.student.replica))

    def error(self, student: int, action: str, exc: BaseException | str) -> None:
        super().error(student, action, exc)
        self.student.errors.append((time.monotonic(), self.student.replica, self.errors[-1]))


_student: contextvars.ContextVar[Student] = contextvars.ContextVar("student")


class ProxiedSession(StreamlitSession):
    """A :class:`ws_client.StreamlitSession` that keeps the proxy's affinity cookie, as a browser does.

    The base class sends only the XSRF cookie, so through a proxy its websocket, upload and
    picture fetches could each land on a different replica. This one sends every cookie the
    proxy and the server set, starting from the student's cookie of its previous session.
    """

    def __init__(self, base_url: str, timeout: float = 60.0, keep_alive: bool = True) -> None:
        super().__init__(base_url, timeout, keep_alive)
        self.replica = "?"
        self.student = _student.get(None)
        if self.student is not None:
            self.student.sessions.append(self)

    def _fetch_cookie(self) -> None:
        jar = {AFFINITY_COOKIE: self.student.cookie} if self.student and self.student.cookie else {}
        headers = {"Cookie": "; ".join(f"{k}={v}" for k, v in jar.items())} if jar else {}
        req = urllib.request.Request(self.base + "/_stcore/health", headers=headers)
        with urllib.request.urlopen(req, timeout=self.timeout) as r:
            r.read()
            served_by = r.headers.get(REPLICA_HEADER, "?")
            for line in r.headers.get_all("Set-Cookie") or []:
                c = SimpleCookie()
                c.load(line)
                jar.update({k: m.value for k, m in c.items()})
        self.xsrf = jar.get(XSRF_COOKIE, "")
        self.cookie_header = "; ".join(f"{k}={v}" for k, v in jar.items())
        self.replica = served_by
        if self.student is not None:
            self.student.cookie = jar.get(AFFINITY_COOKIE, "")


@contextmanager
def students_through_proxy():
    """Make bench/load.py's websocket student open :class:`ProxiedSession` s (for the duration only)."""
    saved = load.StreamlitSession
    load.StreamlitSession = ProxiedSession
    try:
        yield
    finally:
        load.StreamlitSession = saved


@dataclass
class Kill:
    at_s: float | None  # seconds after the class starts; None: no kill
    which: str  # "busiest" or a replica name (r1, r2, ...)
    sig: int
    replica: str = ""
    time: float | None = None  # monotonic
    wall: float | None = None  # time.time(), to compare with haproxy's log
    down_after_s: float | None = None  # until haproxy's health checks marked it DOWN


async def run_student(st: Student, url: str, photo, deadline: float, args, kill: Kill) -> None:
    """bench/load.py's student; if its replica is killed, it reconnects (at most twice) and goes on."""
    _student.set(st)
    remaining = args.max_actions
    while remaining > 0 and time.monotonic() < deadline:
        n_errors = len(st.errors)
        sub = argparse.Namespace(**{**vars(args), "max_actions": remaining})
        remaining -= await load.ws_student(st.i, url, photo, deadline, sub, st.res)
        if len(st.errors) == n_errors:
            return  # its class is over
        lost = kill.time is not None and st.errors[-1][0] >= kill.time and st.errors[-1][1] == kill.replica
        if not lost or st.lost_at is not None:
            return  # an error for another reason ends the session, as in bench/load.py
        st.lost_at = st.errors[-1][0]  # a browser reconnects at once; this client noticed now


# --------------------------------------------------------------------------- the cluster
def free_port_block(n: int) -> int:
    """A port p with p .. p+n-1 all free on 127.0.0.1."""
    for _ in range(200):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            base = s.getsockname()[1]
        if base + n >= 65535:
            continue
        try:
            for p in range(base, base + n):
                with socket.socket() as s:
                    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                    s.bind(("127.0.0.1", p))
            return base
        except OSError:
            continue
    raise RuntimeError(f"no {n} consecutive free ports on 127.0.0.1")


class Cluster:
    """``scripts/cluster.sh up`` in its own folder; ``down`` on exit."""

    def __init__(self, replicas: int, folder: Path, env: dict[str, str]) -> None:
        self.folder = folder
        self.port = free_port_block(replicas + 1)
        self.env = {**os.environ, **env, "REPLICAS": str(replicas), "CLUSTER_PORT": str(self.port),
                    "CLUSTER_DIR": str(folder), "PYTHON": sys.executable}  # fmt: skip
        self.url = f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> Cluster:
        start = time.monotonic()
        try:
            subprocess.run(["bash", str(CLUSTER_SH), "up"], env=self.env, check=True, capture_output=True, text=True)
        except subprocess.CalledProcessError as exc:
            self.__exit__()
            raise RuntimeError(f"make cluster failed:\n{exc.stdout}\n{exc.stderr}") from exc
        self.pids = [int(p) for p in (self.folder / "replicas.pid").read_text().split()]
        self.ports = dict(line.split() for line in (self.folder / "ports").read_text().splitlines())
        print(f"cluster: {len(self.pids)} replica(s) healthy in {time.monotonic() - start:.1f} s behind {self.url}")
        return self

    def __exit__(self, *exc) -> None:
        subprocess.run(["bash", str(CLUSTER_SH), "down"], env=self.env, capture_output=True)

    def states(self) -> dict[str, str]:
        """haproxy's view: replica -> UP / DOWN / ..."""
        try:
            with socket.socket(socket.AF_UNIX) as s:
                s.settimeout(2)
                s.connect(str(self.folder / "haproxy.sock"))
                s.sendall(b"show stat\n")
                data = b"".join(iter(lambda: s.recv(65536), b""))
        except OSError:
            return {}
        rows = [r.split(",") for r in data.decode().splitlines() if r and not r.startswith("#")]
        return {r[1]: r[17] for r in rows if r[1] not in ("FRONTEND", "BACKEND")}


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
    photos = load.student_photos(args.sessions)
    students = [Student(i) for i in range(args.sessions)]
    await warm_up(cluster)
    t0 = time.monotonic()
    deadline = t0 + args.seconds
    kill_task = asyncio.create_task(killer(cluster, students, t0, kill)) if kill.at_s is not None else None
    tasks = []
    with students_through_proxy():
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
    load.add_media_arg(ap)
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
        print(
            f"\n{'replicas':>8}{'actions/s':>11}{'step p50 s':>12}{'step p95 s':>12}{'errors':>8}{'peak RSS GiB':>14}"
        )
        for n, r in runs.items():
            s = r["slider_steps"]["before"]
            rss = sum(r["peak_rss_bytes"].values()) / 2**30
            print(f"{n:>8}{r['actions_done'] / r['wall_s']:>11.2f}{s.get('p50', float('nan')):>12.2f}"
                  f"{s.get('p95', float('nan')):>12.2f}{len(r['errors_not_failover']):>8}{rss:>14.2f}")  # fmt: skip
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
