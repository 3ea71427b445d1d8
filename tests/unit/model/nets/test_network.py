"""Loading models (flat / pipeline folders), the three prediction types, safety of pickled weights, local errors
and the cost estimate. Everything is tiny (16 px UNets with 165k parameters) and nothing touches the network.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
import torch
from fakes import KINDS, RES, direct, one_sentence, schedule_for, x_batch

from model.diffusion.reverse import eps_to_output, predict_x0
from model.diffusion.schedule import make_schedule
from model.nets import checkpoint_io, network
from model.nets.checkpoint_io import ModelLoadError
from model.nets.network import LoadedModel
from model.serving import cost as costs

pytestmark = pytest.mark.usefixtures("one_torch_thread")


# ---------------------------------------------------------------------------------
# Local folders
# ---------------------------------------------------------------------------------


@pytest.mark.parametrize("layout", ["flat", "pipeline"])
@pytest.mark.parametrize("kind", KINDS)
def test_local_folder_loads_weights_and_conventions(saved, reference_unet, layout, kind):
    folder = saved[(layout, kind)]
    assert (folder / "unet").is_dir() == (layout == "pipeline")
    m = network.load_local(folder)
    assert m.resolution == RES and m.source == str(folder) and m.device == "cpu"
    assert m.num_parameters == sum(p.numel() for p in reference_unet.parameters())
    s = m.schedule
    assert (s.name, s.T, s.prediction_type, s.variance_type, s.clip_sample) == (
        "cosine",
        1000,
        kind,
        "fixed_large",
        False,
    )
    assert torch.allclose(s.betas, schedule_for(kind).betas)
    x, t = x_batch(), torch.tensor([3, 700])
    # the same weights: the network output matches the UNet that was saved, not a fresh init
    assert torch.allclose(m.raw(x, t), direct(reference_unet, x, t), atol=1e-5)
    eps = m.eps(x, t)
    assert eps.shape == x.shape and eps.dtype == torch.float32 and eps.device.type == "cpu"


def test_load_model_same_for_path_and_str_and_size_padding(saved):
    folder = saved[("flat", "epsilon")]
    m = network.load_model(folder)
    assert network.load_model(str(folder)).resolution == m.resolution
    odd = torch.randn(1, 3, RES + 1, RES - 3)  # not a multiple of 2: padded, then cropped back
    assert m.eps(odd, 10).shape == odd.shape


def test_bin_only_folder_loads_with_weights_only(tmp_path, reference_unet, monkeypatch):
    folder = checkpoint_io.save_model(reference_unet, schedule_for("epsilon"), tmp_path / "bin")
    (folder / network.WEIGHTS_SAFE).unlink()
    torch.save(reference_unet.state_dict(), folder / network.WEIGHTS_PICKLE)
    calls = []
    real_load = torch.load

    def spy(*args, **kwargs):
        calls.append(kwargs.get("weights_only"))
        return real_load(*args, **kwargs)

    monkeypatch.setattr(torch, "load", spy)
    m = network.load_local(folder)
    assert calls == [True]
    x, t = x_batch(1), torch.tensor([5, 5])
    assert torch.allclose(m.raw(x, t), direct(reference_unet, x, t), atol=1e-5)


def test_old_attention_weight_names_are_renamed(tmp_path, reference_unet):
    """Checkpoints saved by early diffusers (like Google's DDPMs) name attention query/key/value/proj_attn."""
    from safetensors.torch import save_file

    folder = checkpoint_io.save_model(reference_unet, schedule_for("epsilon"), tmp_path / "old")
    new_to_old = {".to_q.": ".query.", ".to_k.": ".key.", ".to_v.": ".value.", ".to_out.0.": ".proj_attn."}
    state = {}
    for k, v in reference_unet.state_dict().items():
        for new, old in new_to_old.items():
            k = k.replace(new, old)
        state[k] = v.contiguous()
    assert any(".query." in k for k in state)
    save_file(state, str(folder / network.WEIGHTS_SAFE))
    m = network.load_local(folder)
    x, t = x_batch(6), torch.tensor([7, 300])
    assert torch.allclose(m.raw(x, t), direct(reference_unet, x, t), atol=1e-5)


class _Payload:
    """Unpickling this runs a shell command (the classic pickle attack)."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_malicious_pickle_is_refused_and_not_run(tmp_path, reference_unet):
    folder = checkpoint_io.save_model(reference_unet, schedule_for("epsilon"), tmp_path / "evil")
    (folder / network.WEIGHTS_SAFE).unlink()
    marker = tmp_path / "pwned"
    torch.save({"conv_in.weight": _Payload(marker)}, folder / network.WEIGHTS_PICKLE)
    # the payload is live: an unsafe load would run it
    torch.load(folder / network.WEIGHTS_PICKLE, weights_only=False)
    assert marker.exists()
    marker.unlink()
    with pytest.raises(ModelLoadError) as err:
        network.load_local(folder)
    assert "Refused" in one_sentence(err) and "safetensors" in str(err.value)
    assert not marker.exists()


# ---------------------------------------------------------------------------------
# The same function three ways
# ---------------------------------------------------------------------------------


class _ClosedFormEps(torch.nn.Module):
    """eps(x_t, t) = tanh(x_t) * (0.5 + t / T), smooth and t-dependent."""

    def forward(self, x, t):
        return torch.tanh(x) * (0.5 + t.float().reshape(-1, 1, 1, 1) / 1000)


class _Encoded(torch.nn.Module):
    """Wraps an eps-network and outputs what a ``kind`` network would: eps, v or x0."""

    def __init__(self, base: torch.nn.Module, schedule, kind: str):
        super().__init__()
        self.base, self.schedule, self.kind = base, schedule, kind

    def forward(self, x, t):
        eps = self.base(x, t)
        eps = eps.sample if hasattr(eps, "sample") else eps
        out = torch.empty_like(eps)
        for i, tv in enumerate(t.tolist()):
            out[i] = eps_to_output(self.schedule, eps[i : i + 1], x[i : i + 1], int(tv), self.kind)[0]
        return out


@pytest.mark.parametrize("base_name", ["closed_form", "tiny_unet"])
def test_eps_and_x0_hat_agree_across_prediction_types(base_name, reference_unet):
    base = _ClosedFormEps() if base_name == "closed_form" else reference_unet
    x = x_batch(2, b=4)
    t = torch.tensor([0, 1, 500, 999])
    results = {}
    for kind in KINDS:
        sched = make_schedule("linear", prediction_type=kind)
        m = LoadedModel(unet=_Encoded(base, sched, kind), schedule=sched, resolution=RES, source=kind)
        results[kind] = m.predict(x, t)
        assert torch.allclose(m.eps(x, t), results[kind][0]) and torch.allclose(m.x0_hat(x, t), results[kind][1])
    truth = base(x, t)
    truth = truth.sample if hasattr(truth, "sample") else truth
    sched = make_schedule("linear")
    for kind in KINDS:
        eps, x0 = results[kind]
        assert torch.allclose(eps, truth, atol=2e-3), kind  # t = 0 amplifies float32 error ~100x
        for i, tv in enumerate(t.tolist()):
            assert torch.allclose(x0[i], predict_x0(sched, x[i], truth[i], tv), atol=2e-3, rtol=1e-4), (kind, tv)
    # and not trivially: the three raw outputs differ
    raws = [
        LoadedModel(_Encoded(base, make_schedule("linear", prediction_type=k), k), sched, RES, k).raw(x, t)
        for k in KINDS
    ]
    assert not torch.allclose(raws[0], raws[1], atol=1e-2) and not torch.allclose(raws[0], raws[2], atol=1e-2)


# ---------------------------------------------------------------------------------
# Local errors
# ---------------------------------------------------------------------------------


def test_source_parsing_and_missing_folders(tmp_path):
    assert network.parse_source(None)[0] == network.parse_source("bundled")[0] == "bundled"
    assert network.parse_source(tmp_path) == ("local", str(tmp_path.resolve()))
    assert network.parse_source("hf://google/ddpm-ema-cat-256") == ("hub", "google/ddpm-ema-cat-256")
    for bad in ["/no/such/folder", "./missing", "not a model id", "a/b/c"]:
        with pytest.raises(ModelLoadError) as err:
            network.load_model(bad)
        assert "bundled model" in one_sentence(err)
    with pytest.raises(ModelLoadError) as err:
        network.load_model(tmp_path)  # exists, but holds no config.json
    assert "not a diffusers UNet2DModel" in one_sentence(err)


def test_wrong_class_wrong_channels_and_broken_weights(tmp_path, saved):
    good = saved[("flat", "epsilon")]

    def variant(name: str, **config_changes) -> Path:
        folder = tmp_path / name
        shutil.copytree(good, folder)
        cfg = json.loads((folder / "config.json").read_text())
        cfg.update(config_changes)
        (folder / "config.json").write_text(json.dumps(cfg))
        return folder

    cases = [
        (variant("cond", _class_name="UNet2DConditionModel"), "UNet2DConditionModel"),
        (variant("chan", in_channels=4, out_channels=4), "4-channel"),
        (variant("mismatch", block_out_channels=[16, 64]), "do not match"),
    ]
    truncated = variant("trunc")
    data = (truncated / network.WEIGHTS_SAFE).read_bytes()
    (truncated / network.WEIGHTS_SAFE).write_bytes(data[: len(data) // 2])
    cases.append((truncated, "damaged"))
    bert = variant("bert")
    (bert / "config.json").write_text(json.dumps({"architectures": ["BertModel"], "hidden_size": 768}))
    cases.append((bert, "config without _class_name"))
    noweights = variant("noweights")
    (noweights / network.WEIGHTS_SAFE).unlink()
    cases.append((noweights, "no weights"))
    for folder, expected in cases:
        with pytest.raises(ModelLoadError) as err:
            network.load_local(folder)
        assert expected in one_sentence(err), folder.name


def test_device_selection(monkeypatch):
    monkeypatch.setenv("DIFFUSION_LENS_DEVICE", "cuda")  # read by the edge's settings, not here
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert network.select_device().type == "cpu"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert network.select_device().type == "cuda"
    assert network.select_device("cpu").type == "cpu"  # the settings' DIFFUSION_LENS_DEVICE, passed in


# ---------------------------------------------------------------------------------
# Cost
# ---------------------------------------------------------------------------------


def _hand_count_macs(unet: torch.nn.Module, res: int) -> int:
    """Conv2d and Linear MACs from forward hooks, plus the two attention matmuls (QK^T, AV)."""
    total = 0

    def hook(mod, inputs, out):
        nonlocal total
        if isinstance(mod, torch.nn.Conv2d):
            total += out.numel() * mod.in_channels // mod.groups * mod.kernel_size[0] * mod.kernel_size[1]
        else:
            total += out.numel() * mod.in_features

    handles = [
        m.register_forward_hook(hook) for m in unet.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))
    ]
    try:
        direct(unet, torch.zeros(1, 3, res, res), torch.tensor([10]))
    finally:
        for h in handles:
            h.remove()
    tokens, channels = (res // 2) ** 2, unet.config.block_out_channels[-1]  # mid-block attention at res / 2
    return total + 2 * tokens * tokens * channels


def test_count_macs_matches_a_hand_count(saved):
    # the time estimates themselves are tested against measured runs in tests/unit/app/test_estimates.py
    m = network.load_local(saved[("flat", "epsilon")])
    macs = costs.count_macs(m.unet, RES)
    assert macs == _hand_count_macs(m.unet, RES)
    assert costs.count_macs(m.unet, 2 * RES) > 3.5 * macs  # ~4x pixels
