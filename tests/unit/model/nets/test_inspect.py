"""model/nets/anatomy.py and model/nets/probe.py: shapes per block against the config, the ResNet block and attention recomputed
exactly, the sinusoidal embedding against diffusers' Timesteps, and a capture that keeps pictures only."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import ROOT
from diffusers import UNet2DModel
from diffusers.models.embeddings import Timesteps
from diffusers.models.resnet import ResnetBlock2D
from fakes import hub_like_unet, tiny_attention_unet, tiny_unet

from model.nets import anatomy, probe

pytestmark = pytest.mark.usefixtures("one_torch_thread")


MODELS = {
    "plain": lambda: tiny_unet(),
    "attention": tiny_attention_unet,
    "conditional-grey": lambda: tiny_attention_unet(in_channels=1, out_channels=1, num_class_embeds=11),
    "hub-like": hub_like_unet,
    "two-per-level": lambda: tiny_unet(layers_per_block=2, block_out_channels=(8, 16, 16), **_three_levels()),
}


def _three_levels():
    return dict(
        down_block_types=("DownBlock2D", "DownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "UpBlock2D", "UpBlock2D"),
    )


def _labels(unet) -> torch.Tensor | None:
    return torch.tensor([3]) if unet.config.num_class_embeds else None


def _x(unet, res, seed=1) -> torch.Tensor:
    return torch.randn((1, unet.config.in_channels, res, res), generator=torch.Generator().manual_seed(seed))


# ----------------------------------------------------------------------------------- the time embedding


@pytest.mark.parametrize("dim", [8, 32, 33])
@pytest.mark.parametrize("flip", [True, False])
@pytest.mark.parametrize("shift", [0.0, 1.0])
@pytest.mark.parametrize("scale", [1.0, 2.5])
def test_sinusoidal_embedding_matches_diffusers_timesteps(dim, flip, shift, scale):
    ts = torch.tensor([0, 1, 2, 17, 250, 500.5, 999])
    ours = anatomy.sinusoidal_embedding(ts, dim, flip, shift, scale)
    theirs = Timesteps(dim, flip, shift, scale=scale)(ts)
    assert ours.shape == (len(ts), dim)
    torch.testing.assert_close(ours, theirs, rtol=0, atol=1e-6)


def test_sinusoidal_embedding_at_t0_is_cos_ones_and_sin_zeros():
    e = anatomy.sinusoidal_embedding(torch.tensor([0]), 8, flip_sin_to_cos=True, downscale_freq_shift=0)[0]
    assert e[:4].tolist() == [1.0] * 4 and e[4:].tolist() == [0.0] * 4  # cos first with flip_sin_to_cos


@pytest.mark.parametrize("name", ["plain", "hub-like"])
def test_time_features_and_embeddings_are_the_networks_own(name):
    unet = MODELS[name]()
    ts = torch.arange(0, 1000, 111)
    torch.testing.assert_close(anatomy.time_features(unet, ts), unet.time_proj(ts), rtol=0, atol=1e-6)
    e = anatomy.embeddings(unet, 111)
    torch.testing.assert_close(e.time, unet.time_embedding(unet.time_proj(torch.tensor([111])))[0])
    assert e.label is None and torch.equal(e.total, e.time)


def test_label_embedding_is_added_to_the_time_embedding():
    unet = MODELS["conditional-grey"]()
    e = anatomy.embeddings(unet, 40, torch.tensor([3]))
    torch.testing.assert_close(e.label, unet.class_embedding.weight[3].detach())
    torch.testing.assert_close(e.total, e.time + e.label)


# ----------------------------------------------------------------------------------- shapes and parts


@pytest.mark.parametrize("name", list(MODELS))
@pytest.mark.parametrize("res", [32, 64])
def test_captured_shapes_match_what_the_config_implies(name, res):
    unet = MODELS[name]()
    expected = anatomy.config_shapes(unet.config, res)
    arch = anatomy.architecture(unet, res)
    cap, out = probe.capture(unet, _x(unet, res), 500, _labels(unet))
    assert [p.name for p in arch.parts] == list(expected) == list(cap.parts)
    for p in arch.parts:
        assert (p.in_shape, p.out_shape) == expected[p.name]
        assert cap.parts[p.name].shape == p.out_shape, p.name
    assert out.shape == (1, unet.config.out_channels, res, res)


def test_the_bundled_photo_model_at_64_px():
    """The shapes written out by hand for checkpoints/photo-unet (its config, random weights: shapes only)."""
    config = json.loads((ROOT / "checkpoints" / "photo-unet" / "config.json").read_text())
    unet = UNet2DModel.from_config(config).eval()
    want = {
        "conv_in": (32, 64, 64),
        "down 0": (32, 32, 32),
        "down 1": (32, 16, 16),
        "down 2": (64, 8, 8),
        "down 3": (128, 4, 4),
        "down 4": (192, 4, 4),
        "mid": (192, 4, 4),
        "up 0": (192, 8, 8),
        "up 1": (128, 16, 16),
        "up 2": (64, 32, 32),
        "up 3": (32, 64, 64),
        "up 4": (32, 64, 64),
        "conv_out": (3, 64, 64),
    }
    arch = anatomy.architecture(unet, 64)
    assert {p.name: p.out_shape for p in arch.parts} == want
    cap, _ = probe.capture(unet, torch.zeros(1, 3, 64, 64), 10)
    assert {n: m.shape for n, m in cap.parts.items()} == want
    # the mid block holds one attention layer (one head over the 4×4 grid): add_attention defaults to true
    assert arch.part("mid").attentions == ("mid / attention 0",) and cap.attentions["mid / attention 0"].grid == (4, 4)
    assert arch.time_dim == 32 and arch.emb_dim == 64 and arch.total_params == 6_591_683


def test_the_fashion_generator_at_32_px():
    config = json.loads((ROOT / "checkpoints" / "fashion-unet" / "config.json").read_text())
    unet = UNet2DModel.from_config(config).eval()
    arch = anatomy.architecture(unet, 32)
    assert arch.part("down 2").out_shape == (128, 8, 8) and arch.part("down 2").attentions
    assert arch.part("up 0").attentions and arch.label_params == 11 * arch.emb_dim
    cap, _ = probe.capture(unet, torch.zeros(1, 1, 32, 32), 10, torch.tensor([7]))
    assert {n: m.shape for n, m in cap.parts.items()} == {p.name: p.out_shape for p in arch.parts}
    keys = cap.attentions["down 2 / attention 0"]
    assert keys.grid == (8, 8) and keys.heads == config["block_out_channels"][-1] // config["attention_head_dim"]


@pytest.mark.parametrize("name", list(MODELS))
def test_parameter_counts_add_up_to_the_whole_network(name):
    unet = MODELS[name]()
    arch = anatomy.architecture(unet, 32)
    assert sum(p.params for p in arch.parts) + arch.time_params + arch.label_params == arch.total_params
    assert arch.total_params == sum(p.numel() for p in unet.parameters())


@pytest.mark.parametrize("name", list(MODELS))
def test_skip_connections_feed_every_up_resnet_once(name):
    unet = MODELS[name]()
    arch = anatomy.architecture(unet, 32)
    for j, block in enumerate(unet.up_blocks):
        assert sum(n for _, dst, n in arch.skips if dst == f"up {j}") == len(block.resnets)
    # what goes onto the stack is exactly what comes off it
    pushed = 1 + sum(len(b.resnets) + (b.downsamplers is not None) for b in unet.down_blocks)
    assert sum(n for *_, n in arch.skips) == pushed


# ----------------------------------------------------------------------------------- ResNet block, attention


@pytest.mark.parametrize(
    "kw",
    [
        dict(in_channels=8, out_channels=8),
        dict(in_channels=8, out_channels=16),  # conv_shortcut
        dict(in_channels=8, out_channels=8, time_embedding_norm="scale_shift"),
        dict(in_channels=8, out_channels=8, up=True),
        dict(in_channels=8, out_channels=16, down=True, output_scale_factor=2.0),
    ],
)
def test_resnet_block_step_by_step_equals_its_output(kw):
    torch.manual_seed(0)
    block = ResnetBlock2D(temb_channels=12, groups=4, **kw).eval()
    x, temb = torch.randn(2, kw["in_channels"], 8, 8), torch.randn(2, 12)
    with torch.no_grad():
        stages = probe.resnet_stages(block, x, temb)
        want = block(x, temb)
    labels = [s for s, _ in stages]
    assert labels[0] == "input" and labels[-1].startswith("+ skip")
    assert labels[1:3] == ["GroupNorm (norm1)", "SiLU"]
    assert any(lab.startswith("conv (conv1)") for lab in labels) and "conv (conv2)" in labels
    torch.testing.assert_close(stages[-1][1], want, rtol=0, atol=1e-6)


@pytest.mark.parametrize("name", list(MODELS))
def test_capture_recomputes_every_resnet_exactly(name):
    unet = MODELS[name]()
    cap, _ = probe.capture(unet, _x(unet, 32), 300, _labels(unet))
    names = [n for _, _, m in anatomy.top_parts(unet) for n, _ in anatomy.inner_modules("", m)[0]]
    assert len(cap.resnets) == len(names) > 0
    for steps in cap.resnets.values():
        assert steps.max_error < 1e-5, steps.name
        assert len(steps.stages) >= 9  # input, norm1, SiLU, conv1, + t, norm2, SiLU, conv2, + skip
        assert np.isfinite(steps.time_rms) and steps.time_rms > 0


def test_attention_weights_sum_to_one_and_reproduce_the_layer():
    unet = tiny_attention_unet()
    attn = unet.down_blocks[1].attentions[0]
    assert attn.heads == 4
    hidden = torch.randn(2, 16, 6, 5)
    with torch.no_grad():
        w = probe.attention_weights(attn, hidden)
        assert w.shape == (2, 4, 30, 30)
        torch.testing.assert_close(w.sum(-1), torch.ones(2, 4, 30))
        torch.testing.assert_close(probe.attention_output(attn, hidden, w), attn(hidden), rtol=0, atol=1e-5)


def test_query_weights_from_the_capture_sum_to_one_and_match_the_full_map():
    unet = tiny_attention_unet()
    x = _x(unet, 32)
    seen = {}
    attn = unet.down_blocks[1].attentions[0]
    handle = attn.register_forward_hook(lambda m, args, out: seen.setdefault("in", args[0]))
    try:
        cap, _ = probe.capture(unet, x, 600)
    finally:
        handle.remove()
    keys = cap.attentions["down 1 / attention 0"]
    assert keys.grid == (16, 16) and keys.q.dtype == np.float16 and keys.q.shape == (4, 256, 4)
    with torch.no_grad():
        full = probe.attention_weights(attn, seen["in"])[0]  # (heads, N, N)
    for row, col in [(0, 0), (5, 11), (15, 15)]:
        w = probe.query_weights(keys, row, col)
        assert w.shape == (4, 16, 16)
        np.testing.assert_allclose(w.sum(axis=(1, 2)), 1.0, atol=1e-5)
        np.testing.assert_allclose(w.reshape(4, -1), full[:, row * 16 + col].numpy(), atol=2e-3)


def test_attention_layers_with_too_many_positions_keep_nothing_and_say_why():
    unet = tiny_attention_unet()
    cap, _ = probe.capture(unet, _x(unet, 32), 600, max_tokens=100)
    keys = cap.attentions["down 1 / attention 0"]
    assert keys.q is None and keys.k is None and "256 positions" in keys.note
    assert any("down 1 / attention 0" in n and "not kept" in n for n in cap.notes)


# ----------------------------------------------------------------------------------- the capture itself


def test_capture_keeps_small_uint8_pictures_and_leaves_no_hooks():
    unet = tiny_attention_unet()
    x = _x(unet, 64)
    cap, out = probe.capture(unet, x, 250, k=3, max_side=16)
    with torch.no_grad():
        torch.testing.assert_close(out, unet(x, torch.tensor([250])).sample)  # the network's own output
    for m in [*cap.parts.values(), *(s for r in cap.resnets.values() for _, s in r.stages)]:
        assert m.pictures.dtype == np.uint8 and m.pictures.shape[0] == min(3, m.shape[0])
        assert max(m.pictures.shape[1:]) <= 16 and m.rms >= 0
    assert all(not mod._forward_hooks and not mod._forward_pre_hooks for mod in unet.modules())


def test_channel_maps_normalisation():
    a = torch.zeros(1, 5, 4, 4)
    a[0, 2] = 1.0  # the only active channel, rms over the tensor = sqrt(16 / 80)
    a[0, 4, 0, 0] = -0.1
    m = probe.channel_maps(a, k=2)
    assert m.channels == (2, 4) and m.shape == (5, 4, 4)
    rms = (16 / 80 + 0.01 / 80) ** 0.5
    assert m.rms == pytest.approx(rms)
    level = round((0.5 + 1 / (2 * probe.FEATURE_RANGE * rms)) * 255)
    assert (m.pictures[0] == level).all()
    assert m.pictures[1, 1, 1] == 128  # zero is mid grey


def test_capture_records_only_its_own_thread():
    """Another session's forward pass on the shared network, made while this capture's hooks are in place,
    must not end up in this capture."""
    unet = tiny_attention_unet()
    mine, theirs = _x(unet, 32, seed=1), _x(unet, 32, seed=2)
    alone, _ = probe.capture(unet, mine, 500)

    def other_session(module, args):
        if not getattr(other_session, "done", False):
            other_session.done = True
            th = threading.Thread(target=lambda: unet(theirs, torch.tensor([900])))
            th.start()
            th.join()

    handle = unet.conv_out.register_forward_pre_hook(other_session)  # runs after every block but conv_out
    try:
        cap, _ = probe.capture(unet, mine, 500)
    finally:
        handle.remove()
    assert other_session.done
    for name, m in alone.parts.items():
        assert np.array_equal(cap.parts[name].pictures, m.pictures), name
    for name, a in alone.attentions.items():
        assert np.array_equal(cap.attentions[name].q, a.q)


def test_unsupported_parts_get_a_sentence_and_the_rest_still_shows():
    unet = tiny_attention_unet()
    unet.down_blocks[1].attentions[0].norm_q = torch.nn.Identity()  # something the weights view does not model
    cap, _ = probe.capture(unet, _x(unet, 32), 500)
    assert "down 1 / attention 0" not in cap.attentions
    assert any(n.startswith("down 1 / attention 0 is not shown") for n in cap.notes)
    assert "up 0 / attention 0" in cap.attentions and len(cap.parts) == 7


def test_unknown_block_types_take_their_shapes_from_the_forward_pass():
    unet = tiny_unet(
        down_block_types=("ResnetDownsampleBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "ResnetUpsampleBlock2D"),
        resnet_time_scale_shift="scale_shift",
    )
    arch = anatomy.architecture(unet, 32)
    assert not arch.part("down 0").known and arch.part("down 0").out_shape is None
    cap, _ = probe.capture(unet, _x(unet, 32), 500)
    assert cap.parts["down 0"].shape == (8, 16, 16) and cap.parts["up 1"].shape == (8, 32, 32)
    steps = cap.resnets["down 0 / resnet 1"]  # the downsampling ResNet block, scale-shift time injection
    assert any(lab == "downsample ×½" for lab, _ in steps.stages) and steps.max_error < 1e-5
    assert not cap.notes  # their ResNet blocks are diffusers' ResnetBlock2D: all shown


@pytest.mark.slow
def test_anatomy_and_probe_import_no_ui_library():
    code = (
        "import sys; import model.nets.anatomy, model.nets.probe\n"
        "bad = sorted(n for n in sys.modules if n.split('.')[0] in ('streamlit', 'plotly'))\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], cwd=Path(ROOT), check=True)
