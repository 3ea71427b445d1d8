"""From slider release to picture painted, in a real browser.

Starts `streamlit run` on a free port on 127.0.0.1 and one headless Chromium page
(Playwright, Debian's /usr/bin/chromium). On the Forward process page (or ``--page
denoise``) it sets the working resolution, then moves the t slider ``--moves`` times
with the keyboard (ArrowRight: every move asks for a new t, so nothing comes from the
cache). Each move is timed inside the page, from the key's ``keyup`` (the release) to
the first animation frame after the new x_t picture has loaded (two
``requestAnimationFrame`` callbacks: the frame that shows it has been produced).

Prints p50/p95 per resolution. Targets (issue 6): p50 <= 300 ms, p95 <= 600 ms.

    .venv/bin/python bench/browser_latency.py [--res 64 128] [--moves 30] [--page forward]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

from harness.server import CHROMIUM, CHROMIUM_ARGS, IDLE, OUT, Server, load_average, server_env
from harness.stats import percentile

CAPTIONS = {"forward": "x_t at t = {t}", "denoise": "x_t: the input at t = {t}"}
SLIDERS = {"forward": "fwd_t", "denoise": "den_t"}
RESOLUTIONS = (32, 48, 64, 96, 128, 160, 192, 224, 256)

# Installed once per page: remembers when the last key was released.
INIT_JS = "document.addEventListener('keyup', () => { window.__keyup = performance.now(); }, true);"

# Resolves with ms from the last keyup to the frame after the captioned picture has loaded.
PAINTED_JS = """(caption) => new Promise((resolve) => {
    const check = () => {
        for (const cap of document.querySelectorAll("[data-testid='stImageCaption']")) {
            if (cap.innerText.trim() !== caption) continue;
            const img = cap.closest("[data-testid='stImage']").querySelector("img");
            if (img && img.complete && img.naturalWidth > 0) {
                requestAnimationFrame(() => requestAnimationFrame(() => resolve(performance.now() - window.__keyup)));
                return;
            }
        }
        requestAnimationFrame(check);
    };
    check();
})"""


def set_resolution(page, res: int) -> None:
    thumb = page.locator(".st-key-resolution input[type=range]")
    for _ in range(len(RESOLUTIONS)):
        now = RESOLUTIONS[int(thumb.input_value())]
        if now == res:
            return
        thumb.focus()
        thumb.press("ArrowRight" if now < res else "ArrowLeft")
        page.wait_for_timeout(300)
        page.wait_for_selector(IDLE)
    raise RuntimeError(f"could not set the resolution to {res}")


def measure(page, which: str, res: int, moves: int) -> list[float]:
    set_resolution(page, res)
    page.get_by_test_id("stSidebar").get_by_text(f"{res}×{res}").first.wait_for()
    page.wait_for_selector(IDLE)
    thumb = page.locator(f".st-key-{SLIDERS[which]} input[type=range]")
    times = []
    for _ in range(moves):
        thumb.focus()
        page.keyboard.down("ArrowRight")
        page.keyboard.up("ArrowRight")  # the release: t0 in the page
        t = int(thumb.input_value())
        times.append(page.evaluate(PAINTED_JS, CAPTIONS[which].format(t=t)) / 1000.0)
        page.wait_for_selector(IDLE)
        page.wait_for_timeout(200)
    return times


def main() -> None:
    ap = argparse.ArgumentParser(description="slider release -> picture painted, in Chromium")
    ap.add_argument("--res", type=int, nargs="+", default=[64, 128])
    ap.add_argument("--moves", type=int, default=30)
    ap.add_argument("--page", choices=["forward", "denoise"], default="forward")
    ap.add_argument("--model", default="auto", help="auto | tiny | photo-random | a model folder")
    ap.add_argument("--env", action="append", default=[], help="extra server env, NAME=VALUE (repeatable)")
    args = ap.parse_args()

    from playwright.sync_api import sync_playwright

    OUT.mkdir(parents=True, exist_ok=True)
    env, model_label = server_env(args.model, args.env)
    print(f"browser latency: {args.page} page, {args.moves} moves per resolution, model: {model_label}")
    print(f"load average before: {load_average()}")
    results = {}
    with Server(env) as server, sync_playwright() as pw:
        server.wait_healthy()
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.set_default_timeout(120_000)
        page.add_init_script(INIT_JS)
        page.goto(f"{server.url}/{'' if args.page == 'forward' else args.page}")
        page.wait_for_selector(IDLE)
        page.locator(f".st-key-{SLIDERS[args.page]} input[type=range]").wait_for()
        page.wait_for_timeout(500)
        for res in args.res:
            start = time.perf_counter()
            times = measure(page, args.page, res, args.moves)
            results[res] = {
                "n": len(times),
                "p50_ms": statistics.median(times) * 1000,
                "p95_ms": percentile(times, 0.95) * 1000,
                "max_ms": max(times) * 1000,
                "wall_s": time.perf_counter() - start,
            }
        browser.close()
    print(f"load average after: {load_average()}")
    print(f"\n{'res':>5}{'moves':>7}{'p50 ms':>9}{'p95 ms':>9}{'max ms':>9}")
    for res, r in results.items():
        print(f"{res:>5}{r['n']:>7}{r['p50_ms']:>9.0f}{r['p95_ms']:>9.0f}{r['max_ms']:>9.0f}")
    ok = all(r["p50_ms"] <= 300 and r["p95_ms"] <= 600 for r in results.values())
    print("targets p50 <= 300 ms, p95 <= 600 ms:", "PASS" if ok else "MISS")
    stamp = time.strftime("%Y%m%d-%H%M%S")
    (OUT / f"browser-latency-{stamp}.json").write_text(
        json.dumps({"args": vars(args), "model": model_label, "results": results}, indent=2)
    )


if __name__ == "__main__":
    main()
