"""Page: the training objective, from the negative log-likelihood to the simple loss, on the current image."""

from __future__ import annotations

import numpy as np
import streamlit as st
import torch

from app.charts import objective as plots_objective
from app.charts.render import picture
from app.compute import estimates
from app.compute import objective as bo
from app.compute.objective import lk, q_sample
from app.session import state, which_model
from app.ui import pictures
from app.ui.common import progress_bar, progressive, require_image, require_model

state.set_default("obj_seed", 0)
state.set_default("obj_n", bo.DEFAULT_SAMPLED_T)
state.set_default("obj_draws", bo.DEFAULT_DRAWS)
state.set_default("obj_lr", 1e-4)
ALL_KEY, STEP_KEY = "obj_all_for", "obj_step_result"
TARGETS = {"epsilon": "ε", "v_prediction": "v = √ᾱ_t ε − √(1−ᾱ_t) x₀", "sample": "x₀"}

st.title("Training objective: from the likelihood to the simple loss")
st.markdown(
    "What does training a diffusion model actually minimise? The principled answer is the **negative "
    "log-likelihood** of the image. It cannot be computed directly, so we bound it, split the bound into one "
    "term per timestep, and find that each term is a **weighted noise-prediction error**. Drop the weights and "
    "you get the **simple loss** that everybody trains with. Every step below is computed live, with the "
    "current model, on your image."
)

img = require_image()
model = require_model()
sched = model.schedule
T = sched.T
try:
    weights = lk.loss_weights(sched)
except ValueError as exc:
    st.error(f"{exc} Pick another model in the sidebar.")
    st.stop()
mkey = which_model.model_key()
D = 3 * img.resolution**2

c1, c2, c3 = st.columns(3)
seed = int(
    c1.number_input(
        "Seed",
        min_value=0,
        max_value=2**31 - 1,
        step=1,
        key="obj_seed",
        persist_state="session",
        help="Seeds the torch.Generator for every noise draw and sampled t on this page.",
    )
)
n = c2.select_slider(
    "Sampled t for the bound",
    options=[20, 50, 100, 200],
    key="obj_n",
    persist_state="session",
    help="The bound is estimated from this many sampled timesteps, plus L_0 computed at t = 0 (never sampled); "
    "the error falls like 1/√N. Press the button below for all of them.",
)
draws = c3.select_slider(
    "Noise draws per t (ε-MSE chart)", options=[1, 2, 3, 5], key="obj_draws", persist_state="session"
)

# --- 1. the model -------------------------------------------------------------------------------
st.header("1. A chain of Gaussians")
# A sentence and a picture before the first formula (the Start-here rule): the chain, on your image.
CHAIN_TS = (T - 1, (2 * T) // 3, T // 3, 0)
st.markdown(
    "The model's story of your picture runs backwards through the noise: pure noise, then less and less noise, "
    "down to the picture. Each step is a small random change, a Gaussian."
)
chain = st.container(key="pics_obj_chain").columns(len(CHAIN_TS) + 1)  # "pics_": stays one row on a phone
for c, t in zip(chain, CHAIN_TS, strict=False):
    x_t, _ = q_sample(sched, img.x0, t, generator=torch.Generator().manual_seed(seed))  # this model's schedule
    c.image(picture(x_t), caption=f"x_t at t = {t}", width="stretch")
chain[-1].image(pictures.photo(img.key, img.resolution, img.x0), caption="x₀: your picture", width="stretch")
# Every long formula on this page is broken into short lines (gathered), so that it fits a phone's 400 px.
st.latex(
    r"\begin{gathered} p_\theta(x_{0:T}) = p(x_T)\prod_{t=1}^{T} p_\theta(x_{t-1}\mid x_t) \\ "
    r"p(x_T)=\mathcal N(0, I) \\ p_\theta(x_{t-1}\mid x_t)=\mathcal N\big(\mu_\theta(x_t,t),\ \sigma_t^2 I\big)"
    r" \end{gathered}"
)
st.caption(
    f"This model: T = {T} steps, {sched.name} schedule, σ_t² = {'β̃_t' if 'small' in sched.variance_type else 'β_t'} "
    f"(variance_type {sched.variance_type}), {model.num_parameters / 1e6:.2f} M parameters. "
    f"Your image x₀ has D = 3 × {img.resolution}² = {D:,} dimensions (8-bit values)."
    + (
        f" The network outputs {TARGETS.get(sched.prediction_type, sched.prediction_type)}; ε_θ below is "
        "computed from that output."
        if sched.prediction_type != "epsilon"
        else ""
    )
)

# --- 2. NLL and the bound -----------------------------------------------------------------------
st.header("2. The negative log-likelihood, and a bound on it")
st.latex(
    r"\begin{aligned} -\log p_\theta(x_0) &= -\log\!\int p_\theta(x_{0:T})\,dx_{1:T} \\"
    r" &\le \mathbb E_q\!\left[-\log\frac{p_\theta(x_{0:T})}{q(x_{1:T}\mid x_0)}\right] =: L \end{aligned}"
)
st.latex(
    r"\begin{aligned} L = {} & \underbrace{D_{KL}\big(q(x_T\mid x_0)\,\|\,p(x_T)\big)}_{L_T} \\"
    r" & + \sum_{t>1}\underbrace{D_{KL}\big(q(x_{t-1}\mid x_t,x_0)\,\|\,p_\theta(x_{t-1}\mid x_t)\big)}_{L_{t-1}}"
    r" \\ & \underbrace{-\,\log p_\theta(x_0\mid x_1)}_{L_0} \end{aligned}"
)
st.markdown(
    "The integral over every path $x_{1:T}$ is intractable; Jensen's inequality with the forward process $q$ "
    "gives the variational bound $L$ (Ho et al. 2020, eq. 5). $L_0$ is a *discretised* Gaussian: each pixel "
    "value is one of 256 bins, so $L_0$ is a real probability and the whole bound is a code length. "
    r"Divided by $D\ln 2$ it is in **bits per dimension**: a raw 8-bit picture costs exactly 8."
)

all_settings = (img.key, img.resolution, mkey, seed)
full = None
if st.session_state.get(ALL_KEY) == all_settings:
    with progress_bar() as progress:
        full = bo.bound_all(img.key, img.resolution, mkey, seed, img.x0, model, progress)
codec = bo.codecs(img.key, img.resolution, img.x0)
# The network's numbers (sections 2, 3 and 5) are computed chunk by chunk at the end of the page, which first
# lays out everything else; each box below is redrawn after every chunk, so partial charts fill in (issue 20).
bound_box, bits_box, note_box = st.empty(), st.empty(), st.empty()
bits_drawn: list[bool] = []  # the bits chart's states drawn so far (partial: False, final: True)


def show_bound(est: dict) -> None:
    """Section 2's metrics, chart and captions from ``est``, an item of ``bo.bound_estimate_steps`` (maybe partial)."""
    partial = est["done"] < est["of"]
    with bound_box.container():
        _show_metrics(est, partial)
    if (full is not None or not partial) not in bits_drawn:  # the chart changes once: when the bound is known
        bits_drawn.append(full is not None or not partial)
        with bits_box.container():
            _show_bits(est, partial)
    with note_box.container():
        _show_note(est, partial)


def _show_metrics(est: dict, partial: bool) -> None:
    m1, m2, m3, m4 = st.columns(4)
    if full is not None:
        m1.metric("Bound L, all t (bits/dim)", f"{full['total']:.3f}", help=f"All {T} terms, one noise draw each.")
    elif partial:
        m1.metric("Bound L (bits/dim)", "…", help=f"Computing: {est['done']} of {est['of']} terms so far.")
    else:
        m1.metric(
            "Bound L (bits/dim)",
            f"{est['total']:.2f} ± {est['stderr']:.2f}",
            help=f"Estimated from {est['n']} sampled t. Unbiased: L_0 (always computed) + the mean of L_t / p(t) over t drawn "
            "with p(t) ∝ λ_t (section 4), ± one standard error.",
        )
    m2.metric("PNG, lossless (bits/dim)", f"{codec['png']:.3f}")
    m3.metric("JPEG q90, lossy (bits/dim)", f"{codec['jpeg']:.3f}")
    m4.metric(
        "L_0, the decoder (bits/dim)",
        "…" if partial and full is None else f"{(full or est)['decoder']:.3f}",
        help=L0_HELP,
    )


# L_0 is never left to sampling, but it is not exact either: it is -log p(x_0 | x_1) at one noise draw of x_1,
# which its own generator draws from the seed (bo.decoder_generator), so the estimate and all terms agree.
L0_HELP = (
    "Computed at t = 0 every time (never left to sampling), for one noise draw of x_1 fixed by the seed: "
    "the estimate and 'Compute all terms' use the same x_1 and show the same value. Another seed draws "
    "another x_1, and L_0 moves a little."
)


def _show_bits(est: dict, partial: bool) -> None:
    bars, errors = {"PNG": codec["png"], "JPEG q90": codec["jpeg"], "raw 8-bit": 8.0}, {}
    if full is not None or not partial:  # the bound's bar comes first, once it is known
        total, err = (full["total"], 0.0) if full is not None else (est["total"], est["stderr"])
        bars, errors = {"diffusion bound L": total, **bars}, {"diffusion bound L": err}
    st.plotly_chart(plots_objective.bits_chart(bars, errors, first_is_bound=bool(errors)), width="stretch")
    st.caption(
        f"All numbers at the working resolution {img.resolution} px, image quantised to 8 bits. "
        "PNG is an exact code for the same pixels (headers included, which weigh at small sizes); JPEG throws "
        "detail away, so it is only a rough reference. A well-trained model's bound beats PNG; the prior term "
        f"L_T = {est['prior']:.1e} bits/dim is negligible."
    )


def _show_note(est: dict, partial: bool) -> None:
    if partial:
        text = f"Bound terms at {est['of'] - 1} sampled t + L_0: {est['done']}/{est['of']}"
        st.progress(est["done"] / est["of"], text=text)
    elif full is None:
        # a measured pass at the batch the terms use × the passes, plus the loop's own work
        secs = estimates.all_terms(model, img.resolution).seconds
        st.caption(
            f"Estimate: {est['n']} sampled t + L_0 in {est['seconds']:.1f} s. All {T} terms would take about "
            f"{secs:.0f} s here."
        )
        if st.button(f"Compute all {T} terms (about {secs:.0f} s)", key="obj_all_go"):
            st.session_state[ALL_KEY] = all_settings
            with progress_bar() as progress:
                bo.bound_all(img.key, img.resolution, mkey, seed, img.x0, model, progress)
            st.rerun()
    else:
        st.caption(
            f"All {T} terms in {full['seconds']:.1f} s (one noise draw per t, as improved-diffusion's "
            "calc_bpd_loop). The sampled estimate was "
            f"{est['total']:.2f} ± {est['stderr']:.2f} bits/dim."
        )


# --- 3. the KL terms ----------------------------------------------------------------------------
st.header("3. Each term is a KL divergence between two Gaussians")
st.latex(
    r"\begin{gathered} q(x_{t-1}\mid x_t,x_0) = \mathcal N\big(\tilde\mu_t,\ \tilde\beta_t I\big) \\ "
    r"\tilde\mu_t = \frac{\sqrt{\bar\alpha_{t-1}}\,\beta_t}{1-\bar\alpha_t}x_0 + "
    r"\frac{\sqrt{\alpha_t}(1-\bar\alpha_{t-1})}{1-\bar\alpha_t}x_t \\ "
    r"\tilde\beta_t = \frac{1-\bar\alpha_{t-1}}{1-\bar\alpha_t}\beta_t \end{gathered}"
)
st.latex(
    r"\begin{aligned} L_{t-1} &= D_{KL}\big(\mathcal N(\tilde\mu_t,\tilde\beta_t I)\,\|\,\mathcal N(\mu_\theta,\sigma_t^2 I)\big)"
    r" \\ &= \frac{1}{2\sigma_t^2}\lVert\tilde\mu_t-\mu_\theta(x_t,t)\rVert^2 + C_t \end{aligned}"
)
terms_box = st.empty()


def show_terms(est: dict) -> None:
    """Section 3's chart of the terms: all T of them, or the sampled ones done so far."""
    src = full if full is not None else est
    with terms_box.container():
        st.plotly_chart(
            plots_objective.bound_terms_chart(src["ts"], src["terms"], exact=full is not None, T=T),
            width="stretch",
            key=f"obj_terms_{'all' if full is not None else est['done']}",
        )
        ts_arr, terms_arr = np.asarray(src["ts"]), np.asarray(src["terms"])
        if full is not None:
            cut = max(1, T // 10)
            share = float(terms_arr[ts_arr < cut].sum() / max(terms_arr.sum(), 1e-12))
            st.caption(
                f"The first {cut} timesteps (including L_0) carry {share:.0%} of the bound: almost all the bits "
                "are spent describing fine detail that only the last denoising steps decide."
            )
        else:
            st.caption("Points: the sampled t (drawn more often where the terms are large). The diamond is L_0.")


st.caption(
    "Timestep index t runs 0 … T−1 and index 0 is the first noising step, so the point at index t is "
    "Ho et al.'s L_t: the KL from x_t to x_{t−1} in index terms, and L_0 at index 0. x̂₀ is clipped to "
    "[−1, 1], as in improved-diffusion (the reference for published bits/dim)."
)

# --- 4. weights ---------------------------------------------------------------------------------
st.header("4. Predict the noise: each KL is a weighted ε-MSE")
st.latex(
    r"\begin{gathered} \mu_\theta(x_t,t) = \frac{1}{\sqrt{\alpha_t}}\Big(x_t - \frac{\beta_t}{\sqrt{1-\bar\alpha_t}}"
    r"\,\epsilon_\theta(x_t,t)\Big) \\ \Rightarrow\;"
    r"L_{t-1} = \underbrace{\frac{\beta_t^2}{2\sigma_t^2\,\alpha_t\,(1-\bar\alpha_t)}}_{\lambda_t}"
    r"\,\lVert\epsilon-\epsilon_\theta(x_t,t)\rVert^2 + C_t \end{gathered}"
)
vlb_n, simple_n = weights.normalised()
others = {}
if sched.prediction_type == "v_prediction":
    v_w = 1.0 / sched.alpha_bar  # ||v_hat - v||^2 = ||eps_hat - eps||^2 / alpha_bar_t
    others["v-loss (how this model was trained): 1/ᾱ_t"] = (v_w / v_w.mean()).tolist()
st.plotly_chart(plots_objective.weights_chart(vlb_n.tolist(), simple_n.tolist(), others), width="stretch")
ratio = float(weights.vlb[1] / weights.vlb[T - 1]) if T > 1 else 1.0
mid = int(np.argmin(np.abs(vlb_n.numpy()[1:] - 1.0))) + 1 if T > 1 else 0
st.markdown(
    f"The VLB puts **{ratio:.0f}×** more weight on the ε-MSE at t = 1 than at t = {T - 1}; the simple loss weights "
    f"every t the same. So, relative to the VLB, **the simple loss favours large t** (noisy inputs, above about "
    f"t = {mid}, where the two curves cross) and down-weights the small-t terms that dominate the bound. Ho et al. "
    "found that this gives better samples, while the bound (the likelihood) is better served by the true weights."
    + (
        " This model predicts v = √ᾱ_t ε − √(1−ᾱ_t) x₀ instead of ε; since v̂ − v = (ε̂ − ε)/√ᾱ_t, its loss is the "
        "ε-MSE weighted by 1/ᾱ_t (dotted), which leans even further towards large t."
        if sched.prediction_type == "v_prediction"
        else ""
    )
)

# --- 5. simple loss -----------------------------------------------------------------------------
st.header("5. The simple loss")
st.latex(
    r"\begin{gathered} L_\text{simple} = \mathbb E_{t,\,x_0,\,\epsilon}\Big[\big\lVert \epsilon - "
    r"\epsilon_\theta\big(x_t,\ t\big)\big\rVert^2\Big] \\ "
    r"x_t = \sqrt{\bar\alpha_t}\,x_0 + \sqrt{1-\bar\alpha_t}\,\epsilon \\ "
    r"t\sim\mathcal U\{0,\dots,T-1\},\ \epsilon\sim\mathcal N(0,I) \end{gathered}"
)
mse_box = st.empty()


def show_mse(curve: dict) -> None:
    """Section 5's chart from an item of ``bo.eps_mse_steps``: the draws done so far, then all of them."""
    with mse_box.container():
        st.plotly_chart(
            plots_objective.eps_mse_chart(curve["ts"], curve["mean"], curve["std"], curve["draws"], T),
            width="stretch",
            key=f"obj_mse_{curve['done']}",
        )
        if curve["done"] < curve["of"]:
            text = f"ε-MSE at {curve['of'] // int(draws)} values of t × {draws} draws: {curve['done']}/{curve['of']}"
            st.progress(curve["done"] / curve["of"], text=text)
        else:
            _mse_caption(curve)


def _mse_caption(curve: dict) -> None:
    avg = float(np.trapezoid(curve["mean"], curve["ts"]) / max(curve["ts"][-1] - curve["ts"][0], 1))
    st.caption(
        f"{len(curve['ts'])} values of t × {draws} draws of ε ({curve['seconds']:.1f} s, cached per image, model, "
        f"resolution and seed). Averaged over t, L_simple on this image ≈ {avg:.4f} per dimension "
        "(a network that always answers 0 scores 1)."
    )


# --- 6. the reparametrisation trick ---------------------------------------------------------------
st.header("6. The reparametrisation trick: one real training step")
st.latex(
    r"\begin{gathered} x_t = \sqrt{\bar\alpha_t}\,x_0 + \sqrt{1-\bar\alpha_t}\,\epsilon \\ \Rightarrow\; "
    r"\nabla_\theta\,\big\lVert\epsilon-\epsilon_\theta(x_t,t)\big\rVert^2 \text{ is an ordinary gradient}"
    r" \end{gathered}"
)
st.markdown(
    "The randomness lives in ε and t, drawn *outside* the network, and x_t is a deterministic, differentiable "
    "function of them, so back-propagation reaches θ. Below: draw a batch of 4 (t, ε) pairs on your image, "
    "take **one Adam step** on a private copy of the model, and measure the loss on the same batch before and "
    "after. The shared model that every page uses is never touched."
)
s1, s2 = st.columns([2, 1])
lr = s1.select_slider(
    "Learning rate",
    options=[1e-5, 3e-5, 1e-4, 3e-4, 1e-3],
    key="obj_lr",
    persist_state="session",
    format_func=lambda v: f"{v:.0e}",
)
step_settings = (img.key, img.resolution, mkey, seed, float(lr))
if s2.button("Take one training step", type="primary", key="obj_step_go"):
    with st.spinner("One training step on a private copy of the model…"):
        step = bo.train_step(img.key, img.resolution, mkey, seed, float(lr), img.x0, model)
    st.session_state[STEP_KEY] = (step_settings, step)
stored = st.session_state.get(STEP_KEY)
if stored is None:
    st.info("Press **Take one training step**.")
else:
    settings, r = stored
    if settings != step_settings:
        st.caption("The settings changed since this step; press the button again for the new one.")
    a, b, c = st.columns([1, 1, 2])
    a.metric("Loss before", f"{r['before']:.5f}")
    b.metric("Loss after", f"{r['after']:.5f}", delta=f"{r['after'] - r['before']:+.5f}", delta_color="inverse")
    target = TARGETS.get(r["target"], r["target"])
    short = {"epsilon": "ε", "v_prediction": "v", "sample": "x₀"}.get(r["target"], r["target"])
    c.plotly_chart(plots_objective.train_step_chart(r["before"], r["after"], short), width="stretch")
    st.caption(
        f"Batch t = {', '.join(map(str, r['ts']))}; gradient norm {r['grad_norm']:.3g}; the loss compares the "
        f"network's output with {target}, what this model was trained to predict; "
        f"{r['seconds']:.1f} s. One step on one batch overfits that batch a little; real training repeats this "
        "millions of times over many images."
    )

# --- the network's numbers, chunk by chunk --------------------------------------------------------
# Everything above is on screen already; the first chunk of the bound and of the ε-MSE put a partial chart in each
# box, then the rest fills them in (each chunk is cached, so a rerun with the same settings draws the result once).
bound_steps = progressive(bo.bound_estimate_steps(img.key, img.resolution, mkey, seed, int(n), img.x0, model))
mse_steps = progressive(bo.eps_mse_steps(img.key, img.resolution, mkey, seed, int(draws), img.x0, model))
est = next(bound_steps)
show_bound(est)
show_terms(est)
show_mse(next(mse_steps))
for est in bound_steps:
    show_bound(est)
    if full is None:  # all T terms, when shown, do not change
        show_terms(est)
for curve in mse_steps:
    show_mse(curve)
