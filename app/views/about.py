"""Page: the ideas of the source notes, each pointing to where the app makes it visible."""

from __future__ import annotations

import streamlit as st

# On a phone the table of ideas stacks: each row becomes a card of its three cells, so the formulas get the
# screen's width instead of a third of it (a 3-column table ran past the right edge of a 400-px screen).
PHONE_TABLE_CSS = """<style>
@media (max-width: 640px) {
  .st-key-about_ideas table, .st-key-about_ideas tbody, .st-key-about_ideas tr, .st-key-about_ideas td {
    display: block; width: 100%; box-sizing: border-box; }
  .st-key-about_ideas thead { display: none; }
  .st-key-about_ideas tr { border: 1px solid rgba(128, 128, 128, 0.3); border-radius: 0.5rem; margin-bottom: 0.6rem; }
  .st-key-about_ideas td { border: none; overflow-wrap: anywhere; }
  .st-key-about_ideas td:first-child { font-weight: 600; }
}
</style>"""

st.title("About the ideas")
st.markdown(
    r"""
Diffusion models **take an image and gradually add Gaussian noise until it is unrecognisable**, then use a
network that **gradually reverses** the process, one small denoising step at a time. Started from pure noise,
the same reverse process **generates** new images.
"""
)
st.html(PHONE_TABLE_CSS)
with st.container(key="about_ideas"):
    st.markdown(
        r"""
| idea | formula | where to see it |
|---|---|---|
| A Markov chain: each stage depends only on the previous one | $p_\theta(x_{0:T}) = p(x_T)\prod_{t=1}^{T} p_\theta(x_{t-1}\mid x_t)$ | *Reverse trajectory*: each row is one link |
| The forward process adds a bit of noise per step | $q(x_t\mid x_{t-1}) = \mathcal{N}(\sqrt{1-\beta_t}\,x_{t-1},\ \beta_t I)$ | *Forward process*, "step by step" |
| …and can be done in one jump | $x_t = \sqrt{\bar\alpha_t}\,x_0 + \sqrt{1-\bar\alpha_t}\,\epsilon$ | *Forward process*, the t slider |
| The backward process is Gaussian too | $p_\theta(x_{t-1}\mid x_t) = \mathcal{N}(\mu_\theta(x_t,t),\ \Sigma_\theta(x_t,t))$ | *Reverse trajectory* |
| The network predicts the **entire** noise | $\hat\epsilon = \epsilon_\theta(x_t, t)$, $\hat x_0 = (x_t - \sqrt{1-\bar\alpha_t}\,\hat\epsilon)/\sqrt{\bar\alpha_t}$ | *Denoise one step* |
| Only a little of it is removed per step | DDPM / DDIM step | *Reverse trajectory* |
| The reparametrisation trick makes it trainable | $\nabla_\theta \lVert \epsilon - \epsilon_\theta(\sqrt{\bar\alpha_t}x_0 + \sqrt{1-\bar\alpha_t}\epsilon, t)\rVert^2$ | *Training objective* |
| The objective: a bound on the NLL, simplified | $L = L_T + \sum_t L_{t-1} + L_0 \;\to\; L_\text{simple}$ | *Training objective* |
"""
    )
st.markdown(
    r"""
**Timestep convention.** The t slider runs over the indices 0 … 999 used by diffusers: index 0 is the
*first* noising step (so x_t at t = 0 already holds a trace of noise), and the clean photo is x₀.

**How noise is drawn on screen.** Every noise panel (ε, ε̂, ε̂ − ε) uses one normalisation: mid grey is 0,
black is −3, white is +3 (three standard deviations).

**Sources.** Ho, Jain & Abbeel (2020), *Denoising Diffusion Probabilistic Models*; Song, Meng & Ermon (2021),
*Denoising Diffusion Implicit Models*; Nichol & Dhariwal (2021), *Improved DDPM*; and Kemal Erdem's
[step-by-step visual introduction](https://erdem.pl/2023/11/step-by-step-visual-introduction-to-diffusion-models),
whose figure of predicted noise and full noise removal this app makes live.
"""
)
