"""The glossary: one home for every term the app uses, in plain words.

:data:`TERMS` maps a term (entries in :mod:`app.ui.glossary_terms`), as it is written on screen, to one or two plain sentences. The sidebar's "Words"
expander (:func:`sidebar`), the Glossary page (app/views/glossary.py) and the widgets' help tooltips
(:func:`helps`) all read it, so a term is explained once and the same way everywhere. A test checks that every
term that appears in a widget's label has an entry (:func:`terms_in`).

Pure Python (no Streamlit at import), so tests and other modules can read it cheaply.
"""

from __future__ import annotations

import re

from app.ui.glossary_terms import ENTRIES as _TERMS
from app.ui.glossary_terms import Term

TERMS: dict[str, Term] = {t.name: t for t in _TERMS}


def lookup(word: str) -> Term | None:
    """The entry for ``word`` (its name or an alias, case-insensitive), or None."""
    w = word.strip().lower()
    for term in _TERMS:
        if w == term.name.lower() or w in (a.lower() for a in term.aliases):
            return term
    return None


def _spellings(term: Term) -> tuple[str, ...]:
    return (term.name, *term.aliases)


def terms_in(text: str) -> list[str]:
    """The names of the terms that ``text`` uses (a symbol anywhere, a word as a whole word), in glossary order."""
    found = []
    for term in _TERMS:
        for s in _spellings(term):
            if _uses(text, s):
                found.append(term.name)
                break
    return found


def _uses(text: str, spelling: str) -> bool:
    if not spelling.isascii() or not spelling.replace("-", "").replace(" ", "").isalnum():
        return spelling in text  # a symbol (ε̂, x̂₀, ᾱ): anywhere
    return re.search(rf"(?<![\w-]){re.escape(spelling)}(?![\w-])", text, flags=re.IGNORECASE) is not None


def helps(*names: str) -> str:
    """One tooltip line per named term: "**ε̂**: the network's guess …" (for a widget's ``help=``)."""
    lines = []
    for n in names:
        term = TERMS.get(n) or lookup(n)
        if term is None:
            raise KeyError(f"{n!r} is not in the glossary (app/ui/glossary.py)")
        lines.append(f"**{term.name}**: {term.plain}")
    return "\n\n".join(lines)


# The symbols a learner meets on the pages, most basic first: the sidebar's "Words" drawer lists these.
SIDEBAR = ("t", "x₀", "x_t", "ε", "ε̂", "x̂₀", "β", "ᾱ", "SNR", "MSE", "PSNR", "DDPM", "DDIM", "η", "guidance")


def sidebar() -> None:
    """The sidebar's drawer of words, on every page (the entry file calls it once per run)."""
    import streamlit as st

    with st.sidebar.expander("Words used here", icon=":material/dictionary:", key="words"):
        for name in SIDEBAR:
            st.markdown(f"**{name}** — {TERMS[name].plain}")
        st.page_link("views/glossary.py", label="All words, with formulas", icon=":material/menu_book:")
