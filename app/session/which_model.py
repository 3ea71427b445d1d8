"""Which model a session uses, and what happens when it cannot have it.

* Every session's model goes through :func:`load`: the classroom lock (``app/session/sources.py``) is checked again there,
  not only in the picker, and a source that failed a moment ago fails again at once, without asking the Hub or the
  disk (:data:`FAILED_TTL_S`), so reruns never repeat a failed download.
* A shared link does not load a Hub model: it proposes it (:func:`propose`), and :func:`settle`, run by the entry
  file before the sidebar, shows the proposal with a button; only the student's click downloads it.
* A model that cannot load (the Hub is unreachable, the repo is gone) does not leave the page empty: the session
  falls back to the bundled photo model with one sentence (:func:`current`), and the address follows.
"""

from __future__ import annotations

import threading
import time

import streamlit as st

from app import settings
from app.compute import core
from app.compute import models as model_cache
from app.session import sources
from app.session.text import code
from model.nets import hub, network

# the two bundled models, the one spelling of their names: source name -> (label, what it is for, native px, a
# matching sample image). "bundled" is the photo model (or the teacher's DIFFUSION_LENS_MODEL).
BUNDLED_MODELS = {
    "bundled": ("Photo model", "Denoises your photos (colour, 64 px).", 64, "astronaut"),
    "fashion": ("Fashion generator", "Generates clothes from nothing (grey, 32 px, 10 classes).", 32, "sneaker"),
}
BUNDLED_NAMES = (None, "", *BUNDLED_MODELS)  # always allowed, never proposed
PROPOSED_KEY = "mp_proposed"  # a Hub id a shared link proposes, until the student loads or declines it
FALLBACK_KEY = "_mp_fallback"  # the sentence about a fall back to the bundled model, shown once
PICKER_KEYS = ("mp_kind", "mp_hub_choice", "mp_hub_custom", "mp_local_path")  # app/ui/model_picker.py's widgets
FAILED_TTL_S = 120.0  # a failed load is remembered this long (per process, every session)

_failures: dict[str, tuple[float, str, str]] = {}  # source -> (time.monotonic(), message, reason)
_failures_lock = threading.Lock()


# --- loading ---------------------------------------------------------------------------------------------------
def recent_failure(source: str) -> network.ModelLoadError | None:
    """The error of ``source``'s load if it failed less than :data:`FAILED_TTL_S` seconds ago, else None."""
    with _failures_lock:
        hit = _failures.get(source)
        if hit is not None and time.monotonic() - hit[0] > FAILED_TTL_S:
            del _failures[source]
            hit = None
    return None if hit is None else network.ModelLoadError(hit[1], reason=hit[2])


def forget_failures() -> None:
    """Forget every remembered failure (tests; a teacher who fixed the network can also restart the server)."""
    with _failures_lock:
        _failures.clear()


def _loader_source(source: str) -> str:
    """What to hand the cache: on a server that loads no folders, a Hub id stays a Hub id even if a folder of that
    name happens to exist in the server's working directory (``hf://`` says so to :func:`network.parse_source`)."""
    text = str(source).strip()
    if not sources.policy().local and not text.startswith("hf://"):
        return "hf://" + text
    return text


def load(source: str, progress=None, retry: bool = False) -> network.LoadedModel:
    """A student's model ``source`` (a Hub id, or a folder where the policy allows folders), loaded through the
    process-wide cache. Raises :class:`ModelLoadError` with one sentence when the classroom lock refuses it, when it
    failed less than :data:`FAILED_TTL_S` seconds ago (unless ``retry``: a student pressed a button to load it),
    or when loading fails now (that failure is remembered)."""
    sources.check(source)
    if not retry:
        remembered = recent_failure(source)
        if remembered is not None:
            raise remembered
    try:
        return model_cache.get_model(_loader_source(source), progress=progress)
    except network.ModelLoadError as exc:
        error = exc
    except Exception as exc:  # noqa: BLE001 -- one sentence for the person, and the app keeps running
        error = network.ModelLoadError(f"Loading {source} failed ({type(exc).__name__}); try again later.")
    with _failures_lock:
        _failures[source] = (time.monotonic(), str(error), error.reason)
    raise error


def load_with_progress(source: str, retry: bool = False) -> network.LoadedModel:
    """:func:`load` in a worker thread while this (script) thread draws the download's progress bar."""
    bars: dict[str, tuple[float, float | None]] = {}
    result: dict[str, object] = {}

    def progress(done: float, total: float | None, desc: str) -> None:
        bars[desc] = (done, total)  # called from download threads: record only

    def work() -> None:
        try:
            result["model"] = load(source, progress, retry)
        except network.ModelLoadError as exc:
            result["error"] = exc

    worker = threading.Thread(target=work, name="model-load", daemon=True)
    worker.start()
    bar = st.progress(0.0, text=f"Loading {source}…")
    while worker.is_alive():
        worker.join(0.25)
        sized = [(d, t) for d, t in bars.values() if t]
        if sized:
            done, total = max(sized, key=lambda dt: dt[1])  # the byte counter has the largest total
            bar.progress(min(done / total, 1.0), text=f"Downloading {source}: {done / 1e6:.1f} of {total / 1e6:.1f} MB")
    bar.empty()
    if "error" in result:
        raise result["error"]
    return result["model"]


def fallback_sentence(exc: network.ModelLoadError) -> str:
    """What went wrong, then what the app does about it: one sentence, with no advice the server cannot follow
    (``reason`` leaves out "or a local folder")."""
    return f"{exc.reason.rstrip()} Using the bundled model instead."


# --- the session's model ---------------------------------------------------------------------------------------
def model_source() -> str | None:
    """The model chosen in the sidebar: None for the bundled model, else a folder or Hub id ("fashion" for the
    Fashion generator).

    The environment variable ``DIFFUSION_LENS_MODEL`` (a folder or Hub id) replaces the bundled
    model as the default, e.g. for a teacher's server or the browser tests.
    """
    src = st.session_state.get("model_source", "bundled")
    if src in (None, "", "bundled"):
        return settings.current().model
    return src


def model_key() -> str:
    """The model part of a cache key: "bundled" or the folder / Hub id (every page uses this one)."""
    return model_source() or "bundled"


def use_bundled(name: str) -> None:
    """Switch to a bundled model, and to its native resolution and a matching sample image, so that its
    first picture is a good one (the photo model at 64 px on a photo, the Fashion generator at 32 px on a
    garment). An uploaded image stays; it is converted to grey for the grey model."""
    ss = st.session_state
    ss["model_source"] = name
    ss["mp_bundled"] = name
    ss["mp_error"] = None
    _, _, px, sample = BUNDLED_MODELS[name]
    ss["resolution"] = px
    if ss.get("image_source") != "Upload":
        wanted = core.FASHION_SAMPLES if name == "fashion" else core.PHOTO_SAMPLES
        if ss.get("sample_name") not in wanted:
            ss["sample_name"] = sample


# --- the Fashion generator in place of the photo model -------------------------------------------------------------
def fashion_generator() -> network.LoadedModel | None:
    """The bundled Fashion generator, or None where it is not bundled."""
    return model_cache.get_bundled("fashion") if hub.FASHION_MODEL.is_dir() else None


def generates_with_fashion(model: network.LoadedModel, photo_model_anyway: bool) -> bool:
    """The swap-in rule, in one place: generating from pure noise with the bundled photo model uses the Fashion
    generator instead (the photo model learned small crops of 156 photos, so from noise it only makes smears),
    unless the student asked for the photo model anyway, and only where the Fashion generator is bundled."""
    return model.source == str(hub.BUNDLED_MODEL) and hub.FASHION_MODEL.is_dir() and not photo_model_anyway


def _default_model() -> network.LoadedModel:
    return model_cache.get_model(model_source())


def _fall_back(exc: network.ModelLoadError) -> None:
    ss = st.session_state
    ss["model_source"] = "bundled"
    ss[FALLBACK_KEY] = fallback_sentence(exc)


def current_model() -> network.LoadedModel:
    """The session's model: a bundled one (or the teacher's ``DIFFUSION_LENS_MODEL``), or the source the student
    chose, checked and loaded by :func:`load`. If that cannot load, the session falls back to the bundled model
    (the sentence why is shown by :func:`settle`). Raises ModelLoadError only when the default model is missing."""
    src = st.session_state.get("model_source", "bundled")
    if src in BUNDLED_NAMES:
        return _default_model()
    try:
        return load(src)
    except network.ModelLoadError as exc:
        _fall_back(exc)
    return _default_model()


# --- a shared link's model ---------------------------------------------------------------------------------------
def propose(repo_id: str) -> str | None:
    """A link asks for the Hub model ``repo_id`` (already allowed by the classroom lock). Nothing is downloaded
    here: a model this server has in memory is used at once; otherwise it is proposed, and :func:`settle` asks the
    student. Returns a sentence for the link's notes, or None."""
    ss = st.session_state
    failed = recent_failure(repo_id)
    if failed is not None:
        return f"The link's model {code(repo_id, 60)} could not be loaded: {fallback_sentence(failed)}"
    try:
        in_memory = model_cache.peek("hf://" + repo_id)
    except network.ModelLoadError:
        in_memory = None
    if in_memory is not None:
        ss["model_source"] = repo_id
    else:
        ss[PROPOSED_KEY] = repo_id
    return None


def _offer(repo_id: str) -> None:
    """The proposal: what the link asks for, what it costs, and two buttons."""
    ss = st.session_state
    known = hub.KNOWN_HUB_MODELS.get(repo_id)
    size = f" ({known.params_m * 4:.0f} MB to download once)" if known else ""
    box = st.container(border=True)
    box.markdown(
        f"This link uses the Hub model {code(repo_id, 80)}{size}, which this server has not loaded yet. "
        "Load it, or keep the bundled photo model?"
    )
    c1, c2 = box.columns(2)
    accept = c1.button("Load this model", key="mp_accept", type="primary")
    decline = c2.button("Keep the bundled model", key="mp_decline")
    if not (accept or decline):
        return
    ss.pop(PROPOSED_KEY, None)
    if decline:
        st.rerun()
    try:
        with box:
            load_with_progress(repo_id)
    except network.ModelLoadError as exc:
        _fall_back(exc)
    else:
        ss["model_source"] = repo_id
        for key in PICKER_KEYS:  # the sidebar's picker shows the model now in use
            ss.pop(key, None)
    st.rerun()


def settle() -> None:
    """Call once per run from the entry file, after the link is read and before the sidebar: resolve the session's
    model (falling back if it cannot load), say so in one sentence, and show a link's proposal, if any."""
    ss = st.session_state
    if ss.get("model_source") not in BUNDLED_NAMES:
        try:
            current_model()
        except network.ModelLoadError:
            pass  # the default model is missing: the page says so
    said = ss.pop(FALLBACK_KEY, None)
    if said:
        st.warning(said)
    proposed = ss.get(PROPOSED_KEY)
    if proposed:
        _offer(proposed)
