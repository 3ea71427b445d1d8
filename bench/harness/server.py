"""Start `streamlit run` on 127.0.0.1 and pick its model: the server of the benchmarks and of tests/e2e/.

Not a benchmark itself. Everything here starts or stops only processes it started.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

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
# Variables the server reads through model/serving/settings.py that the benchmarks set (docs/server.md lists them all).
BATCH_MS_ENV, STATS_FILE_ENV, GRAPH_ENV = "DIFFUSION_LENS_BATCH_MS", "DIFFUSION_LENS_STATS_FILE", "DIFFUSION_LENS_GRAPH"


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


def load_average() -> str:
    try:
        return " ".join(f"{v:.1f}" for v in os.getloadavg())
    except OSError:
        return "?"
