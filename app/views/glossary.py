"""Page: every word the app uses, in plain words first, its formula after (from app/ui/glossary.py)."""

from __future__ import annotations

import streamlit as st

from app.session import text
from app.ui import glossary

st.title("Words: a glossary")
st.markdown(
    "Every term the pages use, in plain words. The same sentences appear in the sidebar's **Words used here** "
    "drawer on every page."
)
query = st.text_input("Find a word", key="gloss_find", placeholder="e.g. PSNR, guidance, η").strip()
exact = glossary.lookup(query) if query else None  # a term's name or spelling: that entry alone
terms = [exact] if exact else [t for t in glossary.TERMS.values() if query.lower() in (t.name + " " + t.plain).lower()]
if not terms:
    # what a student typed is echoed as inline code: no markdown, link, picture or LaTeX of theirs is drawn
    st.info(f"No entry mentions {text.code(query)}. Try a shorter word, or clear the search.")
for term in terms:
    with st.container(border=True, key=f"gloss_{list(glossary.TERMS).index(term.name)}"):
        st.markdown(f"#### {term.name}")
        st.markdown(term.plain)
        if term.formula:
            st.latex(term.formula)
        if term.aliases:
            st.caption("Also written: " + ", ".join(term.aliases))
