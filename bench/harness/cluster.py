"""The local cluster of bench/failover.py: ``scripts/cluster.sh`` (REPLICAS app replicas behind haproxy, cookie
affinity) on free ports in its own folder, the student's tab that keeps the proxy's affinity cookie across reconnects,
and the kill of one replica.

Each session is tied to its replica by the proxy's ``DLREPLICA`` cookie, which :class:`ProxiedSession` keeps and
sends like a browser (the upload PUT and every /media fetch carry it).
"""

from __future__ import annotations

import contextvars
import os
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from http.cookies import SimpleCookie
from pathlib import Path

from harness.server import ROOT
from harness.students import Results
from harness.ws_client import XSRF_COOKIE, StreamlitSession

AFFINITY_COOKIE = "DLREPLICA"  # scripts/cluster.sh: haproxy's `cookie DLREPLICA insert`
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
    res: Results = field(init=False)

    def __post_init__(self) -> None:
        self.res = StudentResults(self)

    @property
    def replica(self) -> str:
        return self.sessions[-1].replica if self.sessions else "?"


class StudentResults(Results):
    """The students' results, with the time and replica of every success and error."""

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


def bind_student(st: Student) -> None:
    """The :class:`ProxiedSession` s opened from now on in this asyncio task are ``st``'s."""
    _student.set(st)


class ProxiedSession(StreamlitSession):
    """A :class:`harness.ws_client.StreamlitSession` that keeps the proxy's affinity cookie, as a browser does.

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


@dataclass
class Kill:
    at_s: float | None  # seconds after the class starts; None: no kill
    which: str  # "busiest" or a replica name (r1, r2, ...)
    sig: int
    replica: str = ""
    time: float | None = None  # monotonic
    wall: float | None = None  # time.time(), to compare with haproxy's log
    down_after_s: float | None = None  # until haproxy's health checks marked it DOWN


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
