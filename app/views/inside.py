"""Page: inside the network. The U-Net drawn from its config, and one recorded forward pass on x_t:
feature maps, the time (and label) embedding, one ResNet block step by step, and self-attention."""

from __future__ import annotations

import math

import numpy as np
import streamlit as st

from app.charts import inside as plots_inside
from app.charts.render import DISPLAY_PX, NOISE_CAPTION, to_picture
from app.compute import inside as backend_inside
from app.compute.inside import FEATURE_RANGE, query_weights
from app.session import state, urlstate, which_model
from app.session.text import code
from app.ui.common import require_image, require_model

KEEP = "session"  # persist_state: widget values survive a trip to another page (Streamlit >= 1.67)
for key, value in {"ins_t": 500, "ins_seed": 0, "ins_block": None, "ins_qrow": 0, "ins_qcol": 0}.items():
    state.set_default(key, value)

st.title("Inside the network: what the U-Net does with x_t")
st.markdown(
    "Every other page treats the network as a box: a noisy picture and its step number t go in, the noise the "
    "network guesses comes out. Here is the box, opened on your image: the architecture read from the model's own config, "
    "and one real forward pass with every block's output recorded. Move **t** and watch the inside change "
    "from a noisy input to a clean one."
)

# The settings are drawn before the image is read: while an upload is on its way there is no image and the
# page stops, and a widget that disappears and comes back showed its default (t = 0) in the browser while
# the pictures kept the old t (issue 17).
model = require_model()
T = model.schedule.T
state.follow_shared("t", "ins_t", hi=T - 1)
state.follow_shared("seed", "ins_seed")
if st.session_state["ins_t"] > T - 1:
    st.session_state["ins_t"] = T - 1

c1, c2, c3 = st.columns([4, 1, 2])
t = c1.slider(
    "Timestep t", 0, T - 1, key="ins_t", persist_state=KEEP, help="t = 0 is the first noising step, t = T − 1 the last."
)
seed = int(c2.number_input("Seed", min_value=0, max_value=2**31 - 1, step=1, key="ins_seed", persist_state=KEEP))
state.publish_shared("t", "ins_t", t)
state.publish_shared("seed", "ins_seed", seed)
options = backend_inside.label_options(model)
label, label_name = None, None
if options:
    names = list(options)
    if st.session_state.get("ins_label") not in names:
        st.session_state["ins_label"] = names[0]
    label_name = c3.selectbox(
        "Class label y",
        names,
        key="ins_label",
        persist_state=KEEP,
        help="This model is class-conditional: its label embedding is added to the time embedding.",
    )
    label = options[label_name]

img = require_image()
mkey = which_model.model_key()
r = backend_inside.inside_pass(img.key, img.resolution, mkey, t, seed, label, img.x0, model)
arch = backend_inside.architecture(mkey, r.resolution, model)
cap = r.capture
for note in cap.notes:
    st.info(note)
if r.resolution != img.resolution:
    st.info(
        f"This network needs sizes that are multiples of {model.size_multiple} px, so x_t is padded "
        f"(mirrored) from {img.resolution} to {r.resolution} px; shapes below are at {r.resolution} px."
    )

# --- in and out ------------------------------------------------------------------------------------
st.subheader(f"In and out, at t = {t}")
a, b, c = st.columns([1, 1, 2])
a.image(to_picture(r.x_t, DISPLAY_PX), caption=f"x_t: the input at t = {t}", width="stretch")
b.image(to_picture(r.eps_hat, DISPLAY_PX), caption="ε̂ = ε_θ(x_t, t): what it predicts", width="stretch")
c.markdown(
    "Everything below happens between these two pictures. The network never outputs a cleaner image: "
    "from the whole of $x_t$ (and $t$) it predicts the **whole** noise $\\hat\\epsilon$ that was mixed in. "
    "To do that it has to see both the fine grain of the noise and the shapes of the picture underneath, "
    "which is what the U shape is for."
)
c.caption(f"ε̂ on the noise scale: {NOISE_CAPTION}. One forward pass with the recording: {r.seconds * 1000:.0f} ms.")

# --- the architecture and the selected block's feature maps ------------------------------------------
st.subheader("The architecture, read from the model's config")
part_names = [p.name for p in arch.parts]
linked = urlstate.from_link("ins_block")
if st.session_state.get("ins_block") not in part_names:
    # The default is the last up block: full resolution, where the feature maps show the photo's shapes (the mid
    # block, at 1/8 or 1/16 of the size, shows a few pixels).
    ups = [p.name for p in arch.parts if p.kind == "up"]
    st.session_state["ins_block"] = ups[-1] if ups else part_names[0]
    if linked is not None:
        st.warning(
            f"In the link, block={code(linked)} is not a block of this model, so this page shows "
            f"{st.session_state['ins_block']}; its blocks are {', '.join(part_names)}."
        )
left, right = st.columns([3, 2], gap="large")
with right:
    block = st.selectbox(
        "Block to look into",
        part_names,
        key="ins_block",
        persist_state=KEEP,
        format_func=lambda n: f"{n} · {arch.part(n).class_name}",
        help="Highlighted in the diagram; the feature maps, the ResNet block and the attention below follow it.",
    )
part = arch.part(block)
shapes = {n: m.shape for n, m in cap.parts.items()}
with left:
    st.graphviz_chart(plots_inside.architecture_dot(arch, block, shapes, label_name), width="stretch")
    st.caption(
        f"{plots_inside.count(arch.total_params)} parameters in all; shapes are channels × height × width at "
        f"{r.resolution} px. Going down, each level halves the picture and widens the channels: fewer, coarser "
        "positions that each see more of the image. Going up, the dashed **skip connections** hand each level "
        "the down path's tensors of the same size (concatenated to its input), so the fine detail of the noise "
        "is not lost on the way through the bottleneck. Blue blocks have self-attention."
    )
unknown = [p.name for p in arch.parts if not p.known]
if unknown:
    st.info(
        f"This page does not know the block type of {', '.join(unknown)}: their shapes come from the forward "
        "pass rather than the config, and the views below show what could be recorded."
    )
maps = cap.parts[block]
with right:
    st.markdown(f"**Feature maps of {block}, live at t = {t}**")
    st.image(
        plots_inside.mosaic(maps.pictures, tile=160, columns=2),
        caption=(
            f"{block}'s output, {plots_inside.shape_text(maps.shape)}: channels "
            f"{', '.join(map(str, maps.channels))} (its {len(maps.channels)} most active of {maps.shape[0]})"
        ),
        width="stretch",
    )
    st.caption(
        f"One scale for every channel of a tensor: grey = 0, black = −{FEATURE_RANGE:g} × RMS, white = "
        f"+{FEATURE_RANGE:g} × RMS (RMS of this tensor: {maps.rms:.3g}). Near the input and the output the maps "
        "are as fine as the image and respond to edges and grain; deep down they are coarse and each position "
        "sees a large part of the image. Move t: at large t they mostly respond to the noise, at small t to "
        "the photo's shapes."
    )
with st.expander("Every block at this t (the down path left, the up path right)", expanded=False):
    down_col, up_col = st.columns(2)
    for p in arch.parts:
        m = cap.parts.get(p.name)
        if m is None:
            continue
        col = down_col if p.kind in ("in", "down", "mid") else up_col
        col.image(
            plots_inside.mosaic(m.pictures, tile=64),
            caption=f"{p.name}: {plots_inside.shape_text(m.shape)}, channels {', '.join(map(str, m.channels))}",
        )

# --- the time embedding ------------------------------------------------------------------------------
st.subheader("The time embedding" + (" and the label embedding" if options else ""))
st.markdown(
    "The network is told t, because how much noise to expect depends on it: the same x_t needs a different "
    "ε̂ at t = 50 than at t = 900. t becomes a pattern of sines and cosines of different frequencies, a small "
    "MLP turns that into an embedding vector, and every ResNet block adds its own linear projection of it "
    "to its feature maps."
)
ts, table = backend_inside.time_table(mkey, T, model)
if arch.time_kind != "sinusoidal":
    st.info(f"This model's time projection is a {arch.time_kind}, not sinusoidal: the heat-map shows its own output.")
st.plotly_chart(plots_inside.time_heatmap(ts, table, t), width="stretch")
e1, e2 = st.columns(2)
e1.plotly_chart(plots_inside.features_chart(r.emb.features.numpy(), t), width="stretch")
label_vec = None if r.emb.label is None else r.emb.label.numpy()
e2.plotly_chart(plots_inside.embedding_chart(r.emb.time.numpy(), label_vec, label_name or ""), width="stretch")
if label_vec is not None:
    st.caption(
        f"A class-conditional model adds the label's learned embedding ({label_name}) to the time embedding, "
        "so every ResNet block is told both how noisy x_t is and which class to aim for."
    )
steps = list(cap.resnets.values())
if steps:
    st.plotly_chart(
        plots_inside.injection_chart(
            [s.name for s in steps], [s.time_rms for s in steps], [s.conv1_rms for s in steps]
        ),
        width="stretch",
    )
    st.caption(
        "Each bar is the RMS of what a ResNet block adds to its feature maps for this t (one number per "
        "channel, the same at every position), beside the RMS of the conv output it is added to."
    )

# --- one ResNet block, step by step --------------------------------------------------------------------
st.subheader("One ResNet block, step by step")
shown = [n for n in part.resnets if n in cap.resnets]
if not part.resnets:
    st.info(f"{block} has no ResNet block: pick a down, mid or up block above.")
elif not shown:
    st.info(f"The ResNet blocks of {block} are of a kind this page cannot take apart.")
else:
    if st.session_state.get("ins_resnet") not in shown:
        st.session_state["ins_resnet"] = shown[0]
    rname = st.selectbox("ResNet block", shown, key="ins_resnet") if len(shown) > 1 else shown[0]
    steps_r = cap.resnets[rname]
    st.markdown(
        "GroupNorm → SiLU → conv → **+ time projection** → GroupNorm → SiLU → conv → **+ skip** "
        "(the block's input, added back at the end). "
        + (
            "In an up block the input is the path from below concatenated with a skip from the down path. "
            if part.kind == "up"
            else ""
        )
    )
    per_row = 4
    stages = steps_r.stages
    for start in range(0, len(stages), per_row):
        cols = st.columns(per_row)
        for i, (lab, m) in enumerate(stages[start : start + per_row]):
            cols[i].image(
                plots_inside.mosaic(m.pictures, tile=64, columns=2),
                caption=f"{start + i + 1}. {lab}: {plots_inside.shape_text(m.shape)}",
                width="stretch",
            )
    st.caption(
        f"Recomputed from {rname}'s own layers; the last stage equals the block's output to within "
        f"{steps_r.max_error:.1e}. The same channels are followed from the input to the first conv (the input's "
        "most active ones) and from the conv to the output (the output's). The time projection adds one number "
        f"per channel (RMS {steps_r.time_rms:.3g}), so that stage looks like the conv's, shifted."
    )

# --- attention ------------------------------------------------------------------------------------
st.subheader("Self-attention")
attn_names = [n for p in arch.parts for n in p.attentions if n in cap.attentions]
if not attn_names:
    st.info(
        "This model has no self-attention layers (or none this page can show): every position only sees its "
        "neighbourhood through the convolutions."
    )
else:
    own = [n for n in part.attentions if n in attn_names]  # the selected block's own layers come first
    linked = urlstate.from_link("ins_attn")
    if linked is not None and st.session_state.get("ins_attn") not in attn_names:
        st.warning(
            f"In the link, attn={code(linked)} is not an attention layer of this model, so this page shows "
            f"{(own or attn_names)[0]}; its attention layers are {', '.join(attn_names)}."
        )
    if st.session_state.get("ins_attn") not in (own or attn_names):
        st.session_state["ins_attn"] = (own or attn_names)[0]
    aname = st.selectbox("Attention layer", attn_names, key="ins_attn")
    keys = cap.attentions[aname]
    if keys.q is None:
        st.info(f"{aname}: {keys.note}; choose a smaller working resolution to see its weights.")
    else:
        gh, gw = keys.grid
        for qkey, param, size in (("ins_qrow", "qrow", gh), ("ins_qcol", "qcol", gw)):
            linked = urlstate.from_link(qkey)
            if linked is not None and int(st.session_state[qkey]) > size - 1:
                st.warning(
                    f"In the link, {param}={code(linked)} is outside {aname}'s {gh}×{gw} grid; using {size - 1}."
                )
            st.session_state[qkey] = min(int(st.session_state[qkey]), size - 1)
        q1, q2 = st.columns(2)
        row = q1.slider("Query row", 0, max(gh - 1, 1), key="ins_qrow", disabled=gh == 1)
        col = q2.slider("Query column", 0, max(gw - 1, 1), key="ins_qcol", disabled=gw == 1)
        row, col = min(row, gh - 1), min(col, gw - 1)
        weights = query_weights(keys, row, col)
        p1, p2 = st.columns([1, 3])
        px = r.resolution / gh
        p1.image(
            plots_inside.mark_query(r.x_t, keys.grid, row, col),
            caption=f"x_t with the query position (each of the {gh}×{gw} positions covers {px:g}×{px:g} px)",
            width="stretch",
        )
        p2.plotly_chart(plots_inside.attention_chart(weights, row, col), width="stretch")
        top = float(np.max(weights))
        st.caption(
            f"{aname} works on a {gh}×{gw} grid with {keys.heads} head{'s' if keys.heads != 1 else ''}. Each head "
            "compares the query position's vector with every position's key, softmax(q·k/√d), and mixes in "
            "their values with these weights (they sum to 1 per head; uniform would be "
            f"{1 / (gh * gw):.3g}, the largest here is {top:.3g}). Unlike a convolution, one position can use "
            "evidence from anywhere in the picture, e.g. the other side of the same object, when deciding "
            "what is noise."
        )
        if math.isclose(top, 1 / (gh * gw), rel_tol=1e-3):
            st.caption("Here the weights are almost uniform: this head averages over the whole picture.")
