"""bench/load.py's browser student (``--client browser``): one headless Chromium, one context per student.

Latency is from the key press to the picture loaded in the page. On this 2-core machine a
browser lays out and paints every page, so 30 of them measure Chromium more than the
server; bench/load.py's default client is the websocket one (bench/harness/students.py).
"""

from __future__ import annotations

import asyncio
import random
import time

from harness.measure import CpuSplit, RssSampler
from harness.server import CHROMIUM, CHROMIUM_ARGS, IDLE, OUT
from harness.students import ACTION_TIMEOUT_MS, arrive

FILE_INPUT = "[data-testid='stSidebar'] [data-testid='stFileUploader'] input[type=file]"
PAGES = {"forward": ("fwd_t", "x_t at t = {t}"), "denoise": ("den_t", "x_t: the input at t = {t}")}
NAV = {"forward": "Forward process", "denoise": "Denoise one step"}


async def wait_painted(page, caption: str) -> None:
    """Wait until the image captioned exactly ``caption`` is in the page and its bitmap is loaded."""
    await page.wait_for_function(
        """(caption) => {
            for (const cap of document.querySelectorAll("[data-testid='stImageCaption']")) {
                if (cap.innerText.trim() !== caption) continue;
                const img = cap.closest("[data-testid='stImage']").querySelector("img");
                if (img && img.complete && img.naturalWidth > 0) return true;
            }
            return false;
        }""",
        arg=caption,
        timeout=ACTION_TIMEOUT_MS,
        polling="raf",  # checked once per animation frame: "painted", not just "in the DOM"
    )


async def check_page(page) -> None:
    if await page.locator("[data-testid='stException']").count():
        raise RuntimeError("an exception box is shown in the page")
    if await page.locator("text=Connection error").count():
        raise RuntimeError("the page lost its connection to the server")


async def slider_step(page, which: str, rnd: random.Random) -> float:
    key, caption = PAGES[which]
    thumb = page.locator(f".st-key-{key} input[type=range]")
    old = int(await thumb.input_value())
    lo, hi = int(await thumb.get_attribute("min")), int(await thumb.get_attribute("max"))
    press = rnd.choice(["ArrowRight", "ArrowRight", "ArrowLeft", "PageUp", "PageDown"])
    if old >= hi - 100:
        press = "PageDown"
    elif old <= lo + 100:
        press = "PageUp"
    await thumb.focus()
    start = time.perf_counter()
    await thumb.press(press)
    new = int(await thumb.input_value())
    if new == old:
        raise RuntimeError(f"the slider did not move ({press} at {old})")
    await wait_painted(page, caption.format(t=new))
    elapsed = time.perf_counter() - start
    await page.wait_for_selector(IDLE, timeout=ACTION_TIMEOUT_MS)
    return elapsed


async def student(i: int, browser, url: str, photo: tuple[str, bytes], deadline: float, args, res) -> int:
    rnd = random.Random(1000 + i)
    context = await browser.new_context(viewport={"width": 1100, "height": 900})
    context.set_default_timeout(ACTION_TIMEOUT_MS)
    page = await context.new_page()
    page.on("pageerror", lambda _exc: setattr(res, "js_errors", res.js_errors + 1))
    actions = 0
    action = "open"
    try:
        start = time.perf_counter()
        await page.goto(f"{url}/forward")  # "/" is Start here; the classroom works on Forward
        await page.wait_for_selector(IDLE)
        await wait_painted(page, "x_t at t = 250")
        res.ok("open", time.perf_counter() - start)

        action = "upload"
        await page.get_by_test_id("stSidebar").get_by_text("Upload", exact=True).click()
        await page.wait_for_selector(FILE_INPUT, state="attached")
        await page.wait_for_selector(IDLE)
        name, data = photo
        start = time.perf_counter()
        await page.set_input_files(FILE_INPUT, files=[{"name": name, "mimeType": "image/jpeg", "buffer": data}])
        await page.get_by_test_id("stSidebar").get_by_text(f"x₀: {name}").wait_for()
        await page.wait_for_selector(IDLE)  # the rerun with the new photo has finished ...
        await wait_painted(page, "x_t at t = 250")  # ... and its x_t picture is loaded
        res.ok("upload", time.perf_counter() - start)
        await page.wait_for_selector(IDLE)
        actions = 2

        which = "forward"
        while time.monotonic() < deadline and actions < args.max_actions:
            for _ in range(rnd.randint(3, 6)):
                if time.monotonic() >= deadline or actions >= args.max_actions:
                    break
                await asyncio.sleep(rnd.uniform(args.think_min, args.think_max))
                action = f"{'fwd' if which == 'forward' else 'denoise'}_step"
                res.ok(action, await slider_step(page, which, rnd))
                await check_page(page)
                actions += 1
            if time.monotonic() >= deadline or actions >= args.max_actions:
                break
            which = "denoise" if which == "forward" else "forward"
            action = "page_switch"
            key, caption = PAGES[which]
            start = time.perf_counter()
            await page.get_by_test_id("stSidebarNav").get_by_text(NAV[which], exact=True).click()
            thumb = page.locator(f".st-key-{key} input[type=range]")
            await thumb.wait_for()
            t_now = int(await thumb.input_value())
            await wait_painted(page, caption.format(t=t_now))
            res.ok("page_switch", time.perf_counter() - start)
            await page.wait_for_selector(IDLE)
            actions += 1
    except Exception as exc:  # one error ends this student's session; the others go on
        res.error(i, action, exc)
        try:
            await page.screenshot(path=str(OUT / f"load-error-student{i:02d}.png"))
        except Exception:
            pass
    finally:
        await context.close()
    return actions


async def classroom(url: str, args, res, sampler: RssSampler, cpu: CpuSplit, photos: list[tuple[str, bytes]]) -> dict:
    """``args.sessions`` students in one headless Chromium, one browser context each; ``res``: :class:`harness.students.Results`."""
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            sampler.start()
            # The teacher opens the app once before class: imports and caches warm up off the clock.
            t0 = time.monotonic()
            context = await browser.new_context()
            page = await context.new_page()
            await page.goto(f"{url}/forward")
            await wait_painted(page, "x_t at t = 250")
            await context.close()
            print(f"warm-up (first page load after server start): {time.monotonic() - t0:.1f} s")
            return await arrive(
                args, res, cpu, lambda i, deadline: student(i, browser, url, photos[i], deadline, args, res)
            )
        finally:
            await browser.close()
