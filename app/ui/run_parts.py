"""Parts of the Reverse trajectory page: the guidance slider's default and its "No guidance" button, what guidance
adds at the scrubbed step (the two predictions and their mix) and the two charts over the run's steps (x̂₀ against
the picture the run ends on, the size of ε̂)."""

from __future__ import annotations

import streamlit as st

from app.charts import reverse as plots_reverse
from app.charts.render import DISPLAY_PX, NOISE_CAPTION, to_picture
from app.compute import reverse as backend_reverse
from app.compute.reverse import in_interval


def no_guidance() -> None:
    """The "No guidance" button: w = 0, the plain conditional model, one click away from the recommended w."""
    st.session_state["traj_guidance"] = 0.0


def guidance_default_note(model, w: float) -> str:
    """Which w the slider starts at, and why, in one sentence."""
    if getattr(model, "recommended_guidance", None) is None:
        return f"The slider starts at w = {w:g}: this model's card recommends no guidance scale."
    where = ""
    if model.guidance_interval is not None:
        lo, hi = model.guidance_interval
        where = f", with guidance only in the last, least noisy steps ({lo} ≤ t ≤ {hi})"
    return (
        f"The slider starts at w = {w:g}, the scale this model's card recommends{where}: measured with a separate "
        "classifier (the judge), its samples show the class asked for more often than at w = 0. "
        "Press **No guidance** to see the plain model."
    )


def guidance_parts(stored: dict, f, pos: int, model) -> None:
    """With a guided run stored: at step ``pos`` (frame ``f``), ε̂ with the class, without a label, and the mix the
    sampler used (nothing for a run without guidance parts)."""
    parts = stored.get("parts")
    if parts:
        cond, uncond = parts[pos - 1]
        w_set, interval = stored["settings"].guidance, getattr(model, "guidance_interval", None)
        w = w_set if in_interval(f.t, interval) else 0.0  # a model with an interval guides only inside it
        st.markdown(f"**What guidance adds at this step** (w = {w_set:g}): the sampler used the noise on the right.")
        gc = st.columns(3)
        gc[0].image(to_picture(cond, DISPLAY_PX), caption="ε̂(x_t, y): with the class", width="stretch")
        gc[1].image(to_picture(uncond, DISPLAY_PX), caption="ε̂(x_t, ∅): without a label", width="stretch")
        gc[2].image(
            to_picture(f.eps_hat, DISPLAY_PX), caption=f"ε̃ = {1 + w:g}·ε̂(x_t, y) − {w:g}·ε̂(x_t, ∅)", width="stretch"
        )
        st.caption(
            f"All three on the noise scale ({NOISE_CAPTION}). The difference between the first two is what the label "
            "says; guidance multiplies it, so the sample moves further towards the class."
            + ("" if interval is None else f" This model guides only for {interval[0]} ≤ t ≤ {interval[1]}"
               + ("." if w or not w_set else f": at t = {f.t} the sampler used ε̂(x_t, y) alone."))
        )  # fmt: skip


def step_charts(run, f) -> None:
    """How close each step's x̂₀ is to the run's result, and the size of ε̂, with the current step marked."""
    step_nums = list(range(1, run.num_steps + 1))
    charts = st.columns(2)
    kept, to_result = backend_reverse.psnr_to_result(run)
    photo = (step_nums, run.psnr) if run.psnr is not None else None
    chart = plots_reverse.estimate_chart(kept, to_result, [run.ts[i - 1] for i in kept], f.index + 1, photo)
    charts[0].plotly_chart(chart, width="stretch")
    charts[-1].plotly_chart(plots_reverse.eps_norm_chart(step_nums, run.eps_rms, run.ts, f.index + 1), width="stretch")
    st.caption(
        "Left: how close each step's x̂₀ is to the picture the run ends on (higher is closer): early estimates are "
        "blurry, late ones sharp."
        + (
            " Dotted: x̂₀ against your photo, nearly flat: the run ends on a picture near your photo, not on it."
            if photo is not None
            else ""
        )
    )
