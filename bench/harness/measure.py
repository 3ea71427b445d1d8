"""What a benchmark measures of the processes it started: RSS of a process tree (peaks, sampled), CPU seconds split
between the server and the load clients, and one line describing the split."""

from __future__ import annotations

import os
import threading
import time

import psutil


def tree_rss(pid: int, exclude: int | None = None) -> int:
    """Resident memory (bytes) of a process and all its descendants, minus the tree rooted at ``exclude``."""
    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
        if exclude is not None:
            skip = psutil.Process(exclude)
            skipped = {skip.pid} | {c.pid for c in skip.children(recursive=True)}
            procs = [p for p in procs if p.pid not in skipped]
    except psutil.NoSuchProcess:
        return 0
    total = 0
    for p in procs:
        try:
            total += p.memory_info().rss
        except psutil.Error:
            pass
    return total


class RssSampler(threading.Thread):
    """Samples the RSS of one or more process trees every ``interval`` seconds; keeps the peaks."""

    def __init__(self, pids: dict[str, int | tuple[int, int]], interval: float = 0.5) -> None:
        """``pids``: name -> pid, or name -> (pid, pid of a subtree to leave out)."""
        super().__init__(daemon=True)
        self.pids = {k: v if isinstance(v, tuple) else (v, None) for k, v in pids.items()}
        self.interval = interval
        self.peak = {name: 0 for name in pids}
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.is_set():
            for name, (pid, exclude) in self.pids.items():
                self.peak[name] = max(self.peak[name], tree_rss(pid, exclude))
            self._stop_event.wait(self.interval)

    def stop(self) -> dict[str, int]:
        self._stop_event.set()
        self.join(timeout=5)
        return self.peak


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system, seconds) used so far by a process and its live descendants; 0 if it is gone."""
    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0.0
    total = 0.0
    for p in procs:
        try:
            t = p.cpu_times()
            total += t.user + t.system
        except psutil.Error:
            pass
    return total


class CpuSplit:
    """CPU seconds spent by the server's process tree and by the load clients (this process's tree minus the
    server's), between :meth:`start` and :meth:`stop`: on one machine both share the same cores."""

    def __init__(self, server_pid: int) -> None:
        self.server_pid = server_pid
        self._start: tuple[float, float, float] | None = None

    def _now(self) -> tuple[float, float, float]:
        server = cpu_seconds(self.server_pid)
        return time.monotonic(), server, cpu_seconds(os.getpid()) - server

    def start(self) -> None:
        self._start = self._now()

    def stop(self) -> dict[str, float]:
        """``{"wall_s", "server_cpu_s", "clients_cpu_s", "cores"}`` since :meth:`start` (cores: ``os.cpu_count()``)."""
        t1, s1, c1 = self._now()
        t0, s0, c0 = self._start or (t1, s1, c1)
        return {"wall_s": t1 - t0, "server_cpu_s": s1 - s0, "clients_cpu_s": c1 - c0, "cores": os.cpu_count() or 1}


def describe_cpu(cpu: dict[str, float]) -> str:
    """One line: how busy the cores were, and who kept them busy."""
    wall = max(cpu.get("wall_s", 0.0), 1e-9)
    server, clients = cpu.get("server_cpu_s", 0.0), cpu.get("clients_cpu_s", 0.0)
    return (
        f"CPU over {wall:.0f} s: server {server:.0f} s ({server / wall:.2f} cores), load clients {clients:.0f} s "
        f"({clients / wall:.2f} cores), of {cpu.get('cores', 1)} cores"
    )
