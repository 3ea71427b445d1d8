"""Page: the sampler race. diffusers' own schedulers, quality against network evaluations, path straightness."""

from __future__ import annotations

import streamlit as st
import torch

from app.charts import particles as pp
from app.compute import models
from app.compute import particles as bp
from app.compute.models import ModelLoadError
from app.compute.particles import metrics, paths, race
from app.session import state, which_model

CONTESTS = ("Particles (exact denoiser)", "Fashion generator")
STEP_CHOICES = (4, 8, 16, 32)
REFERENCE = ("DPM-Solver++", 100)  # the Fashion race's yardstick: the same ODE solved finely
N_PARTICLES = 300
N_FASHION = 4
QUALITY = ("MMD² to the data", "RMS distance to the reference")  # the two contests' quality, lower is better
state.set_default("race_contest", CONTESTS[0])
state.set_default("race_names", list(race.SCHEDULERS))
state.set_default("race_steps", [4, 8, 16])
state.set_default("race_seed", 0)
state.set_default("race_data", "moons")
state.set_default("race_class", 7)

st.title("Sampler race")
st.markdown(
    "Every sampler solves the same problem from the same noise; they differ in how many times they ask the network. "
    "Here are diffusers' own schedulers, each built fresh for every run (they keep state between steps), scored "
    "against the number of network evaluations they spent. Flow matching's schedulers (dashed) move on straight "
    "lines in σ; Heun spends two evaluations per step (2N − 1 in all); DDPM is the only stochastic one."
)

contest = st.radio("Contest", CONTESTS, key="race_contest", horizontal=True, persist_state="session")
c1, c2, c3 = st.columns([3, 2, 1])
names = c1.multiselect("Schedulers", list(race.SCHEDULERS), key="race_names", persist_state="session")
counts = c2.multiselect("Steps", STEP_CHOICES, key="race_steps", persist_state="session")
seed = int(c3.number_input("Seed", 0, 2**31 - 1, key="race_seed", persist_state="session"))
if not names or not counts:
    st.warning("Pick at least one scheduler and one step count.")
    st.stop()
counts = sorted(int(c) for c in counts)


@st.cache_data(max_entries=32, show_spinner=False)
def particle_race(data_name: str, names: tuple[str, ...], counts: tuple[int, ...], seed: int):
    """Rows and paths of the particle race (exact denoiser of 300 points; quality = MMD² to the data)."""
    sched = bp.schedule()
    pts = bp.dataset(data_name, N_PARTICLES, seed)
    model = race.exact_particle_model(sched, pts)
    noise = paths.start_noise(N_PARTICLES, seed + 1)
    runs, bar = [], st.progress(0.0, text="Racing…")
    total = len(names) * len(counts)
    for run in race.race(model, sched, noise, names, counts, seed=seed, clip_sample=False):
        runs.append(run)
        bar.progress(len(runs) / total, text=f"{run.name}, {run.num_steps} steps")
    bar.empty()
    quality = {(r.name, r.num_steps): metrics.mmd(r.final, pts) for r in runs}
    return bp.race_rows(runs, quality), {(r.name, r.num_steps): r.path[:, :40].numpy() for r in runs}, pts.numpy()


@st.cache_data(max_entries=16, show_spinner=False)
def fashion_race(model_key: str, names: tuple[str, ...], counts: tuple[int, ...], seed: int, label: int, _model):
    """Rows and final pictures of the Fashion race (quality = RMS distance to the reference ODE solution)."""
    sched = _model.schedule
    contestant = race.eps_network_model(sched, bp.fashion_eps(_model, label))
    r = _model.resolution
    noise = torch.randn(N_FASHION, _model.channels, r, r, generator=torch.Generator().manual_seed(seed))
    total = len(names) * len(counts) + 1
    bar = st.progress(0.0, text=f"The reference: {REFERENCE[0]} with {REFERENCE[1]} steps…")
    ref = race.run_one(*REFERENCE, contestant, sched, noise, seed=seed).final
    runs = []
    for run in race.race(contestant, sched, noise, names, counts, seed=seed):
        runs.append(run)
        bar.progress((len(runs) + 1) / total, text=f"{run.name}, {run.num_steps} steps")
    bar.empty()
    quality = {(q.name, q.num_steps): float((q.final - ref).pow(2).mean().sqrt()) for q in runs}
    pictures = {(q.name, q.num_steps): bp.to_uint8(q.final) for q in runs}
    return bp.race_rows(runs, quality), pictures, bp.to_uint8(ref)


def steps_label(n: int) -> str:
    return f"{n} steps"


def table(rows: list[dict], quality_label: str) -> list[dict]:
    """The race's rows with every column named by what it measures and which way is better."""
    return [
        {
            "scheduler": r["scheduler"],
            "steps": r["steps"],
            "network evaluations (fewer is cheaper)": r["evaluations"],
            f"{quality_label} (lower is better)": round(float(r["quality"]), 4),
            "path straightness (1 = a straight line)": round(float(r["straightness"]), 3),
        }
        for r in rows
    ]


def heun_note(name: str, steps: int, path) -> str:
    """One sentence on why Heun's particle paths overshoot at few steps, with this run's own figures."""
    sigma, gain = race.heun_last_check(name, steps, bp.schedule())
    far = float(abs(path).max())
    return (
        f"{name} is not broken: it checks each step by asking the network again at the step's end and averaging the "
        f"two slopes, and at {steps} steps its last check lands at σ = {sigma:.3g}, where x̂₀ snaps to the nearest "
        f"point, so the average multiplies that jump by {gain:.0f} and its paths reach |x| = {far:.1f} (diffusers' "
        "own sampling loop does the same; the jump shrinks as the steps grow)."
    )


rows: list[dict] = []
if contest == CONTESTS[0]:
    data_name = st.radio("Data", ("moons", "rings"), key="race_data", horizontal=True, persist_state="session")
    rows, race_paths, pts = particle_race(data_name, tuple(names), tuple(counts), seed)
    st.plotly_chart(pp.race_figure(rows, QUALITY[0]), width="stretch")
    shown = st.select_slider(
        "Paths at", counts, value=counts[len(counts) // 2], format_func=lambda n: f"{n} steps", key="race_paths"
    )
    groups = {name: race_paths[(name, shown)] for name in names}
    st.plotly_chart(
        pp.paths_figure(pts, groups, f"40 paths per scheduler at {shown} steps, in the flow frame"), width="stretch"
    )
    st.caption(
        "Every state is drawn in the flow frame x / (√ᾱ + √(1−ᾱ)), where a one-point data set gives straight lines, "
        "so all schedulers share one picture. DDPM and DDIM use timestep_spacing='trailing' (their default "
        "'leading' would start below t = 999), and clip_sample is off (points are not pixels)."
    )
    heun = [n for n in names if "Heun" in n]
    if heun:
        st.caption(heun_note(heun[0], counts[0], race_paths[(heun[0], counts[0])]))
else:
    try:
        with st.spinner("Loading the Fashion generator…"):
            model = models.get_bundled("fashion")
    except ModelLoadError as exc:
        st.error(f"{exc}")
        st.stop()
    classes = list(model.classes or [])
    label = st.selectbox("Class", range(len(classes)), key="race_class", format_func=lambda i: classes[i])
    st.caption(
        f"{N_FASHION} pictures per run. Quality = RMS distance (pixel values in [−1, 1]) to the same noise solved "
        f"finely by {REFERENCE[0]} in {REFERENCE[1]} steps: the ODE's own answer. DDPM, DDIM and Heun keep the "
        "model's clip_sample = True (it was sampled with it: x̂₀ is clamped to [−1, 1] at every step); the flow "
        "schedulers get the same ε-network's velocity v̂ = (x_σ − x̂₀)/σ, with x̂₀ clamped the same way. DDPM is "
        "stochastic, so it never converges to the ODE's answer."
    )
    if st.button("Run the race", type="primary") or st.session_state.get("race_ran"):
        st.session_state["race_ran"] = True
        rows, pictures, ref = fashion_race(
            which_model.model_key() + ":fashion", tuple(names), tuple(counts), seed, int(label), model
        )
        st.plotly_chart(pp.race_figure(rows, QUALITY[1]), width="stretch")
        shown = st.select_slider("Pictures at", counts, value=counts[len(counts) // 2], format_func=steps_label)
        # one row per scheduler, its name in a column of its own: a caption under a 64-px picture broke names
        # mid-word ("FlowMatc h Euler")
        for name, pics in [("reference", ref)] + [(n, pictures[(n, shown)]) for n in names]:
            c1, c2 = st.columns([1, 3], vertical_alignment="center")
            c1.markdown(f"**{name}**" + ("" if name == "reference" else f", {steps_label(shown)}"))
            c2.image(list(pics), width=64)
if rows:
    label = QUALITY[0] if contest == CONTESTS[0] else QUALITY[1]
    st.dataframe(table(rows, label), hide_index=True)
