"""The sidebar model picker that every page shares: the bundled model, a Hub repo id or a local folder.

It writes one key, ``st.session_state["model_source"]`` ("bundled", a folder path or a
Hub id), which :func:`app.session.which_model.current_model` reads. A new choice is loaded when the
person presses "Use this model" (a 256-px Hub model is a 455 MB download), with a
progress bar (app/session/which_model.py loads it, checking the classroom lock again); if it fails, the error is shown
and the app falls back to the bundled model.
Below the choice: what the model in use is, and what one step costs at the working resolution.
"""

from __future__ import annotations

import streamlit as st

from app.compute import estimates
from app.session import sources, state, which_model
from model.diffusion.trajectory import make_timesteps
from model.nets import hub, network
from model.serving import cost as costs

BUNDLED, HUB, LOCAL = "Bundled", "Hub", "Local folder"
OTHER = "other"  # the "type an id" entry of the Hub list
BUDGET_S = 20.0  # suggested steps are those that fit in this many seconds


def _hub_label(repo_id: str) -> str:
    if repo_id == OTHER:
        return "Other Hub id…"
    known = hub.KNOWN_HUB_MODELS.get(repo_id)
    if known is None:  # on a classroom server's allow-list
        return repo_id
    return f"{repo_id} ({known.resolution} px)"


def _init_from_source() -> None:
    """First run of a session: point the widgets at whatever model_source already says."""
    src = st.session_state.get("model_source", "bundled")
    kind, where = BUNDLED, None
    state.set_default("mp_bundled", src if src in which_model.BUNDLED_MODELS else "bundled")
    if src not in (None, "", *which_model.BUNDLED_MODELS):
        try:
            kind, where = network.parse_source(src)
        except network.ModelLoadError:
            kind = BUNDLED
        kind = {"hub": HUB, "local": LOCAL}.get(kind, BUNDLED)
    state.set_default("mp_kind", kind)
    known = kind == HUB and src in hub.KNOWN_HUB_MODELS
    state.set_default("mp_hub_choice", src if known else (OTHER if kind == HUB else next(iter(hub.KNOWN_HUB_MODELS))))
    state.set_default("mp_hub_custom", src if kind == HUB and not known else "")
    state.set_default("mp_local_path", str(src) if kind == LOCAL else "")
    state.set_default("mp_error", None)


def _on_kind_change() -> None:
    """Choosing "Bundled" takes effect at once (nothing to download)."""
    if st.session_state["mp_kind"] == BUNDLED:
        which_model.use_bundled(st.session_state.get("mp_bundled", "bundled"))


def _on_bundled_change() -> None:
    which_model.use_bundled(st.session_state["mp_bundled"])


def _chosen_source() -> str:
    ss = st.session_state
    if ss["mp_kind"] == HUB:
        return (ss["mp_hub_custom"] if ss["mp_hub_choice"] == OTHER else ss["mp_hub_choice"]).strip()
    if ss["mp_kind"] == LOCAL:
        return ss["mp_local_path"].strip()
    return ss.get("mp_bundled", "bundled")


def _apply() -> None:
    source = _chosen_source()
    ss = st.session_state
    if not source:
        ss["mp_error"] = "Type a Hub id (owner/name) or a folder path first."
        return
    refusal = sources.policy().refusal(source)  # the classroom lock: one sentence, nothing loaded
    if refusal:
        ss["mp_error"] = refusal
        return
    try:
        which_model.load_with_progress(source, retry=True)  # checks the lock again, remembers a failure
    except network.ModelLoadError as exc:
        ss["mp_error"] = which_model.fallback_sentence(exc)
        ss["model_source"] = "bundled"
        return
    ss["mp_error"] = None
    ss["model_source"] = source


def _describe_model_in_use(why: str | None) -> None:
    """A plain sentence for students (what the model does, how long a run takes here), and the technical lines
    (parameters, prediction type, arithmetic, GMAC, the classroom lock's origin) in a drawer for the teacher."""
    ss = st.session_state
    try:
        model = which_model.current_model()
    except network.ModelLoadError as exc:
        st.caption(f"Model in use: none yet. {exc}")
        return
    res = int(ss.get("resolution", model.resolution))
    with st.spinner(f"Measuring how fast this model runs at {res} px…"):  # seconds, the first time at a new size
        captions = model_captions(model, res)
        plain = plain_caption(model, res)
    st.caption(plain)
    off_size = res != model.resolution and not captions[-1].startswith("Cost estimate unavailable")
    if off_size:
        st.caption(captions[-1])  # "trained at … px": something a student can act on
    with st.expander("Technical details", key="model_details"):
        for text in captions[:-1] if off_size else captions:
            st.caption(text)
        if why:
            st.caption(why)


_PLAIN_NAMES = {
    str(hub.BUNDLED_MODEL): "The photo model: a small network trained to take the noise out of photos.",
    str(hub.FASHION_MODEL): "The Fashion generator: a small network that draws clothes out of pure noise.",
}
_plain: dict[tuple, str] = {}


def plain_caption(model: network.LoadedModel, res: int) -> str:
    """What the model in use is and how long a run takes on this server, in plain words (kept like the captions)."""
    key = (model.source, str(model.device), id(model.unet), int(res), estimates.generation(), estimates.speed_step())
    known = _plain.get(key)
    if known is not None:
        return known
    text = _PLAIN_NAMES.get(model.source, f"A model of your choice ({model.source}).")
    try:
        run = estimates.sidebar_step(model, int(res))
    except Exception:  # noqa: BLE001 -- the estimate is advice; never break the sidebar
        return text
    text += f" Here, one step takes {_seconds(run.per_pass())} and a {estimates.SIDEBAR_STEPS}-step run {run.text()}."
    _plain[key] = text
    return text


def _seconds(s: float) -> str:
    return f"about {s * 1000:.0f} ms" if s < 1 else f"about {s:.1f} s"


_captions: dict[tuple, tuple[str, ...]] = {}


def model_captions(model: network.LoadedModel, res: int) -> tuple[str, ...]:
    """The captions below the picker: what the model is and what a step costs at ``res`` px.

    Every number in them is fixed for the process once measured (app/compute/estimates.py), so they are made once per
    model and resolution and shared: every rerun of every session drew them, and the estimate's arithmetic
    (50 steps' passes) was a few per cent of a classroom server's busy time. A failed estimate is not kept.
    """
    key = (model.source, str(model.device), id(model.unet), int(res), estimates.generation(), estimates.speed_step())
    known = _captions.get(key)
    if known is None:
        known = _make_captions(model, int(res))
        if not known[-1].startswith("Cost estimate unavailable"):
            _captions[key] = known
    return known


def _make_captions(model: network.LoadedModel, res: int) -> tuple[str, ...]:
    s = model.schedule
    names = {str(hub.BUNDLED_MODEL): "the bundled photo model", str(hub.FASHION_MODEL): "the Fashion generator"}
    kind = "grey" if model.channels == 1 else "colour"
    if model.conditional:
        kind += f", {len(model.classes)} classes" + (" + classifier-free guidance" if model.guidable else "")
    out = [
        f"In use: **{names.get(model.source, model.source)}** · "
        f"{model.num_parameters / 1e6:.1f}M parameters · {kind} · native {model.resolution} px · predicts "
        f"{s.prediction_type} · {s.name} β, T = {s.T} · on {model.device}, "
        f"arithmetic: {network.precision_label(model)}"
    ]
    try:
        macs = estimates.macs(model, res)  # counted once per model and resolution
        run = estimates.sidebar_step(model, res)  # measured once per model, resolution and process
    except Exception as exc:  # noqa: BLE001 -- the estimate is advice; never break the sidebar
        return (*out, f"Cost estimate unavailable ({type(exc).__name__}).")
    steps = costs.suggested_steps(run.per_pass(), budget_s=BUDGET_S)
    text = (
        f"Cost at {res} px: {macs / 1e9:.1f} GMAC per step, ~{run.per_pass():.2f} s per step on "
        f"{model.device} (measured); {estimates.SIDEBAR_STEPS} steps: {run.text()}."
    )
    if steps < estimates.SIDEBAR_STEPS:
        short = estimates.trajectory(model, res, make_timesteps(model.schedule.T - 1, steps))
        text += f" That is slow, so use about {steps} steps ({short.text()})."
    out.append(text)
    if res != model.resolution:
        out.append(
            f"This model was trained at {model.resolution} px; at {res} px its guesses are worse. "
            f"Set the working resolution to {model.resolution} px for its best work."
        )
    return tuple(out)


def model_picker() -> str:
    """Draw the picker (call inside ``st.sidebar``) and return the model source in use."""
    _init_from_source()
    ss = st.session_state
    pol = sources.policy()
    kinds = [BUNDLED, *([HUB] if pol.hub else []), *([LOCAL] if pol.local else [])]
    if ss["mp_kind"] not in kinds:
        ss["mp_kind"] = BUNDLED
    hub_choices = [*hub.KNOWN_HUB_MODELS, OTHER] if pol.hub_any else list(pol.hub_ids)
    if hub_choices and ss["mp_hub_choice"] not in hub_choices:
        ss["mp_hub_choice"] = hub_choices[0]
    if pol.problem:
        st.warning(pol.problem)
    st.radio(
        "Model source",
        kinds,
        key="mp_kind",
        horizontal=True,
        on_change=_on_kind_change,
        help="Bundled: our two small models. Hub: a published diffusers UNet2DModel (downloaded once). "
        "Local folder: a diffusers folder (config.json + safetensors + scheduler_config.json).",
    )
    if ss["mp_kind"] == BUNDLED:
        st.radio(
            "Bundled model",
            list(which_model.BUNDLED_MODELS),
            key="mp_bundled",
            format_func=lambda k: which_model.BUNDLED_MODELS[k][0],
            captions=[v[1] for v in which_model.BUNDLED_MODELS.values()],
            on_change=_on_bundled_change,
        )
    if ss["mp_kind"] == HUB:
        st.selectbox("Hub model", hub_choices, key="mp_hub_choice", format_func=_hub_label)
        if ss["mp_hub_choice"] == OTHER:
            st.text_input("Hub repo id", key="mp_hub_custom", placeholder="owner/name")
        elif ss["mp_hub_choice"] in hub.KNOWN_HUB_MODELS:
            known = hub.KNOWN_HUB_MODELS[ss["mp_hub_choice"]]
            st.caption(f"{known.description} {known.params_m:.0f}M parameters, {known.params_m * 4:.0f} MB.")
    elif ss["mp_kind"] == LOCAL:
        st.text_input("Model folder", key="mp_local_path", placeholder="/path/to/my-ddpm")
    if ss["mp_kind"] != BUNDLED and st.button("Use this model", key="mp_apply"):
        _apply()
    if ss.get("mp_error"):
        st.error(ss["mp_error"])
    _describe_model_in_use(pol.why if pol.locked else None)
    return ss["model_source"]
