"""The frequency view (issue 27): one section on the Forward page, one on the Reverse trajectory page.

Each page calls one function here with what it already has (the image, the schedule, t, x_t; or the stored run
and the current step); the math is :mod:`model.images.spectrum`, the chart :func:`app.charts.frequency.spectrum_chart`.
The section is off until its toggle is switched on, like the Markov chain's, so a classroom's slider steps pay for
it only where a student asked for it; once on, it follows the slider (it is drawn inside the same fragment or
function as the pictures).
"""

from __future__ import annotations

import numpy as np
import streamlit as st

from app.charts import frequency as plots_frequency
from app.session import image
from model.diffusion.schedule import Schedule
from model.images import spectrum

FORWARD_INTRO = (
    "Every picture is a sum of waves, from broad shapes (left of the chart) to fine detail (right). A photo has "
    "much more power in the broad waves; the noise adds the **same** power to every wave. Where the noise is "
    "louder than the photo (the shaded band), that detail is gone: the finest detail drowns first."
)
TRAJECTORY_INTRO = (
    "The same chart during the reverse run. At this step's t the noise in x_t drowns every frequency right of "
    "f_max (shaded): there the network cannot see the picture and has to invent the detail. Move the step and "
    "watch the spectrum of x̂₀, the network's guess: the broad waves settle early, the fine ones fill in last, "
    "**coarse to fine**."
)
FLAT_IMAGE = (
    "This picture is one flat colour, so it has no detail at any frequency for the noise to drown: "
    "choose a photo with some texture to see the frequency view."
)
TOGGLE_HELP = "The radially averaged power spectrum (orthonormal FFT, log-log), redrawn at every t. Off by default."


@st.cache_data(max_entries=128, show_spinner=False)
def photo_spectrum(image_key: str, resolution: int, _x0) -> tuple[np.ndarray, np.ndarray]:
    """(radius, R_0) of the current photo (``_x0``: (1, C, H, W) in [-1, 1]), once per photo and resolution."""
    return spectrum.radial_power_spectrum(_x0)


def _detail_px(side: int, f: int) -> str:
    return f"{side / f:.3g} px"


def describe(view: spectrum.SpectrumAtT, what: str = "the photo") -> str:
    """One sentence with the numbers: the floor and where ``what`` still stands out of the noise."""
    head = f"At t = {view.t} the noise floor is 1 − ᾱ_t = {view.floor:.3g}"
    if view.f_max <= 0:
        return f"{head}: it lies above {what} at every frequency, so nothing of {what} stands out any more."
    if view.f_max >= view.radius[-1]:
        return f"{head}: {what} stands out at every frequency, down to the finest detail ({_detail_px(view.side, view.f_max)})."
    return (
        f"{head}: {what} stands out up to f_max = {view.f_max} cycles per image (detail of about "
        f"{_detail_px(view.side, view.f_max)} and larger); everything finer is drowned."
    )


def _slope_note(radius: np.ndarray, power0: np.ndarray) -> str:
    slope = spectrum.spectral_slope(radius, power0)
    return f" This photo's power falls as about 1/f^{slope:.1f} (natural photos: about 1/f²; white noise: flat)."


def forward_section(img: image.CurrentImage, schedule: Schedule, t: int, x_t) -> None:
    """The Forward page's frequency view of x_t (``x_t``: (1, C, H, W), the page's x_t at ``t``)."""
    st.subheader("Which details drown first?")
    st.markdown(FORWARD_INTRO)
    if not st.toggle("Show the frequency view", key="fwd_freq", persist_state="session", help=TOGGLE_HELP):
        return
    try:
        radius, power0 = photo_spectrum(img.key, img.resolution, img.x0)
        _, measured = spectrum.radial_power_spectrum(x_t)
        if spectrum.is_flat(power0):
            st.info(FLAT_IMAGE)
            return
        view = spectrum.spectrum_at(schedule, t, radius, power0, measured)
    except (spectrum.SpectrumError, ValueError) as exc:
        st.info(str(exc))
        return
    limits = plots_frequency.y_range(power0, float(spectrum.noise_floor(schedule, 0)))
    fig = plots_frequency.spectrum_chart(view, f"Power at each frequency, t = {t}", y_limits=limits)
    st.plotly_chart(fig, width="stretch")
    st.caption(describe(view) + _slope_note(radius, power0))


def _reference(stored: dict) -> tuple[np.ndarray, np.ndarray, str]:
    """The run's reference spectrum (the photo, or the finished sample from pure noise), kept with the run."""
    cached = stored.get("spectrum")
    if cached is None:
        if stored.get("x0") is not None:
            radius, power0 = spectrum.radial_power_spectrum(stored["x0"])
            name = "x₀: the photo, R₀"
        else:
            radius, power0 = spectrum.picture_power_spectrum(stored["run"].final)
            name = "the finished sample, R₀"
        cached = stored["spectrum"] = (radius, power0, name)
    return cached


def trajectory_section(stored: dict, frame, schedule: Schedule) -> None:
    """The Reverse trajectory page's frequency view of x̂₀ at the current step.

    ``stored``: the page's stored run (``{"run": Run, "x0": tensor or None, ...}``; the reference spectrum is kept
    in it); ``frame``: the current :class:`model.images.figure.Frame`; ``schedule``: the run's schedule.
    """
    st.subheader("Coarse to fine: the frequency view")
    st.markdown(TRAJECTORY_INTRO)
    if not st.toggle("Show the frequency view", key="traj_freq", persist_state="session", help=TOGGLE_HELP):
        return
    try:
        radius, power0, name = _reference(stored)
        _, measured = spectrum.picture_power_spectrum(frame.x0_hat)
        if spectrum.is_flat(power0):
            st.info(FLAT_IMAGE)
            return
        view = spectrum.spectrum_at(schedule, frame.t, radius, power0, measured)
    except (spectrum.SpectrumError, ValueError) as exc:
        st.info(str(exc))
        return
    limits = plots_frequency.y_range(power0, float(spectrum.noise_floor(schedule, 0)))
    title = f"Power at each frequency, step {frame.index + 1} (t = {frame.t})"
    fig = plots_frequency.spectrum_chart(
        view, title, reference_name=name, measured_name="x̂₀ at this step", y_limits=limits
    )
    st.plotly_chart(fig, width="stretch")
    what = "the photo" if stored.get("x0") is not None else "the finished sample"
    st.caption(describe(view, what) + " x̂₀ is the network's guess of the clean picture from this x_t.")
