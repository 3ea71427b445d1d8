"""Hub models with only ``huggingface_hub.snapshot_download`` replaced (tests/fakes.py): configs before weights,
safetensors only, refusals before any weights download, and errors a person can act on."""

from __future__ import annotations

import pytest
import torch
from fakes import direct, http_error, one_sentence, x_batch

from model.nets import checkpoint_io, hub, network
from model.nets.checkpoint_io import ModelLoadError

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_hub_pipeline_downloads_configs_then_safetensors_only(hub, reference_unet):
    seen = []
    m = network.load_model("someone/tiny-pipe", progress=lambda done, total, desc: seen.append((done, total)))
    assert m.source == "someone/tiny-pipe" and m.schedule.prediction_type == "v_prediction"
    x, t = x_batch(3), torch.tensor([10, 900])
    assert torch.allclose(m.raw(x, t), direct(reference_unet, x, t), atol=1e-5)
    assert len(hub.calls) == 2 and all(p.endswith(".json") for p in hub.calls[0][1])
    files = hub.downloaded("someone/tiny-pipe")
    assert "unet/diffusion_pytorch_model.safetensors" in files
    assert not any(f.endswith(".bin") for f in files)
    assert seen and seen[-1][0] == seen[-1][1] > 1000  # progress reached the total number of bytes


def test_hub_bin_only_repo_falls_back_to_bin(hub, reference_unet):
    m = network.load_model("someone/tiny-bin")
    assert [c[1] for c in hub.calls[1:]] == [[network.WEIGHTS_SAFE], [network.WEIGHTS_PICKLE]]
    x, t = x_batch(4), torch.tensor([1, 2])
    assert torch.allclose(m.raw(x, t), direct(reference_unet, x, t), atol=1e-5)


def test_hub_latent_or_4_channel_models_are_refused_before_weights_download(hub):
    with pytest.raises(ModelLoadError) as err:
        network.load_model("someone/latent")
    assert "latent" in one_sentence(err) and "vqvae" in str(err.value)
    with pytest.raises(ModelLoadError) as err:
        network.load_model("someone/four-channel")
    assert "4-channel" in one_sentence(err)
    assert len(hub.calls) == 2  # one config-only fetch each, no weights


def test_hub_grey_model_loads_and_predicts_grey(hub):
    m = network.load_model("someone/mnist")
    assert m.channels == 1 and not m.conditional and m.classes is None
    x = torch.randn(2, 1, 8, 8)
    eps, x0 = m.predict(x, 500)
    assert eps.shape == x.shape == x0.shape


def test_hub_errors_are_actionable(hub, monkeypatch):
    import huggingface_hub
    from huggingface_hub import errors

    with pytest.raises(ModelLoadError) as err:
        network.load_model("nobody/no-such-model")
    assert "no model called nobody/no-such-model" in one_sentence(err)

    def offline(*a, **k):
        raise errors.LocalEntryNotFoundError("Got: ConnectError: [Errno -2] Name or service not known")

    monkeypatch.setattr(huggingface_hub, "snapshot_download", offline)
    with pytest.raises(ModelLoadError) as err:
        network.load_model("google/ddpm-cifar10-32")
    assert "offline" in one_sentence(err) and "bundled" in str(err.value)

    def gated(*a, **k):
        raise http_error(errors.GatedRepoError, 403, "403 gated")

    monkeypatch.setattr(huggingface_hub, "snapshot_download", gated)
    with pytest.raises(ModelLoadError) as err:
        network.load_model("someone/gated")
    assert "gated" in one_sentence(err)


def test_known_hub_models_list():
    ids = list(hub.KNOWN_HUB_MODELS)
    assert ids[0] == "google/ddpm-cifar10-32" and len(ids) == 5
    assert {m.resolution for m in hub.KNOWN_HUB_MODELS.values()} == {32, 256}
    assert all(network.parse_source(i) == ("hub", i) for i in ids)
    assert all(m.description.endswith(".") for m in hub.KNOWN_HUB_MODELS.values())


def test_oversized_models_are_refused_before_weights_are_read(saved, hub, monkeypatch):
    monkeypatch.setattr(checkpoint_io, "MAX_PARAMETERS", 100_000)  # the tiny UNet has 165k
    monkeypatch.setattr(checkpoint_io, "_load_state_dict", lambda *a: pytest.fail("weights read"))
    with pytest.raises(ModelLoadError) as err:
        network.load_local(saved[("flat", "epsilon")])
    assert "0.2M parameters, more than the 0M" in one_sentence(err)
    with pytest.raises(ModelLoadError):
        network.load_model("someone/tiny-pipe")
    assert len(hub.calls) == 1  # configs only
