"""The glossary (issue 26): one home for every term, a test that every term in a widget's label has an entry, the
sidebar drawer on every page and the page of its own."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
from conftest import app_test, assert_ok

from app.ui import glossary

ROOT = Path(__file__).resolve().parents[3]
WIDGETS = {
    "slider", "select_slider", "radio", "selectbox", "multiselect", "number_input", "text_input", "text_area",
    "toggle", "checkbox", "button", "download_button", "file_uploader", "segmented_control", "pills",
}  # fmt: skip
ISSUE_TERMS = ("β", "ᾱ", "SNR", "ε", "ε̂", "x̂₀", "PSNR", "MSE", "DDPM", "DDIM", "η", "guidance", "v-prediction")
# words in labels that are not terms of the subject: file formats and the like
NOT_TERMS = {"PNG", "JPEG", "GIF", "BMP", "TIFF", "WebP", "a", "s", "k", "±"}  # "a" photo, "s" of seconds, "k"-th
# jargon a newcomer does not know, though written in plain letters
JARGON = ("Timestep", "Schedule", "Sampler", "Seed", "Steps", "Markov chain", "Guidance", "Attention", "ResNet",
          "Query", "Learning rate", "bound", "resolution")  # fmt: skip
# jargon a page's own text may use (issue 36): each one a page uses needs an entry; append new words here
PAGE_JARGON = JARGON + ("U-Net", "GMAC", "reparametrisation", "f_max", "judge", "flow matching", "SDE", "ODE",
                        "Euler", "Heun", "DPM-Solver++", "UniPC", "GroupNorm", "SiLU", "embedding", "spectrum", "KL",
                        "NFE", "Markov chain", "v_prediction", "ELBO", "SDEdit")  # fmt: skip


def widget_labels() -> list[tuple[str, str]]:
    """(file, label) of every widget drawn in app/ with a literal label (the fixed parts of an f-string)."""
    out = []
    for path in sorted((ROOT / "app").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.args):
                continue
            if node.func.attr not in WIDGETS:
                continue
            arg = node.args[0]
            if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                out.append((path.name, arg.value))
            elif isinstance(arg, ast.JoinedStr):
                out.append((path.name, " ".join(v.value for v in arg.values if isinstance(v, ast.Constant))))
    return out


def page_texts() -> list[tuple[str, str]]:
    """(file, text) of every string literal in app/ that can reach the screen: docstrings and the glossary's own
    entries left out, the fixed parts of f-strings included."""
    out = []
    for path in sorted((ROOT / "app").rglob("*.py")):
        if path.name == "glossary.py":
            continue
        tree = ast.parse(path.read_text())
        docs = {
            id(node.body[0].value)
            for node in ast.walk(tree)
            if isinstance(node, (ast.Module, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
            and node.body
            and isinstance(node.body[0], ast.Expr)
        }
        out += [
            (path.name, node.value)
            for node in ast.walk(tree)
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docs
        ]
    return out


def uses(text: str, word: str) -> bool:
    return re.search(rf"(?<![\w-]){re.escape(word)}(?!\w)", text, flags=re.IGNORECASE) is not None


def candidate_terms(label: str) -> list[str]:
    """The words of a label that need explaining: symbols (Greek, hats, subscripts), acronyms, names with an
    underscore, single-letter variables, and known jargon."""
    found = re.findall(r"[^\x00-\x7f\s—–−·×:(),.?!“”‘’…]+", label)  # symbols: ε̂, η, x̂₀, ᾱ
    found += re.findall(r"\b[A-Z][A-Za-z]*[A-Z][A-Za-z]*\b", label)  # DDIM, PSNR, ResNet
    found += re.findall(r"\b\w+_\w+\b", label)  # t_start, x_t
    found += re.findall(r"(?<![\w-])[a-z](?![\w-])", label)  # t, y, w
    found += [j for j in JARGON if re.search(rf"\b{re.escape(j)}", label, flags=re.IGNORECASE)]
    return [f for f in found if f not in NOT_TERMS]


def test_the_label_scan_finds_the_terms_it_should():
    assert set(candidate_terms("DDIM η")) == {"DDIM", "η"}
    assert set(candidate_terms("Timestep t")) == {"Timestep", "t"}
    assert set(candidate_terms("Guidance scale w")) == {"Guidance", "w"}
    assert "t_start" in candidate_terms("t_start") and "ε" in candidate_terms("Noise draws per t (ε-MSE chart)")
    assert candidate_terms("Download the grid (PNG)") == []


def test_every_term_in_a_widget_label_has_an_entry():
    labels = widget_labels()
    assert len(labels) > 30  # the scan sees the app's widgets
    missing = {
        (f, label, term) for f, label in labels for term in candidate_terms(label) if glossary.lookup(term) is None
    }
    assert not missing, sorted(missing)


def test_every_jargon_word_a_page_uses_has_an_entry():
    texts = page_texts()
    assert uses("The U-Net's GroupNorm → SiLU", "GroupNorm") and not uses("spectrums_x", "spectrum")
    used = {word for word in PAGE_JARGON for _, text in texts if uses(text, word)}
    assert {"U-Net", "GMAC", "SDE", "GroupNorm", "embedding"} <= used  # the scan sees the pages' text
    missing = sorted(word for word in used if glossary.lookup(word) is None)
    assert not missing, missing


def test_the_new_entries_are_plain_and_findable():
    """Issue 36's words each have a plain entry, whether or not a page uses them today."""
    for word in PAGE_JARGON:
        term = glossary.lookup(word)
        assert term is not None, word
        assert term.plain.endswith(".") and "$" not in term.plain and "\\" not in term.plain, word
    assert glossary.lookup("UNet") is glossary.TERMS["U-Net"] and glossary.lookup("FlowMatch").name == "flow matching"


def test_the_issue_terms_have_plain_entries():
    for name in ISSUE_TERMS:
        term = glossary.lookup(name)
        assert term is not None, name
        assert term.plain.endswith(".") and "$" not in term.plain and "\\" not in term.plain, name


def test_lookup_and_helps():
    assert glossary.lookup("eta") is glossary.TERMS["η"] and glossary.lookup("PSNR") is glossary.TERMS["PSNR"]
    assert glossary.lookup("no such word") is None
    assert glossary.helps("SNR", "η").startswith("**SNR**:")
    with pytest.raises(KeyError, match="not in the glossary"):
        glossary.helps("flux capacitor")
    assert glossary.terms_in("DDIM η, 50 steps") == ["DDIM", "η", "Steps"]


def test_the_drawer_is_on_every_page_and_the_page_lists_every_term(tiny_model_dir):
    at = app_test(tiny_model_dir, page="views/about.py")
    at.run()
    assert_ok(at)
    drawer = [e for e in at.sidebar.expander if e.label == "Words used here"]
    assert drawer and any(m.value.startswith("**PSNR**") for m in drawer[0].markdown)
    at.switch_page("views/glossary.py").run()
    assert_ok(at)
    headings = {m.value[len("#### ") :] for m in at.markdown if m.value.startswith("#### ")}
    assert headings == set(glossary.TERMS)
    assert len(at.latex) == sum(bool(t.formula) for t in glossary.TERMS.values())
    at.text_input(key="gloss_find").input("eta").run()
    assert {m.value for m in at.markdown if m.value.startswith("#### ")} == {"#### η"}
    at.text_input(key="gloss_find").input("zzz").run()
    assert_ok(at)
    assert any("No entry mentions" in i.value for i in at.info)
