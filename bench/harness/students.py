"""The websocket students of the classroom benchmarks (bench/load.py, bench/soak.py, bench/failover.py,
bench/bomb.py, bench/fairness.py, bench/hostile.py): their photos, their results, how they arrive, and what they do.

* :func:`ws_student` is load.py's student: it opens the app, uploads its own photo, moves the forward page's and
  "Denoise one step"'s t sliders with the keyboard and switches between the two pages, with think time between
  actions (bench/load.py's docstring describes the actions it times).
* :func:`slider_student` is the other students of bomb.py, fairness.py and hostile.py: it opens "Denoise one step"
  (one forward pass per step, through the inference queue) and moves its t slider with the keyboard, with think time
  between steps. Its step latency (``denoise_step``: request -> script finished -> pictures fetched;
  ``denoise_step x_t``: its x_t picture in) is what a noisy neighbour must not spoil.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import random
import time
from collections import defaultdict

from harness.measure import CpuSplit
from harness.server import ROOT
from harness.ws_client import StreamlitError, StreamlitSession

ACTION_TIMEOUT_MS = 60_000  # one action of a student, websocket or browser
WS_TIMEOUT_S = ACTION_TIMEOUT_MS / 1000
WS_CAPTIONS = {"forward": "x_t at t = {t}", "denoise": "x_t: the input at t = {t}"}
STEP_ACTIONS = ["denoise_step", "denoise_step x_t"]


def student_photos(n: int, size: int = 640) -> list[tuple[str, bytes]]:
    """n different JPEG 'phone photos' (crops of the bundled samples), so every upload is a new cache key."""
    from PIL import Image

    sources = sorted((ROOT / "assets").glob("*.jpg"))
    photos = []
    for i in range(n):
        img = Image.open(sources[i % len(sources)]).convert("RGB")
        w, h = img.size
        rnd = random.Random(i)
        s = int(min(w, h) * rnd.uniform(0.6, 0.95))
        x, y = rnd.randint(0, w - s), rnd.randint(0, h - s)
        buf = io.BytesIO()
        img.crop((x, y, x + s, y + s)).resize((size, size)).save(buf, format="JPEG", quality=88)
        photos.append((f"student{i:02d}.jpg", buf.getvalue()))
    return photos


class Results:
    def __init__(self) -> None:
        self.latency: dict[str, list[float]] = defaultdict(list)
        self.ended_at: dict[str, list[float]] = defaultdict(list)  # seconds since the start, per latency
        self.errors: list[str] = []
        self.js_errors = 0
        self.t0 = time.monotonic()

    def ok(self, action: str, seconds: float) -> None:
        self.latency[action].append(seconds)
        self.ended_at[action].append(time.monotonic() - self.t0)

    def after(self, actions: list[str], start_s: float) -> list[float]:
        """The latencies of ``actions`` that began ``start_s`` or more seconds after the start."""
        return [
            lat
            for a in actions
            for lat, end in zip(self.latency.get(a, []), self.ended_at.get(a, []), strict=True)
            if end - lat >= start_s
        ]

    def error(self, student: int, action: str, exc: BaseException | str) -> None:
        text = str(exc).splitlines()[0][:160] if str(exc) else type(exc).__name__
        self.errors.append(f"student {student:02d} {action}: {text}")


def keyboard_step(rnd: random.Random, old: int, lo: int, hi: int) -> int:
    """The value after one key press: arrow (1) or page up/down (about a tenth of the range)."""
    step = rnd.choice([1, 1, -1, 100, -100])
    if old >= hi - 100:
        step = -100
    elif old <= lo + 100:
        step = 100
    return max(lo, min(hi, old + step))


def record(res: Results, action: str, r, caption: str) -> None:
    """One websocket action: its whole run (script finished, every picture fetched) as ``action``, and the moment
    its x_t picture (``caption``) was in, as a browser would show it while the rest of the page still computes,
    as ``action + " x_t"``."""
    if caption not in r.images:
        raise StreamlitError(f"no picture {caption!r} (alerts: {r.alerts})")
    res.ok(action, r.seconds)
    res.ok(f"{action} x_t", r.shown.get(caption, r.seconds))


async def ws_student(
    i: int, url: str, photo: tuple[str, bytes], deadline: float, args, res: Results, session=StreamlitSession
) -> int:
    """bench/load.py's student until ``deadline`` (monotonic) or ``args.max_actions``; returns the actions done.

    ``session``: the client class (bench/failover.py passes one that keeps the proxy's affinity cookie)."""
    rnd = random.Random(1000 + i)
    actions = 0
    action = "open"
    try:
        async with session(url, timeout=WS_TIMEOUT_S, keep_alive=args.media == "keep-alive") as s:
            r = await s.open()
            res.ok("open", r.seconds)
            s.set_radio("image_source", "Upload")
            await s.rerun()
            action = "upload"
            name, data = photo
            start = time.perf_counter()
            await s.upload("uploader", name, data)
            r = await s.rerun()
            if f"x₀: {name}, 64×64" not in r.images or "x_t at t = 250" not in r.images:
                raise StreamlitError(f"the uploaded photo is not shown (alerts: {r.alerts})")
            res.ok("upload", time.perf_counter() - start)
            actions = 2
            which, key = "forward", "fwd_t"
            shared_t = 250  # Forward, Denoise and Inside share t: a page opens at the t last set on any of them
            while time.monotonic() < deadline and actions < args.max_actions:
                for _ in range(rnd.randint(3, 6)):
                    if time.monotonic() >= deadline or actions >= args.max_actions:
                        break
                    await asyncio.sleep(rnd.uniform(args.think_min, args.think_max))
                    action = "fwd_step" if which == "forward" else "denoise_step"
                    w = s.widgets[key].proto
                    new = keyboard_step(rnd, int(s.slider_value(key)), int(w.min), int(w.max))
                    s.set_slider(key, new)
                    r = await s.rerun()
                    record(res, action, r, WS_CAPTIONS[which].format(t=new))
                    shared_t = new
                    actions += 1
                if time.monotonic() >= deadline or actions >= args.max_actions:
                    break
                which, key = ("denoise", "den_t") if which == "forward" else ("forward", "fwd_t")
                action = f"to_{which}"
                first = which == "denoise" and "den_t" not in s.widgets
                r = await s.rerun(page=which)
                record(res, f"{action}{' (1st)' if first else ''}", r, WS_CAPTIONS[which].format(t=shared_t))
                if key in s.widgets:
                    s.set_slider(key, shared_t)  # what a browser's slider shows now: the server moved it
                actions += 1
    except Exception as exc:  # one error ends this student's session; the others go on
        res.error(i, action, exc)
    return actions


async def slider_student(i: int, url: str, deadline: float, args, res: Results) -> int:
    """Move Denoise's t slider until ``deadline`` (monotonic); returns the steps done. Errors go to ``res``."""
    rnd = random.Random(2000 + i)
    steps, action = 0, "open"
    try:
        async with StreamlitSession(url, timeout=WS_TIMEOUT_S, keep_alive=True) as s:
            r = await s.open("denoise")
            res.ok("open denoise", r.seconds)
            action = "denoise_step"
            while time.monotonic() < deadline:
                await asyncio.sleep(rnd.uniform(args.think_min, args.think_max))
                w = s.widgets["den_t"].proto
                new = keyboard_step(rnd, int(s.slider_value("den_t")), int(w.min), int(w.max))
                s.set_slider("den_t", new)
                r = await s.rerun()
                record(res, action, r, WS_CAPTIONS["denoise"].format(t=new))
                steps += 1
    except Exception as exc:  # one error ends this student's session; the others go on
        res.error(i, action, exc)
    return steps


async def arrive(args, res: Results, cpu: CpuSplit, student_at) -> dict:
    """``args.sessions`` students arriving over ``args.ramp`` s, acting until ``args.seconds`` after the first.

    ``student_at(i, deadline)``: student i's coroutine, returning its number of actions. The CPU split and
    ``res.t0`` (:meth:`Results.after` counts from it) start with the first student. Returns the run's summary:
    ``actions``, ``wall_s`` and ``cpu``."""
    cpu.start()
    t0 = res.t0 = time.monotonic()
    deadline = t0 + args.seconds
    tasks = []
    for i in range(args.sessions):
        tasks.append(asyncio.create_task(student_at(i, deadline)))
        await asyncio.sleep(args.ramp / max(args.sessions, 1))  # students arrive over the ramp
    done = await asyncio.gather(*tasks)
    return {"actions": sum(done), "wall_s": time.monotonic() - t0, "cpu": cpu.stop()}


def add_media_arg(ap: argparse.ArgumentParser) -> None:
    """``--media``: how :func:`ws_student` fetches pictures (load.py, failover.py and soak.py all take it)."""
    ap.add_argument(
        "--media",
        choices=["keep-alive", "close"],
        default="keep-alive",
        help="ws clients fetch pictures over up to 6 kept-alive connections, as a browser does, or a new one each",
    )


def add_slider_args(ap: argparse.ArgumentParser) -> None:
    """``--students``, ``--think-min`` and ``--think-max`` of :func:`slider_student` (bomb, fairness, hostile)."""
    ap.add_argument("--students", type=int, default=6, help="other students moving Denoise's t slider")
    ap.add_argument("--think-min", type=float, default=1.0, help="seconds between a student's steps, at least")
    ap.add_argument("--think-max", type=float, default=3.0, help="... and at most")
