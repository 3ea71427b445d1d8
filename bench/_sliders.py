"""The other students of bench/bomb.py and bench/fairness.py: each opens "Denoise one step" (one forward pass per
step, through the inference queue) and moves its t slider with the keyboard, with think time between steps.
Their step latency (``denoise_step``: request -> script finished -> pictures fetched; ``denoise_step x_t``: its
x_t picture in) is what a noisy neighbour must not spoil."""

from __future__ import annotations

import asyncio
import random
import time

from load import WS_CAPTIONS, WS_TIMEOUT_S, Results, _keyboard_step, record
from ws_client import StreamlitSession

STEP_ACTIONS = ["denoise_step", "denoise_step x_t"]


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
                new = _keyboard_step(rnd, int(s.slider_value("den_t")), int(w.min), int(w.max))
                s.set_slider("den_t", new)
                r = await s.rerun()
                record(res, action, r, WS_CAPTIONS["denoise"].format(t=new))
                steps += 1
    except Exception as exc:  # one error ends this student's session; the others go on
        res.error(i, action, exc)
    return steps


def add_slider_args(ap) -> None:
    ap.add_argument("--students", type=int, default=6, help="other students moving Denoise's t slider")
    ap.add_argument("--think-min", type=float, default=1.0, help="seconds between a student's steps, at least")
    ap.add_argument("--think-max", type=float, default=3.0, help="... and at most")
