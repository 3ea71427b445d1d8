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
import statistics
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.cookies import SimpleCookie
from pathlib import Path

import load
from _server import OUT, ROOT, RssSampler, load_average, percentile, server_env
from ws_client import XSRF_COOKIE, StreamlitSession

AFFINITY_COOKIE = "DLREPLICA"  # scripts/cluster.sh: haproxy's `cookie DLREPLICA insert`
REPLICA_HEADER = "X-Diffusion-Lens-Replica"  # ... and the header naming the replica that answered
CLUSTER_SH = ROOT / "scripts" / "cluster.sh"
ACTIONS = ["open", "upload", "fwd_step", "denoise_step", "to_denoise (1st)", "to_denoise", "to_forward"]


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

    def __init__(self, base_url: str, timeout: float = 60.0) -> None:
        super().__init__(base_url, timeout)
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
def stats(values: list[float]) -> dict:
    if not values:
        return {"n": 0}
    return {"n": len(values), "p50": statistics.median(values), "p95": percentile(values, 0.95), "max": max(values)}


def fmt(row: dict) -> str:
    return f"{row['n']:>5}{row['p50']:>7.2f}{row['p95']:>7.2f}" if row.get("n") else f"{0:>5}{'-':>7}{'-':>7}"


def affinity_audit(log: Path, kill: Kill) -> dict:
    """From haproxy's log: requests whose cookie named a replica and that another replica served."""
    with_cookie = moved_while_up = redispatched = 0
    examples = []
    for line in log.read_text(errors="replace").splitlines():
        parts = line.split()
        if len(parts) < 6 or not parts[5].startswith(f"cookie={AFFINITY_COOKIE}="):
            continue
        ts, server, wanted = float(parts[0]), parts[1], parts[5].split("=", 2)[2]
        with_cookie += 1
        if server == wanted:
            continue
        if kill.wall is not None and wanted == kill.replica and ts >= kill.wall:
            redispatched += 1  # its replica was dead: sent elsewhere, as intended
        else:
            moved_while_up += 1
            examples.append(line)
    return {"requests_with_cookie": with_cookie, "served_elsewhere_while_up": moved_while_up,
            "redispatched_after_kill": redispatched, "examples": examples[:5]}  # fmt: skip


def report(students: list[Student], summary: dict, kill: Kill, peaks: dict, cluster: Cluster) -> dict:
    t0 = summary["t0"]
    cut = kill.time if kill.time is not None else float("inf")
    events = [e for st in students for e in st.events]
    if kill.time is not None:
        print(f"\n{'action':<18}{'before the kill':>19}{'after the kill':>19}")
        print(f"{'':<18}{'n':>5}{'p50 s':>7}{'p95 s':>7}{'n':>5}{'p50 s':>7}{'p95 s':>7}")
    else:
        print(f"\n{'action':<18}{'n':>5}{'p50 s':>7}{'p95 s':>7}")
    rows = {}
    for action in ACTIONS + sorted({e[1] for e in events} - set(ACTIONS)):
        before = stats([e[2] for e in events if e[1] == action and e[0] < cut])
        after = stats([e[2] for e in events if e[1] == action and e[0] >= cut])
        if before["n"] or after["n"]:
            rows[action] = {"before": before, "after": after}
            print(f"{action:<18}{fmt(before)}{fmt(after) if kill.time is not None else ''}")
    steps = {"fwd_step", "denoise_step"}
    sb = stats([e[2] for e in events if e[1] in steps and e[0] < cut])
    sa = stats([e[2] for e in events if e[1] in steps and e[0] >= cut])
    print(f"{'all slider steps':<18}{fmt(sb)}{fmt(sa) if kill.time is not None else ''}")

    # errors: a session on the killed replica losing its connection after the kill is the
    # expected failover; every other error counts against the target of 0
    lost, others = [], []
    for st in students:
        for at, replica, text in st.errors:
            expected = kill.time is not None and at >= kill.time and replica == kill.replica and at == st.lost_at
            (lost if expected else others).append((st, at, replica, text))
    if kill.time is not None:
        survivors = sum(not st.lost_at for st in students)
        print(f"\nsessions: {len(students)}; on the killed replica at the kill and lost: {len(lost)}; "
              f"never lost their replica: {survivors}")  # fmt: skip
        print(f"errors on sessions whose replica survived, or after reconnecting: {len(others)} (target 0)")
    else:
        print(f"\nsessions: {len(students)}; errors: {len(others)} (target 0)")
    for _st, at, replica, text in others[:20]:
        print(f"  t = {at - t0:6.1f} s on {replica}: {text}")
    recovery = {}
    if kill.time is not None:
        down = f"{kill.down_after_s:.1f} s" if kill.down_after_s is not None else "not within 30 s"
        print(f"\nkilled {kill.replica} at t = {kill.time - t0:.1f} s; haproxy marked it DOWN after {down}")
        seen: dict[str, int] = {}
        for _st, _at, _replica, text in lost:
            msg = text.split(": ", 1)[-1]
            seen[msg] = seen.get(msg, 0) + 1
        print("what its sessions saw (bench/load.py's error text, one per session):")
        for msg, n in sorted(seen.items(), key=lambda kv: -kv[1]):
            print(f"  {n} x {msg}")
        back = {"open": [], "upload": []}
        noticed, moved_to, never = [], {}, 0
        for st, at, _replica, _text in lost:
            noticed.append(at - kill.time)
            later = [e for e in st.events if e[0] > at]
            first = {a: next((e for e in later if e[1] == a), None) for a in back}
            if first["open"] is None:
                never += 1
                continue
            moved_to[first["open"][3]] = moved_to.get(first["open"][3], 0) + 1
            for a, e in first.items():
                if e is not None:
                    back[a].append((e[0] - kill.time, e[0] - at))
        print(f"  noticed the loss (at their next action) after: {_p(noticed)}")
        for a, label in (("open", "page shown again"), ("upload", "own photo shown again")):
            print(f"  {label}: from the kill {_p([x[0] for x in back[a]])}; "
                  f"from noticing {_p([x[1] for x in back[a]])}")  # fmt: skip
        print(f"  reconnected to: {moved_to or '-'}; never working again before the end: {never}")
        recovery = {"replica": kill.replica, "down_after_s": kill.down_after_s, "lost_sessions": len(lost),
                    "messages": seen, "noticed_s": noticed, "open_again_s": back["open"],
                    "upload_again_s": back["upload"], "moved_to": moved_to, "never_recovered": never}  # fmt: skip

    audit = affinity_audit(cluster.folder / "haproxy.log", kill)
    print(f"\naffinity (haproxy log): {audit['requests_with_cookie']} requests carried a replica cookie; "
          f"served by another replica while theirs was up: {audit['served_elsewhere_while_up']} (target 0); "
          f"sent elsewhere because theirs was dead: {audit['redispatched_after_kill']}")  # fmt: skip
    for line in audit["examples"]:
        print(f"  {line}")
    print("peak RSS per replica: " + ", ".join(f"{k} {v / 2**30:.2f} GiB" for k, v in peaks.items()))
    n_actions = len(events)
    print(f"actions done: {n_actions} in {summary['wall_s']:.0f} s ({n_actions / summary['wall_s']:.1f} per second)")
    return {"actions": rows, "slider_steps": {"before": sb, "after": sa},
            "errors_not_failover": [f"t={at - t0:.1f}s {replica}: {text}" for _s, at, replica, text in others],
            "failover": recovery, "affinity": audit, "peak_rss_bytes": peaks, "actions_done": n_actions,
            "wall_s": summary["wall_s"]}  # fmt: skip


def _p(values: list[float]) -> str:
    if not values:
        return "-"
    return f"p50 {statistics.median(values):.1f} s, max {max(values):.1f} s (n = {len(values)})"


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
