"""Diffusion Lens entry point: page config, shared sidebar, the address's settings, and routing. Nothing else."""

from __future__ import annotations

import sys
from pathlib import Path

import pandas  # noqa: F401 -- see below
import plotly.graph_objects  # noqa: F401
import streamlit as st

from app import settings
from app.compute import models
from app.server import drain, janitor
from app.server import stats as server_stats
from app.server.guard import install as refuse_students_clearing_caches
from app.session import state, urlstate, which_model
from app.ui import glossary, present, sidebar, theme_memory, tour

# pandas and plotly are imported whole (above) before any page runs: plotly looks pandas up in sys.modules without
# importing it, and found it half imported while another session's first page was importing it (students saw
# "partially initialized module 'pandas'"); a second session's `import pandas` waits until the first has finished.

# The environment is read once, first (app/settings.py): a value the app cannot use stops start-up with one sentence
# naming the variable and what it accepts, in the console and on the page, before anything else runs.
try:
    settings.current()
except settings.SettingsError as exc:
    print(f"diffusion-lens: {exc}", file=sys.stderr)
    st.error(f"The server cannot start: {exc}")
    st.stop()
# Server policy, set once here at the app's edge (model/ changes no process-wide setting by itself):
# * students' browsers cannot empty the caches every session shares (BackMsg clear_cache; app/server/guard.py);
refuse_students_clearing_caches()
# * the one Serving object every session's model runs through, built once (app/settings.py): torch threads = cores //
#   inference slots, glibc's allocator keeps freed memory, the GIL is handed over every 1 ms (model/serving/process.py);
#   models load with the fastest arithmetic that passes the fidelity guard (DIFFUSION_LENS_PRECISION=fp32 forces
#   fp32); concurrent sessions' passes on the same model and shape run as one batch (model/serving/batching.py)
settings.serving()
janitor.start()  # frees pictures and uploads of sessions Streamlit forgot without shutting down (app/server/janitor.py)
models.warm_up()  # the default model loads in the background at the first request, before anyone needs it
server_stats.start()  # benchmarks only: Streamlit's media store and sessions join the stats file (app/server/stats.py)
drain.install()  # SIGTERM: the long runs finish and the students read that the server restarts (app/server/drain.py)

ROOT = Path(__file__).resolve().parent.parent

# The favicon is a file in the app (a Material icon as favicon is fetched from a web font host, which logs an
# error on every page load in an offline classroom).
st.set_page_config(page_title="Diffusion Lens", page_icon=str(ROOT / "app" / "favicon.png"), layout="wide")
state.init()
# What comes and goes above the page (the restart notice, the model's fall-back sentence and a link's proposal, the
# link's notes, the tour's panel and its cookie script) is drawn inside containers drawn on every run, so the page's
# own elements keep their places from run to run: an element that appears in one run only shifted every element
# below it, and a fragment then left a stale copy of its widgets on screen (a second Forward slider after Play).
with st.container():
    drain.notice()  # while the server drains for a restart: one sentence at the top of every page

# Material Symbols ship with Streamlit's frontend, so the icons show on any machine
# (emoji need a system emoji font, which a bare Linux classroom PC may lack).
PAGES = [
    st.Page("views/start.py", title="Start here", icon=":material/flag:", url_path="start", default=True),
    st.Page("views/forward.py", title="Forward process", icon=":material/blur_on:", url_path="forward"),
    st.Page("views/denoise.py", title="Denoise one step", icon=":material/auto_fix_high:", url_path="denoise"),
    st.Page("views/trajectory.py", title="Reverse trajectory", icon=":material/fast_rewind:", url_path="trajectory"),
    st.Page("views/inside.py", title="Inside the network", icon=":material/hub:", url_path="inside"),
    st.Page("views/objective.py", title="Training objective", icon=":material/functions:", url_path="objective"),
    st.Page("views/particles.py", title="Particle lab", icon=":material/scatter_plot:", url_path="particles"),
    st.Page("views/race.py", title="Sampler race", icon=":material/speed:", url_path="race"),
    st.Page("views/questions.py", title="Questions students ask", icon=":material/help:", url_path="questions"),
    st.Page("views/words.py", title="Words to pictures", icon=":material/palette:", url_path="words"),
    st.Page("views/about.py", title="About the ideas", icon=":material/menu_book:", url_path="about"),
    st.Page("views/glossary.py", title="Words (glossary)", icon=":material/dictionary:", url_path="glossary"),
]

nav = st.navigation(PAGES)
urlstate.check_page(nav, PAGES)  # an address naming no page gets a sentence (Streamlit shows the default silently)
urlstate.restore(nav.url_path)  # first run of a session: a link's (or a reload's) settings, before any widget
with st.container():
    which_model.settle()  # the session's model: a link's proposed Hub model, a fall back if it cannot load
sidebar.render(nav.url_path)  # the photo picker only on pages that use a photo
glossary.sidebar()  # the "Words used here" drawer on every page (app/ui/glossary.py)
present.apply()
present.phone_nav(PAGES)
with st.container():
    for note in urlstate.take_notes():
        st.warning(note)
    tour.render(nav.url_path)  # the guided tour's current step, while it runs (app/ui/tour.py)
    theme_memory.keep(["", *(p.url_path for p in PAGES)])  # a chosen theme survives a reload of any page
# The address follows every change. Written before the page (a page that calls st.stop() ends the run, and
# nothing after it reaches the browser) and again after it (what the page itself changed, e.g. a finished run).
urlstate.write(nav.url_path)
nav.run()
urlstate.write(nav.url_path)
