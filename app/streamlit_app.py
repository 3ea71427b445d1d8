"""Diffusion Lens entry point: page config, shared sidebar, and routing. Nothing else."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import streamlit as st  # noqa: E402

from app import sidebar, state  # noqa: E402

st.set_page_config(page_title="Diffusion Lens", page_icon="🔬", layout="wide")
state.init()

PAGES = [
    st.Page("views/forward.py", title="Forward process", icon="🌫️", url_path="forward", default=True),
    st.Page("views/denoise.py", title="Denoise one step", icon="🧽", url_path="denoise"),
    st.Page("views/trajectory.py", title="Reverse trajectory", icon="⏪", url_path="trajectory"),
    st.Page("views/objective.py", title="Training objective", icon="🎯", url_path="objective"),
    st.Page("views/about.py", title="About the ideas", icon="📖", url_path="about"),
]

nav = st.navigation(PAGES)
sidebar.render()
nav.run()
