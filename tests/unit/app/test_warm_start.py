"""A fresh server warms up before its first visitor and says when it is ready (issue 36, item 17): ``python -m
app.launch`` starts a warm-up visitor beside the server (app/server/warm_start.py) that opens Start here through the server's
own websocket and then prints ``diffusion-lens: ready …``."""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from app.server import warm_start
from harness.server import free_port

ROOT = Path(__file__).resolve().parents[3]


def test_the_visitor_finds_the_server_from_its_options():
    assert warm_start.base_url(["--server.port", "9000"]) == "http://127.0.0.1:9000"
    assert warm_start.base_url(["--server.port=9001", "--server.address", "0.0.0.0"]) == "http://127.0.0.1:9001"
    assert warm_start.base_url(["--server.port", "1", "--server.baseUrlPath", "/lens/"]) == "http://127.0.0.1:1/lens"
    assert warm_start.option(["--x", "1"], "--server.port", "8501") == "8501"


@pytest.mark.slow
def test_a_launched_server_warms_up_and_says_when_it_is_ready(tiny_model_dir):
    port = free_port()
    env = {**os.environ, "DIFFUSION_LENS_MODEL": str(tiny_model_dir), "DIFFUSION_LENS_WARM_UP": "1",
           "DIFFUSION_LENS_THREADS": "1", "OMP_NUM_THREADS": "1"}  # fmt: skip
    cmd = [sys.executable, "-m", "app.launch", "--server.headless", "true", "--server.port", str(port),
           "--server.address", "127.0.0.1", "--browser.gatherUsageStats", "false"]  # fmt: skip
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)  # fmt: skip
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in proc.stdout], daemon=True).start()
    seen = []
    try:
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            try:
                line = lines.get(timeout=5)
            except queue.Empty:
                assert proc.poll() is None, seen
                continue
            seen.append(line.rstrip())
            if line.startswith(warm_start.READY):
                break
        assert seen and seen[-1].startswith(warm_start.READY), seen
        assert f"open http://127.0.0.1:{port}/" in seen[-1] and "warmed up in" in seen[-1]
        assert not [s for s in seen if "Traceback" in s or "warm-up visit failed" in s], seen
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)


def test_the_address_comes_from_the_environment_launch_hands_over():
    """app/launch.py reads the environment (the warm-up visitor does not) and passes the address as one argument."""
    env = {"STREAMLIT_SERVER_PORT": "9100", "STREAMLIT_SERVER_BASE_URL_PATH": "lens"}
    assert warm_start.base_url([], env) == "http://127.0.0.1:9100/lens"
    assert warm_start.base_url(["--server.port", "9200"], env) == "http://127.0.0.1:9200/lens"
