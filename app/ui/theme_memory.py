"""A chosen theme (Light or Dark, from the app menu) survives reloading any page of the app.

Why it did not: Streamlit's frontend (1.67) keeps the chosen theme in the browser's ``localStorage`` under a key
that holds the address the app was *loaded* at, ``stActiveTheme-<pathname>-v2``. With ``st.navigation`` every
page has its own address, so a theme chosen after opening ``/`` is saved under ``/``, and reloading ``/forward``
reads ``stActiveTheme-/forward-v2``, finds nothing, and shows the default theme. That is Streamlit's, not ours
(its key is made once, when its script loads); what is ours is keeping the pages in step: a small script copies the
theme saved under the address this tab was loaded at to the key of every page of the app, once a second (the
choice is made in Streamlit's own menu, which tells the app nothing). No data leaves the browser.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

import streamlit as st

KEY_VERSION = 2  # Streamlit's CACHED_THEME_VERSION in 1.67 (its key: stActiveTheme-<pathname>-v2)

SCRIPT = """<script>
(() => {{
  if (window.__dlThemeMemory) return;
  window.__dlThemeMemory = true;
  const nav = performance.getEntriesByType("navigation")[0];
  const loaded = new URL(nav ? nav.name : location.href).pathname;  // the key Streamlit reads and writes
  const base = loaded.replace(/[^/]*$/, "");
  const key = (path) => `stActiveTheme-${{path}}-v{version}`;
  const pages = {pages}.map((p) => base + p);
  const sync = () => {{
    const chosen = localStorage.getItem(key(loaded));
    for (const p of pages) {{
      if (p === loaded || localStorage.getItem(key(p)) === chosen) continue;
      if (chosen === null) localStorage.removeItem(key(p)); else localStorage.setItem(key(p), chosen);
    }}
  }};
  sync();
  setInterval(sync, 1000);
}})();
</script>"""


def keep(url_paths: Sequence[str]) -> None:
    """Draw the script (once per run, from the entry file, inside a container drawn on every run): ``url_paths`` are
    the pages' url paths ("" for the default page)."""
    st.html(SCRIPT.format(pages=json.dumps(list(url_paths)), version=KEY_VERSION), unsafe_allow_javascript=True)
