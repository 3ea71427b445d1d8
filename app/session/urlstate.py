"""The page's settings in the address bar (``st.query_params``): one table, read once, written every run.

* :func:`restore` runs on the first run of a session (a fresh browser, a reload, a shared link): every known
  parameter is checked and copied into ``st.session_state`` before any widget is drawn, so the widgets start
  from it. A bad value is skipped with one sentence (kept in ``st.session_state["url_notes"]``), never a
  traceback.
* :func:`write` runs at the end of every run and puts the current page's settings (plus the image,
  the resolution and the model, which every page shares) back into the address, so a reload keeps them and a
  copied link opens the same pictures elsewhere.

The page itself is the URL path (``/denoise``), set by ``st.navigation``. Parameter names are the
page's own (``t`` is the Forward page's t on ``/`` and the Denoise page's t on ``/denoise``).
An uploaded photo cannot travel in a link: the address says ``img=upload`` and the receiver gets the
sample photo with one sentence saying so. A local model folder is never put in a link (a path on the
sender's server means nothing, or something private, on the receiver's); the link falls back to the
bundled model. A Hub model in a link is only proposed: the student loads it with a click (app/session/which_model.py).

Every value of the address that a sentence repeats goes out as inline code (:func:`app.session.text.code`), never as
markdown: a link cannot put an image, a clickable link or LaTeX on the receiver's page.
"""

from __future__ import annotations

import streamlit as st
from streamlit.runtime.scriptrunner import get_script_run_ctx

from app.compute import core
from app.session import sources, which_model
from app.session.link_fields import (
    CLASS_KEYS,
    NO_LABEL,
    NO_LABEL_SHOWN,
    PAGE_FIELDS,
    RES,
    SOURCES,
    STEP,
    BadValue,
    parse_bool,
)
from app.session.text import code
from app.session.which_model import BUNDLED_MODELS
from model.nets import network
from model.nets.checkpoint_io import ModelLoadError

NOTES_KEY = "url_notes"  # sentences about the link, shown once at the top of the page
DONE_KEY = "_url_restored"
LINK_KEYS = "_url_link_keys"  # session key -> the address's text, for values a page checks (see from_link)
AUTORUN_KEY = "traj_autorun"  # the trajectory page runs the link's settings once, when they are cheap
LINK_RUN_KEY = "traj_link_run"  # set by the trajectory page: a finished run of the current settings is shown


def page_name(url_path: str) -> str:
    """The page's name in :data:`PAGE_FIELDS` ("" is the default page: Start here, app/views/start.py)."""
    return url_path or "start"


def _note(text: str) -> None:
    st.session_state.setdefault(NOTES_KEY, []).append(text)


# --- reading -------------------------------------------------------------------------------------------------
def _restore_image(params: dict[str, str]) -> None:
    img = params.get("img")
    if img is None:
        return
    ss = st.session_state
    if img == "upload":
        ss["image_source"] = "Sample photo"
        _note(
            f"This link was made with an uploaded photo, which cannot travel in a link: you see the sample photo "
            f"“{ss['sample_name']}” instead (upload your own in the sidebar)."
        )
    elif img in core.SAMPLES:
        ss["image_source"], ss["sample_name"] = "Sample photo", img
    else:
        _note(
            f"The link's photo {code(img)} is not one of the samples ({', '.join(core.SAMPLES)}); "
            f"showing “{ss['sample_name']}”."
        )


def _restore_model(params: dict[str, str]) -> None:
    text = params.get("model")
    if text is None:
        return
    ss = st.session_state
    text = text.strip()
    if text in BUNDLED_MODELS:
        ss["model_source"] = text
        return
    pol = sources.policy()
    if not pol.local:  # a locked server decides from the text alone, never from its disk
        refusal = pol.refusal(text)
        where = text[len("hf://") :].strip("/") if text.startswith("hf://") else text
    else:
        try:
            kind, where = network.parse_source(text)
        except ModelLoadError:
            kind, where = "bad", text
        if kind != "hub":
            _note(
                f"The link's model {code(text, 60)} is not a bundled model or a Hub id (owner/name); "
                "a link cannot choose a folder on the server. Using the bundled photo model."
            )
            return
        refusal = pol.refusal(where)
    if refusal:
        _note(f"The link asks for the model {code(where, 60)}. {refusal}")
        return
    said = which_model.propose(where)  # loaded only when the student says so
    if said:
        _note(said)


def _class_model(key: str):
    """The model whose classes the widget ``key`` lists, or None when it cannot load. Generating from pure noise
    on the Reverse trajectory page with the photo model uses the Fashion generator instead."""
    ss = st.session_state
    try:
        model = which_model.current_model()
        if (
            key == "traj_class"
            and not model.conditional
            and ss.get("traj_source") == SOURCES["noise"]
            and which_model.generates_with_fashion(model, bool(ss.get("traj_photo_model_anyway")))
        ):
            model = which_model.fashion_generator()
        return model
    except ModelLoadError:
        return None


def _class_value(key: str, text: str) -> str | None:
    """The class widget's value for a class named in the address, or None (with a note) if the model has none."""
    model = _class_model(key)
    if model is None:
        return None  # the page says why the model cannot load
    if not model.conditional:
        _note(f"The link names the class {code(text)}, but this model has no classes; ignored.")
        return None
    classes = list(model.classes or ())
    if text.lower() == NO_LABEL and model.null_label is not None:
        return NO_LABEL_SHOWN[key]
    if text not in classes:
        _note(
            f"The link's class {code(text)} is not one of this model's classes ({', '.join(classes)}); "
            f"using {classes[0]}."
        )
        return None
    return f"{classes.index(text)}: {text}" if key == "ins_label" else text


def restore(url_path: str) -> None:
    """Copy the address's settings into the session, once per session (call before any widget is drawn)."""
    ss = st.session_state
    if ss.get(DONE_KEY):
        return
    ss[DONE_KEY] = True
    params = {k: st.query_params.get(k) for k in st.query_params}
    if not params:
        return
    _restore_image(params)
    _restore_model(params)
    page = page_name(url_path)
    fields = (RES, *PAGE_FIELDS.get(page, ()), *((STEP,) if page == "trajectory" else ()))
    for f in fields:
        if f.param not in params:
            continue
        try:
            value = f.parse(params[f.param])
        except BadValue as exc:
            _note(
                f"In the link, {f.param}={code(params[f.param])} {exc}; using {f.show(ss.get(f.key, '—'))} instead."
                if f.key in ss
                else f"In the link, {f.param}={code(params[f.param])} {exc}; ignored."
            )
            continue
        if f.key in CLASS_KEYS:
            value = _class_value(f.key, value)
            if value is None:
                continue
        ss[f.key] = value
        ss.setdefault(LINK_KEYS, {})[f.key] = params[f.param][:40]  # a page checks names against its model
    if "present" in params:
        ss["present"] = _bool_or_false(params["present"])
    if page == "trajectory" and _bool_or_false(params.get("run")):
        ss[AUTORUN_KEY] = int(ss.get("traj_step", 1))


def _bool_or_false(text: str | None) -> bool:
    try:
        return text is not None and parse_bool(text)
    except BadValue:
        return False


def from_link(key: str) -> str | None:
    """The address's text for session key ``key`` if its value came from the link and was not checked yet; once.
    Show it in a sentence only through :func:`app.session.text.code`.

    A page that can only check a value against its model (the Inside page's block and attention layer) calls
    this where it checks, so a name the model lacks gets a sentence when it came from a link, and a name left
    over from another model does not."""
    return st.session_state.get(LINK_KEYS, {}).pop(key, None)


PAGE_CHECKED = "_url_page_checked"


def check_page(nav_page, pages) -> None:
    """Once per session: a sentence when the address named a page this app does not have (Streamlit then runs the
    default page, ``nav_page``, without a word). Call right after ``st.navigation``."""
    ss = st.session_state
    if ss.get(PAGE_CHECKED):
        return
    ss[PAGE_CHECKED] = True
    ctx = get_script_run_ctx()
    asked = (ctx.pages_manager.intended_page_name or "").strip("/") if ctx is not None else ""
    if asked and asked not in {p.url_path for p in pages}:
        _note(f"This app has no page {code('/' + asked)}; showing {nav_page.title} instead.")


def take_notes() -> list[str]:
    """The sentences about the link (each shown once)."""
    return st.session_state.pop(NOTES_KEY, [])


# --- writing -------------------------------------------------------------------------------------------------
def _class_text(key: str, value: object) -> str | None:
    if value == NO_LABEL_SHOWN[key]:
        return NO_LABEL
    if key == "ins_label":
        return str(value).split(": ", 1)[-1]
    return str(value)


def current_params(url_path: str) -> dict[str, str]:
    """The address's query parameters for the current page and session (what :func:`write` puts there)."""
    ss = st.session_state
    out: dict[str, str] = {}
    if ss.get("image_source") == "Upload":
        out["img"] = "upload"
    elif ss.get("sample_name") in core.SAMPLES:
        out["img"] = ss["sample_name"]
    out[RES.param] = str(ss.get("resolution"))
    # a Hub model the link proposed stays in the address until the student loads or declines it
    src = str(ss.get(which_model.PROPOSED_KEY) or ss.get("model_source") or "bundled")
    try:
        kind = "bundled" if src in BUNDLED_MODELS else network.parse_source(src)[0]
    except ModelLoadError:
        kind = "bad"
    if kind in ("bundled", "hub"):
        out["model"] = src
    page = page_name(url_path)
    for f in PAGE_FIELDS.get(page, ()):
        if f.key not in ss or ss[f.key] is None:
            continue
        if f.key == "traj_guidance":  # the guidance scale only means something with a class-conditional model
            model = _class_model("traj_class")
            if model is None or not model.conditional:
                continue
        if f.key in CLASS_KEYS:
            model = _class_model(f.key)
            text = _class_text(f.key, ss[f.key]) if model is not None and model.conditional else None
            if text is not None:
                out[f.param] = text
            continue
        out[f.param] = f.show(ss[f.key])
    if page == "trajectory" and ss.get(LINK_RUN_KEY):
        out["run"] = "1"
        out[STEP.param] = str(ss.get(STEP.key, 1))
    if ss.get("present"):
        out["present"] = "1"
    return out


def write(url_path: str) -> None:
    """Put the current settings in the address (only when they changed, so the browser history stays calm)."""
    want = current_params(url_path)
    have = {k: st.query_params.get(k) for k in st.query_params}
    if have != want:
        st.query_params.from_dict(want)
