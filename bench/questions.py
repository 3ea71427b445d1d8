"""The figures of issue 34 ("Questions students ask"): copies, the memorisation curve, guidance, inpainting, sliders.

    .venv/bin/python bench/questions.py [--noises 100] [--steps 25] [--sizes 8 64 512 2000] [--repeats 5]
                                        [--threads N] [--res 64] [--only copy,curve,guidance,inpaint,sliders]

* **copy**: the exact denoiser of the 5,000-image Fashion subset and the bundled Fashion network, DDIM from the
  same ``--noises`` start noises; the share of near-copies (nearest training image of the subset closer than 1/3 of
  the median test-image distance, :mod:`model.evaluation.memorise`) for each, and the seconds of one single-noise run
  (what the page does) and of the whole batch.
* **curve**: the particle memorisation curve (:mod:`model.particles.memorise`): near-copy share of the exact
  denoiser, the small network and fresh data at each ``--sizes``, and each training's seconds.
* **guidance**: MMD^2 to the true tilted target for CFG (DDIM, DDPM), interval guidance and autoguidance at
  gamma = 2, 4, 6 (:mod:`model.particles.tilted`), and to the plain class.
* **inpaint**: PSNR inside a centred rectangle (30-70 %) for RePaint with the bundled photo model (DDPM, 25 steps)
  against a blur fill, on the four sample photos at ``--res`` px, and the seconds per fill.
* **sliders**: the page's rerun (``streamlit.testing.v1.AppTest``) when a slider moves at ``--res`` px: the hole,
  the step of a finished fill, and the editing t (once its sweep over t = 100 .. 900 has run).

The load average is printed with the figures; measure on a quiet machine (a few minutes).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import torch

from harness import timing
from model.diffusion import inpaint
from model.diffusion.schedule import make_schedule
from model.evaluation import memorise
from model.images.decode import decode_image
from model.images.tensors import picture_to_x0
from model.nets.network import load_model
from model.particles import memorise as particle_copies
from model.particles import tilted
from model.serving import process

ROOT = Path(__file__).resolve().parent.parent
APP = str(ROOT / "app" / "streamlit_app.py")
PHOTOS = ("astronaut", "coffee", "chelsea", "rocket")
BOX = (0.3, 0.3, 0.7, 0.7)


def bench_copy(noises: int, steps: int) -> None:
    data = memorise.load_subset()
    net = load_model("fashion")
    s = net.schedule
    threshold = memorise.near_copy_threshold(data)
    models = {
        "exact denoiser": memorise.empirical_eps_model(s, data),
        "Fashion network": lambda x, t: net.predict(x, t),
    }
    x_T = torch.randn(noises, 1, 32, 32, generator=torch.Generator().manual_seed(0))
    single = memorise.copy_test(s, data, models, x_T[:1], steps)
    batch = memorise.copy_test(s, data, models, x_T, steps)
    print(f"\nDoes it copy? {len(data)} training images, {noises} noises, DDIM {steps} steps, near-copy below "
          f"{threshold:.2f} (1/3 of the median test-image distance {3 * threshold:.2f})")  # fmt: skip
    print(f"  {'':18s}{'near-copies':>12s}{'median dist':>12s}{'s, 1 noise':>12s}{f's, {noises} noises':>16s}")
    for name in models:
        d = batch.nearest_distance[name]
        share = float((d < threshold).double().mean())
        print(f"  {name:18s}{share:12.0%}{float(d.median()):12.2f}{single.seconds[name]:12.2f}"
              f"{batch.seconds[name]:16.2f}")  # fmt: skip


def bench_curve(sizes: list[int]) -> None:
    s = make_schedule("linear")
    print(f"\nParticle memorisation curve: moons, 400 samples from the same noise, radius {particle_copies.RADIUS}")
    print(f"  {'n':>6s}{'exact':>8s}{'network':>9s}{'chance':>8s}{'train s':>9s}")
    for n in sizes:
        p, _ = particle_copies.measure(s, particle_copies.CopySettings(n=n))
        print(f"  {n:6d}{p.exact:8.0%}{p.network:9.0%}{p.chance:8.0%}{p.train_seconds:9.1f}")


def bench_guidance() -> None:
    s, m = make_schedule("linear"), tilted.two_classes()
    methods = [k for k in tilted.METHODS if k != "target"]
    print("\nGuidance on a two-class mixture with exact scores: MMD^2 to the true tilted target (to the plain class)")
    print("  " + f"{'gamma':>6s}" + "".join(f"{k:>24s}" for k in methods))
    for gamma in (2.0, 4.0, 6.0):
        r = tilted.compare(s, m, tilted.GuidanceSettings(gamma=gamma))
        cells = "".join(f"{f'{r.to_target[k]:.4f} ({r.to_class[k]:.4f})':>24s}" for k in methods)
        print(f"  {gamma:6.1f}{cells}")


def bench_inpaint(res: int) -> None:
    net = load_model(None)
    known = inpaint.rectangle_mask(res, *BOX)
    print(f"\nInpainting at {res} px, hole {BOX} (16 % of the photo), RePaint DDPM 25 steps: PSNR in the hole (dB)")
    print(f"  {'photo':12s}{'RePaint':>9s}{'blur fill':>11s}{'seconds':>9s}")
    for name in PHOTOS:
        x0 = picture_to_x0(decode_image((ROOT / "assets" / f"{name}.jpg").read_bytes()), res)
        t0 = time.perf_counter()
        with torch.inference_mode():
            *_, last = inpaint.repaint(net.predict, net.schedule, x0, known, 25, "ddpm",
                                       generator=torch.Generator().manual_seed(0))  # fmt: skip
        secs = time.perf_counter() - t0
        fill = inpaint.psnr_in_hole(last.x_prev, x0, known)
        blur = inpaint.psnr_in_hole(inpaint.blur_fill(x0, known), x0, known)
        print(f"  {name:12s}{fill:9.2f}{blur:11.2f}{secs:9.2f}")


def _move(at, kind: str, key: str, value) -> float:
    getattr(at, kind)(key=key).set_value(value)
    t0 = time.perf_counter()
    at.run()
    if at.exception:
        raise SystemExit(f"error: the page failed at {key} = {value}: {at.exception[0].value}")
    return (time.perf_counter() - t0) * 1000


def bench_sliders(res: int, repeats: int) -> None:
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(APP, default_timeout=600)
    at.session_state["resolution"] = res
    at.session_state["qs_which"] = "Can it fix my photo?"
    at.session_state["qs_steps"] = 25
    at.switch_page("views/questions.py")
    at.run()
    at.button(key="qs_fill").click().run()
    results = {"step of a finished fill": [_move(at, "slider", "qs_step", 1 + (7 * i) % 25) for i in range(repeats)]}
    at.button(key="qs_sweep").click().run()  # the editing sweep: one run from every t, then the slider picks
    results["editing t (after its sweep)"] = [_move(at, "select_slider", "qs_t_edit", 100 + 100 * (i % 9))
                                              for i in range(repeats)]  # fmt: skip
    results["hole (before a fill)"] = [_move(at, "slider", "qs_x", (20 + i, 60 + i)) for i in range(repeats)]
    print(f"\nThe inpainting page's rerun when a slider moves, {res} px (AppTest: an upper bound on a server's run)")
    timing.print_table(results, 32, lambda name, med: "  (<= 300 ms)" if med <= 300 else "  (over 300 ms)")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    timing.add_common_args(ap)
    ap.add_argument("--noises", type=int, default=100)
    ap.add_argument("--steps", type=int, default=25)
    ap.add_argument("--sizes", type=int, nargs="+", default=[8, 64, 512, 2000])
    ap.add_argument("--only", default="copy,curve,guidance,inpaint,sliders")
    a = ap.parse_args(argv)
    timing.quiet_streamlit()
    process.configure_allocator()  # the app's allocator setting and thread count
    threads = process.configure_threads(a.threads)
    load = os.getloadavg()
    print(f"Questions students ask (issue 34): {torch.get_num_threads()} torch thread(s) (configured {threads}), "
          f"load average {load[0]:.2f} / {load[1]:.2f} / {load[2]:.2f} on {os.cpu_count()} CPUs")  # fmt: skip
    parts = set(a.only.split(","))
    if "copy" in parts:
        bench_copy(a.noises, a.steps)
    if "curve" in parts:
        bench_curve(a.sizes)
    if "guidance" in parts:
        bench_guidance()
    if "inpaint" in parts:
        bench_inpaint(a.res)
    if "sliders" in parts:
        bench_sliders(a.res, a.repeats)
    return 0


if __name__ == "__main__":
    sys.exit(main())
