"""The Particle lab's and the Sampler race's charts as Chromium draws them (issue 36):

* item 5, dark theme: on Streamlit's dark background the data points x^(i) were drawn black and vanished on the
  lab's field and paths charts and the race's paths chart. Every trace of those charts, in the colour and opacity
  Plotly drew it, must stand out from the background the page shows (the data points at 3:1, the rest at 2:1);
* item 11, a 400-px phone: the lab's formula stays on the screen, and the race chart's two panel titles and its x
  tick labels do not run into each other.
"""

from __future__ import annotations

import re

import pytest

from .conftest import IDLE

pytestmark = pytest.mark.e2e

MAIN = "[data-testid='stMain']"

# Per chart (by title): the background the chart shows (its paper colour, or the page's where the paper is
# see-through) and, per drawn trace, the WCAG contrast of its colour laid over that background at its opacity
# (markers: fill, or outline where the fill is see-through; lines: stroke).
CONTRAST_JS = """() => {
  const rgba = s => { const m = (s || "").match(/rgba?\\(([^)]+)\\)/); if (!m) return null;
    const p = m[1].split(",").map(Number); return [p[0], p[1], p[2], p.length > 3 ? p[3] : 1]; };
  const lum = c => { const l = c.slice(0, 3).map(v => { v /= 255;
    return v <= 0.04045 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); });
    return 0.2126 * l[0] + 0.7152 * l[1] + 0.0722 * l[2]; };
  const over = (c, a, bg) => [0, 1, 2].map(i => a * c[i] + (1 - a) * bg[i]);
  const ratio = (a, b) => { const [h, l] = [lum(a), lum(b)].sort((x, y) => y - x); return (h + 0.05) / (l + 0.05); };
  let pageBg = null;
  for (let e = document.querySelector("[data-testid=stMain]"); e && !pageBg; e = e.parentElement) {
    const c = rgba(getComputedStyle(e).backgroundColor); if (c && c[3] > 0) pageBg = c;
  }
  pageBg = pageBg || [255, 255, 255, 1];
  const out = [];
  for (const gd of document.querySelectorAll("[data-testid=stMain] .js-plotly-plot")) {
    const paper = rgba(gd._fullLayout.paper_bgcolor), plot = rgba(gd._fullLayout.plot_bgcolor);
    const bgOf = c => (c && c[3] > 0.5 ? over(c, c[3], pageBg) : pageBg);
    const bg = bgOf(plot && plot[3] > 0.5 ? plot : paper);
    const traces = [];
    gd.querySelectorAll("g.trace.scatter").forEach((g, i) => {
      const t = gd._fullData[i] || {}, op = parseFloat(getComputedStyle(g).opacity || "1");
      const seen = [];
      const pt = g.querySelector("path.point"), ln = g.querySelector("path.js-line");
      if (pt) { const s = getComputedStyle(pt), f = rgba(s.fill), k = rgba(s.stroke);
        const fo = parseFloat(s.fillOpacity || "1") * parseFloat(s.opacity || "1") * op;
        if (f) seen.push(ratio(over(f, f[3] * fo, bg), bg));
        if (k && parseFloat(s.strokeWidth) > 0) seen.push(ratio(over(k, k[3] * op, bg), bg)); }
      if (ln) { const s = getComputedStyle(ln), k = rgba(s.stroke);
        if (k) seen.push(ratio(over(k, k[3] * parseFloat(s.strokeOpacity || "1") * op, bg), bg)); }
      if (seen.length) traces.push({name: t.name || "", contrast: Math.max(...seen)});
    });
    const title = ((gd._fullLayout.title || {}).text || "").replace(/<[^>]+>/g, "");  // Streamlit bolds it
    out.push({title, bg: lum(bg), traces});
  }
  return out;
}"""


def _wait_idle(page) -> None:
    page.wait_for_selector(IDLE, timeout=120_000)


def _dark_page(browser):
    context = browser.new_context(viewport={"width": 1400, "height": 1000}, color_scheme="dark")
    context.set_default_timeout(120_000)
    return context, context.new_page()


def _check(charts: list[dict], wanted: str) -> list[str]:
    found = [c for c in charts if re.search(wanted, c["title"])]
    assert len(found) == 1, (wanted, [(c["title"], c["traces"]) for c in charts])
    (chart,) = found
    assert chart["bg"] < 0.05, f"{wanted}: not on a dark background (luminance {chart['bg']:.2f})"
    assert any(t["name"].startswith("data") for t in chart["traces"]), chart
    bad = []
    for t in chart["traces"]:
        need = 3.0 if t["name"].startswith("data") else 2.0
        if t["contrast"] < need:
            bad.append(f"{wanted}: {t['name'] or 'a trace'} at contrast {t['contrast']:.2f}")
    return bad


def test_particle_and_race_charts_are_readable_on_the_dark_theme(browser, app_url, shot):
    context, page = _dark_page(browser)
    try:
        page.goto(f"{app_url}/particles")
        page.locator(f"{MAIN} .js-plotly-plot").filter(has_text="Paths of the exact denoiser").wait_for()
        _wait_idle(page)
        page.locator(f"{MAIN} .js-plotly-plot").filter(has_text="Exact field at").wait_for()
        charts = page.evaluate(CONTRAST_JS)
        bad = _check(charts, "^Exact field at") + _check(charts, "^Paths of the exact")
        shot(page, "lab-dark")
        page.goto(f"{app_url}/race")
        page.locator(f"{MAIN} .js-plotly-plot").filter(has_text="paths per scheduler").wait_for()
        _wait_idle(page)
        bad += _check(page.evaluate(CONTRAST_JS), "paths per scheduler")
        shot(page, "race-dark")
        assert not bad, bad
    finally:
        context.close()


# The race chart on a phone: its two panel titles apart, and the x tick labels of each panel apart
RACE_PHONE_JS = """() => {
  const box = e => e.getBoundingClientRect(), bad = [];
  const meets = (a, b) => a.left < b.right - 1 && b.left < a.right - 1 && a.top < b.bottom - 1 && b.top < a.bottom - 1;
  const gd = [...document.querySelectorAll("[data-testid=stMain] .js-plotly-plot")]
    .find(c => ((c._fullLayout.title || {}).text || "").replace(/<[^>]+>/g, "").startsWith("The sampler race"));
  if (!gd) return ["no race chart"];
  const notes = [...gd.querySelectorAll(".annotation")];
  if (notes.length !== 2) bad.push(`${notes.length} panel titles`);
  else if (meets(box(notes[0]), box(notes[1]))) bad.push("the panel titles meet");
  const W = document.documentElement.clientWidth;
  for (const n of notes) if (box(n).right > W + 1 || box(n).left < -1) bad.push("a panel title leaves the screen");
  for (const ax of gd.querySelectorAll(".xaxislayer-above")) {
    const ticks = [...ax.querySelectorAll(".xtick text")].map(box).sort((a, b) => a.left - b.left);
    for (let i = 1; i < ticks.length; i++) if (ticks[i].left < ticks[i - 1].right + 2) bad.push("x ticks crammed");
  }
  return bad;
}"""

FORMULA_JS = """() => {
  const W = document.documentElement.clientWidth, bad = [];
  for (const e of document.querySelectorAll("[data-testid=stMain] .katex-display")) {
    const k = e.querySelector(".katex") || e;
    const room = (e.closest("[data-testid=stElementContainer]") || e.parentElement).clientWidth;
    if (k.scrollWidth > room + 2 || k.getBoundingClientRect().right > W + 1) bad.push(k.scrollWidth + " > " + room);
  }
  return bad;
}"""


def test_on_a_phone_the_formula_fits_and_the_race_chart_is_legible(browser, app_url, shot):
    context = browser.new_context(viewport={"width": 400, "height": 850})
    context.set_default_timeout(120_000)
    page = context.new_page()
    try:
        for mode in ("ε-prediction (DDPM)", "flow matching"):
            page.goto(f"{app_url}/particles")
            page.locator(f"{MAIN} .katex-display").first.wait_for()
            _wait_idle(page)
            if mode != "ε-prediction (DDPM)":
                page.get_by_text(mode, exact=True).click()
                page.locator(f"{MAIN} .js-plotly-plot").filter(has_text="σ =").first.wait_for()
                _wait_idle(page)
            assert page.evaluate(FORMULA_JS) == [], mode
        shot(page, "lab-phone")
        page.goto(f"{app_url}/race")
        page.locator(f"{MAIN} .js-plotly-plot").filter(has_text="The sampler race").wait_for()
        _wait_idle(page)
        page.locator(f"{MAIN} .js-plotly-plot").filter(has_text="The sampler race").scroll_into_view_if_needed()
        shot(page, "race-phone")
        assert page.evaluate(RACE_PHONE_JS) == []
    finally:
        context.close()
