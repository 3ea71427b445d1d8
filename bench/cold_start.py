"""Benchmark: a fresh server's first load of Start here (issue 36, item 17).

    PYTHONPATH=. .venv/bin/python bench/cold_start.py [--students 10] [--cold] [--think 1.0]

Starts ``python -m app.launch`` (what ``make app`` and the container run) on a free port with the bundled models,
and times, from the server's start:

* **ready**: the server's ``diffusion-lens: ready`` line (its warm-up visit of Start here is over; app/server/warm_start.py);
* then one new browser tab (headless Chromium) opens ``/`` and times, from its ``goto``: the page's **heading**, its
  **first picture** (decoded), and **idle** (the script has finished and the pictures are in).

``--students N`` first starts N students (websocket sessions, bench/harness/ws_client.py) that move Forward's t slider every
``--think`` seconds, so the tab opens beside a busy class; ``--cold`` turns the warm-up off (DIFFUSION_LENS_WARM_UP=0):
the first tab then pays what the first visitor paid before. The goal (issue 36): at most 5 s from the ready line to
the first picture on an idle machine. Prints the load average beside the figures: on a shared machine they move
with it.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from harness.server import CHROMIUM, CHROMIUM_ARGS, IDLE, free_port
from harness.ws_client import StreamlitSession

ROOT = Path(__file__).resolve().parent.parent
READY = "diffusion-lens: ready"
MAIN_IMG = "[data-testid='stMain'] [data-testid='stImage'] img"


class LaunchedServer:
    """``python -m app.launch`` on 127.0.0.1:<free port> in its own process group; its output read line by line."""

    def __init__(self, env: dict[str, str]) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        cmd = [sys.executable, "-m", "app.launch", "--server.headless", "true", "--server.port", str(self.port),
               "--server.address", "127.0.0.1", "--browser.gatherUsageStats", "false"]  # fmt: skip
        self.start = time.perf_counter()
        self.proc = subprocess.Popen(
            cmd, cwd=ROOT, env={**os.environ, **env}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            start_new_session=True, text=True,
        )  # fmt: skip
        self.ready = threading.Event()
        self.ready_s: float | None = None
        self.lines: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.lines.append(line.rstrip())
            if line.startswith(READY) and not self.ready.is_set():
                self.ready_s = time.perf_counter() - self.start
                self.ready.set()

    def wait_healthy(self, timeout: float = 300.0) -> None:
        import urllib.request

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"{self.url}/_stcore/health", timeout=2) as r:
                    if r.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.3)
        raise RuntimeError("the server did not answer")

    def stop(self) -> None:
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
                self.proc.wait(timeout=15)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)


class Students(threading.Thread):
    """N websocket students on Forward, each moving t every ``think`` seconds (about), until stopped."""

    def __init__(self, url: str, n: int, think: float) -> None:
        super().__init__(daemon=True)
        self.url, self.n, self.think = url, n, think
        self.stop_event = threading.Event()
        self.runs = 0
        self.errors: list[str] = []

    async def _student(self, i: int) -> None:
        rnd = random.Random(i)
        try:
            async with StreamlitSession(self.url, timeout=300) as s:
                await s.open("forward")
                while not self.stop_event.is_set():
                    await asyncio.sleep(self.think * rnd.uniform(0.5, 1.5))
                    s.set_slider("fwd_t", rnd.randrange(1000))
                    await s.rerun()
                    self.runs += 1
        except Exception as exc:  # noqa: BLE001 -- one student's error ends that student only
            self.errors.append(f"{type(exc).__name__}: {exc}")

    def run(self) -> None:
        async def all_of_them() -> None:
            await asyncio.gather(*(self._student(i) for i in range(self.n)))

        asyncio.run(all_of_them())


def first_tab(url: str) -> dict[str, float]:
    """Seconds from a new tab's goto("/") to its heading, its first decoded picture, and idle."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_context(viewport={"width": 1400, "height": 900}).new_page()
        page.set_default_timeout(600_000)
        start = time.perf_counter()
        page.goto(url + "/")
        page.wait_for_selector("[data-testid='stMain'] [data-testid='stHeading']")
        heading = time.perf_counter() - start
        page.wait_for_function(
            f'() => [...document.querySelectorAll("{MAIN_IMG}")].some(i => i.complete && i.naturalWidth > 0)'
        )
        picture = time.perf_counter() - start
        page.wait_for_selector(IDLE)
        page.wait_for_function(f'() => [...document.querySelectorAll("{MAIN_IMG}")].every(i => i.complete)')
        idle = time.perf_counter() - start
        browser.close()
    return {"heading": heading, "first picture": picture, "idle": idle}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--students", type=int, default=0, help="students moving Forward's slider beside the new tab")
    ap.add_argument("--think", type=float, default=1.0, help="a student's pause between moves (s, about)")
    ap.add_argument("--cold", action="store_true", help="no warm-up (DIFFUSION_LENS_WARM_UP=0): the old first load")
    a = ap.parse_args(argv)
    env = {"DIFFUSION_LENS_WARM_UP": "0"} if a.cold else {}
    print(f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores; {'cold' if a.cold else 'warm-up'}, "
          f"{a.students} students", flush=True)  # fmt: skip
    server = LaunchedServer(env)
    students = None
    try:
        server.wait_healthy()
        if not a.cold:
            if not server.ready.wait(900):
                raise RuntimeError("no ready line in 900 s:\n" + "\n".join(server.lines[-20:]))
            print(f"ready line {server.ready_s:.1f} s after the start: {server.lines[-1]}", flush=True)
        if a.students:
            students = Students(server.url, a.students, a.think)
            students.start()
            while students.runs < a.students and not students.errors:  # every student has moved t once
                time.sleep(0.2)
            print(f"{a.students} students busy ({students.runs} moves so far)", flush=True)
        times = first_tab(server.url)
        print("first tab: " + ", ".join(f"{k} {v:.1f} s" for k, v in times.items())
              + f"; load average {os.getloadavg()[0]:.2f}", flush=True)  # fmt: skip
        if students is not None:
            print(f"students: {students.runs} moves, {len(students.errors)} errors {students.errors[:2]}")
    finally:
        if students is not None:
            students.stop_event.set()
        server.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
