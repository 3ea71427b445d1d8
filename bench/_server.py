"""Shared by the benchmarks: start `streamlit run` on 127.0.0.1, pick the model, sample RSS.

Not a benchmark itself. Everything here starts or stops only processes it started.
"""

from __future__ import annotations

import math
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent

CHROMIUM = os.environ.get("DIFFUSION_LENS_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
IDLE = "[data-testid='stApp'][data-test-script-state='notRunning']"
RUNNING = "[data-testid='stApp'][data-test-script-state='running']"
OUT = ROOT / "bench" / "out"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def prepare_model(choice: str) -> tuple[str | None, str]:
    """(value for DIFFUSION_LENS_MODEL or None for the bundled model, a description).

    ``auto``: the bundled checkpoints/photo-unet if it is there, else a randomly
    initialised UNet of the same ("photo") architecture: same cost per forward pass.
    ``tiny``: the tiny test UNet. Anything else: a folder to use as is.
    """
    bundled = ROOT / "checkpoints" / "photo-unet"
    if choice == "auto" and (bundled / "config.json").is_file():
        return None, f"bundled model ({bundled})"
    if choice in ("auto", "photo-random", "tiny"):
        from model.diffusion.schedule import make_schedule
        from model.nets.checkpoint_io import save_model, tiny_unet
        from model.training.train_lib import build_unet

        folder = Path(tempfile.mkdtemp(prefix=f"diffusion-lens-{choice}-"))
        unet = tiny_unet(32) if choice == "tiny" else build_unet("photo", 64)
        save_model(unet, make_schedule("linear"), folder)
        label = "tiny random UNet" if choice == "tiny" else "random UNet, 'photo' architecture (bundled model absent)"
        return str(folder), label
    return choice, f"model folder {choice}"


def server_env(model_choice: str, extra: list[str]) -> tuple[dict[str, str], str]:
    """The server's extra environment from ``--model`` and ``--env NAME=VALUE`` flags, and a model label."""
    model_env, label = prepare_model(model_choice)
    env = dict(e.split("=", 1) for e in extra)
    if model_env:
        env["DIFFUSION_LENS_MODEL"] = model_env
    return env, label


class Server:
    """`streamlit run app/streamlit_app.py` on 127.0.0.1:<free port>, in its own process group."""

    def __init__(self, env: dict[str, str] | None = None, log_path: Path | None = None) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        cmd = [
            sys.executable, "-m", "streamlit", "run", str(ROOT / "app" / "streamlit_app.py"),
            "--server.headless", "true",
            "--server.port", str(self.port),
            "--server.address", "127.0.0.1",
            "--browser.gatherUsageStats", "false",
        ]  # fmt: skip
        self._log = open(log_path, "wb") if log_path else subprocess.DEVNULL  # noqa: SIM115
        self.proc = subprocess.Popen(
            cmd,
            cwd=ROOT,
            env={**os.environ, **(env or {})},
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def wait_healthy(self, timeout: float = 120.0) -> float:
        start = time.monotonic()
        while time.monotonic() - start < timeout:
            if self.proc.poll() is not None:
                raise RuntimeError(f"streamlit exited with code {self.proc.returncode}")
            try:
                with urllib.request.urlopen(f"{self.url}/_stcore/health", timeout=2) as r:
                    if r.status == 200:
                        return time.monotonic() - start
            except OSError:
                pass
            time.sleep(0.3)
        raise RuntimeError(f"streamlit not healthy after {timeout:.0f} s")

    def stop(self) -> None:
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
                self.proc.wait(timeout=10)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                try:
                    os.killpg(self.proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                self.proc.wait(timeout=10)
        if self._log not in (None, subprocess.DEVNULL):
            self._log.close()

    def __enter__(self) -> Server:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


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


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in [0, 1]); NaN for no values."""
    if not values:
        return float("nan")
    s = sorted(values)
    return s[min(len(s) - 1, max(0, math.ceil(q * len(s)) - 1))]


def load_average() -> str:
    try:
        return " ".join(f"{v:.1f}" for v in os.getloadavg())
    except OSError:
        return "?"
