"""model/training/widen.py: widening the first UNet level carries the old weights over exactly where
diffusers' UNet2DModel allows it (Net2Net duplication), on a small random UNet."""

from __future__ import annotations

import pytest
import torch

from model.training.widen import _dup_index, _sinusoid_index, widen


def _old_unet():
    from diffusers import UNet2DModel

    torch.manual_seed(0)
    m = UNet2DModel(
        sample_size=32,
        in_channels=3,
        out_channels=3,
        block_out_channels=(8, 16, 32),
        layers_per_block=1,
        down_block_types=("DownBlock2D",) * 3,
        up_block_types=("UpBlock2D",) * 3,
        norm_num_groups=4,
    ).eval()
    with torch.no_grad():  # non-trivial norms, so a wrong channel map shows
        for mod in m.modules():
            if isinstance(mod, torch.nn.GroupNorm):
                mod.weight.uniform_(0.5, 1.5)
                mod.bias.uniform_(-0.5, 0.5)
    return m


def test_dup_index_keeps_each_groupnorm_group_intact():
    idx = _dup_index(8, 16, 4)  # old groups of 2 -> new groups of 4: [0,1,0,1], [2,3,2,3], ...
    assert idx.tolist() == [0, 1, 0, 1, 2, 3, 2, 3, 4, 5, 4, 5, 6, 7, 6, 7]
    with pytest.raises(ValueError):
        _dup_index(8, 12, 4)


@pytest.mark.parametrize("new_width", [32, 48])
def test_sinusoid_index_picks_the_old_frequencies(new_width):
    from diffusers.models.embeddings import get_timestep_embedding

    t = torch.tensor([0, 7, 99, 500, 999])
    old = get_timestep_embedding(t, 16, flip_sin_to_cos=True, downscale_freq_shift=0)
    new = get_timestep_embedding(t, new_width, flip_sin_to_cos=True, downscale_freq_shift=0)
    assert torch.allclose(new[:, _sinusoid_index(16, new_width)], old, atol=1e-5)


def test_widened_first_level_computes_the_old_features():
    old = _old_unet()
    new, fresh, dropped = widen(old, 16, noise=0.0)
    assert new.config.block_out_channels[0] == 16 and not fresh
    assert dropped == ["down_blocks.1.resnets.0.conv_shortcut.bias", "down_blocks.1.resnets.0.conv_shortcut.weight"]
    x, t = torch.randn(2, 3, 32, 32), torch.tensor([10, 700])
    feats = {}
    for name, m in (("old", old), ("new", new)):
        m.down_blocks[0].register_forward_hook(lambda mod, inp, out, name=name: feats.__setitem__(name, out[0]))
        with torch.no_grad():
            m(x, t)
    dup = _dup_index(8, 16, 4)
    # the full-resolution level (conv_in, a resnet with GroupNorm and the time embedding, the
    # downsampler) gives the old activations, each channel twice
    assert torch.allclose(feats["new"], feats["old"][:, dup], atol=1e-5)
    with torch.no_grad():
        emb_old = old.time_embedding(old.time_proj(t))
        emb_new = new.time_embedding(new.time_proj(t))
    assert torch.allclose(emb_new, emb_old, atol=1e-5)
    with pytest.raises(ValueError, match="second level"):
        widen(new, 32)  # now (16, 16, 32): the skip concatenations would be ambiguous


def test_noise_breaks_the_symmetry_of_the_copies():
    new, _, _ = widen(_old_unet(), 16, noise=0.01, seed=1)
    w = new.conv_in.weight.detach()  # (16, 3, 3, 3): channel 0 and 2 are copies of old channel 0
    assert not torch.equal(w[0], w[2])
    assert torch.allclose(w[0], w[2], atol=0.1 * float(w.abs().max()))
