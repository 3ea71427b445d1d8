"""The guided tour: a few steps, each bound to a widget of the app, shown once per browser session.

Built from Streamlit alone (no network fetch): a small panel at the top of the page says what the step is about,
the widget it is bound to gets an outline (CSS on the ``st-key-<key>`` class Streamlit gives a keyed widget), and
**Next** goes to the step's page when it is on another one. **End the tour** (or **No thanks** on the offer)
dismisses it, and so does finishing it or finding one's own way to another page first.

"Shown once" outlives the session: once seen, the browser gets a cookie (:data:`COOKIE`, a year, this site only,
set by a two-line script that carries no user data), and a reload or a new tab reads it back through
``st.context.cookies``, so a learner is not offered the tour again. Clearing cookies brings it back.

State in ``st.session_state``: :data:`STEP_KEY` (the step shown, or absent while the tour is not running),
:data:`SEEN_KEY` (True once the tour was offered, taken or dismissed, or the cookie says so) and
:data:`WROTE_KEY` (the cookie was sent in this session).
"""

from __future__ import annotations

from dataclasses import dataclass

import streamlit as st

STEP_KEY = "tour_step"
SEEN_KEY = "tour_seen"
WROTE_KEY = "tour_cookie_sent"
COOKIE = "diffusion_lens_tour"
COOKIE_JS = f"<script>document.cookie = '{COOKIE}=seen; max-age=31536000; path=/; SameSite=Lax';</script>"


@dataclass(frozen=True)
class Step:
    page: str  # the page file (as in st.Page), where the widget is
    url: str  # the page's url_path ("" for the default page)
    widget: str  # the widget's key: its element gets the outline
    title: str
    text: str


STEPS = (
    Step(
        "views/start.py",
        "",
        "sample_name",
        "Your photo",
        "Every page works on the photo chosen here, in the sidebar. Pick another sample, or upload your own.",
    ),
    Step(
        "views/forward.py",
        "forward",
        "fwd_t",
        "Drown it in noise",
        "Drag the outlined slider: t is how many steps of noise the photo has had. Press Play to watch it all.",
    ),
    Step(
        "views/denoise.py",
        "denoise",
        "den_t",
        "The network's guess",
        "At the t you choose here, the network guesses the noise; removing the guess gives its idea of the photo.",
    ),
    Step(
        "views/trajectory.py",
        "trajectory",
        "traj_go",
        "Back from noise",
        "Press Run: the sampler asks the network again and again, and you can scrub through every step.",
    ),
    Step(
        "views/trajectory.py",
        "trajectory",
        "words",
        "Words",
        "Lost in a word (ᾱ, ε̂, PSNR)? The outlined drawer in the sidebar explains every term in plain words.",
    ),
)

CSS = """<style>
.st-key-{key} {{ outline: 3px solid #ff8c00 !important; outline-offset: 4px; border-radius: 0.5rem; }}
</style>"""


# The step's widget may be far below the fold (the Words drawer sits at the foot of a long sidebar, 1,694 px below a
# 900-px window's): scroll it into the middle of its scroller, once it is drawn, unless it is already in view. The
# script carries the key only; it runs when the step changes (a new script), not on every rerun of one step.
SCROLL_JS = """<script>
(() => {{
  const until = Date.now() + 15000;
  const look = () => {{
    const el = document.querySelector(".st-key-{key}");
    if (!el || !el.getBoundingClientRect().height) {{ if (Date.now() < until) setTimeout(look, 200); return; }}
    const r = el.getBoundingClientRect();
    if (r.top < 0 || r.bottom > window.innerHeight) el.scrollIntoView({{block: "center"}});
  }};
  look();
}})();
</script>"""


def running() -> bool:
    return STEP_KEY in st.session_state


def _start() -> None:
    st.session_state[STEP_KEY] = 0
    st.session_state[SEEN_KEY] = True


def _dismiss() -> None:
    st.session_state.pop(STEP_KEY, None)
    st.session_state[SEEN_KEY] = True


def _cookie_says_seen() -> bool:
    """Whether this browser saw the tour in an earlier session (no cookies where there is no browser, as in AppTest)."""
    return st.context.cookies.get(COOKIE) == "seen"


def _read_cookie() -> None:
    """A browser that saw the tour in an earlier session has seen it in this one too."""
    if not st.session_state.get(SEEN_KEY) and _cookie_says_seen():
        st.session_state[SEEN_KEY] = st.session_state[WROTE_KEY] = True


def _write_cookie() -> None:
    """Once this session has seen the tour (and it is not running), tell the browser, once."""
    if st.session_state.get(SEEN_KEY) and not st.session_state.get(WROTE_KEY):
        st.session_state[WROTE_KEY] = True
        st.html(COOKIE_JS, unsafe_allow_javascript=True)  # a static script: nothing to see


def offer() -> None:
    """On the Start page: offer the tour once per session (until taken or dismissed, or another page was seen)."""
    if st.session_state.get(SEEN_KEY) or running():
        return
    with st.container(border=True, key="tour_offer"):
        st.markdown("**New here?** A five-step tour shows where everything is (about a minute).")
        a, b, _ = st.columns([1, 1, 3])
        a.button("Take the tour", key="tour_take", on_click=_start, type="primary", icon=":material/tour:")
        b.button("No thanks", key="tour_no", on_click=_dismiss)


def render(url_path: str) -> None:
    """The current step's panel and outline (call once per run from the entry, before the page, inside a container
    drawn on every run: what it draws comes and goes). A first visit to any page other than Start counts as seen:
    the offer is made on the Start page only."""
    _read_cookie()
    if not running():
        if url_path not in ("", "start"):
            st.session_state[SEEN_KEY] = True
        _write_cookie()
        return
    i = min(int(st.session_state[STEP_KEY]), len(STEPS) - 1)
    step = STEPS[i]
    here = url_path == step.url or (step.url == "" and url_path == "start")
    st.html(CSS.format(key=step.widget))
    if here:
        st.html(SCROLL_JS.format(key=step.widget), unsafe_allow_javascript=True)
    with st.container(border=True, key="tour_panel"):
        st.markdown(f"**Tour {i + 1} of {len(STEPS)}: {step.title}.** {step.text}")
        if not here:  # the learner went elsewhere during the tour: the step's widget is on its own page
            st.page_link(step.page, label="Go to this step's page", icon=":material/arrow_outward:")
        a, b, c, _ = st.columns([1, 1, 1, 3])
        back = a.button("Back", key="tour_back", disabled=i == 0, icon=":material/arrow_back:")
        last = i == len(STEPS) - 1
        nxt = b.button("Done" if last else "Next", key="tour_next", type="primary",
                       icon=":material/check:" if last else ":material/arrow_forward:")  # fmt: skip
        c.button("End the tour", key="tour_end", on_click=_dismiss, icon=":material/close:")
    if back or nxt:
        if nxt and last:
            _dismiss()
            st.rerun()
        st.session_state[STEP_KEY] = i + (1 if nxt else -1)
        target = STEPS[st.session_state[STEP_KEY]]
        if target.url != step.url:
            st.switch_page(target.page)
        st.rerun()
