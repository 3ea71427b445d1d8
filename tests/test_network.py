"""Loading models (flat / pipeline folders, the Hub with only the download mocked), the
three prediction types, safety of pickled weights, errors, the LRU cache and the cost estimate.

Everything is tiny (16 px UNets with 165k parameters) and nothing touches the network.
"""

from __future__ import annotations

import json
import os
import shutil
import threading
import time
from fnmatch import fnmatch
from pathlib import Path

import pytest
import torch

from model.diffusion.reverse import eps_to_output, predict_x0
from model.diffusion.schedule import make_schedule
from model.nets import checkpoint_io, network
from model.nets import cost as costs
from model.nets.network import LoadedModel, ModelCache, ModelLoadError

KINDS = ("epsilon", "v_prediction", "sample")
RES = 16


def _x(seed: int = 0, b: int = 2) -> torch.Tensor:
    return torch.randn((b, 3, RES, RES), generator=torch.Generator().manual_seed(seed))


def _direct(unet: torch.nn.Module, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return unet(x, t).sample


def _schedule(kind: str):
    # non-default conventions, so the test sees them travel with the weights
    return make_schedule("cosine", prediction_type=kind, variance_type="fixed_large", clip_sample=False)


def _one_sentence(exc: pytest.ExceptionInfo) -> str:
    msg = str(exc.value)
    assert "\n" not in msg and "Traceback" not in msg and len(msg) < 400, msg
    return msg


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def reference_unet() -> torch.nn.Module:
    return network.tiny_unet(RES, seed=1)


@pytest.fixture(scope="module")
def saved(tmp_path_factory, reference_unet) -> dict[tuple[str, str], Path]:
    """Tiny folders in both layouts with each prediction type, all holding reference_unet's weights."""
    root = tmp_path_factory.mktemp("saved")
    return {
        (layout, kind): network.save_model(reference_unet, _schedule(kind), root / f"{layout}-{kind}", layout=layout)
        for layout in ("flat", "pipeline")
        for kind in KINDS
    }


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
    assert torch.allclose(s.betas, _schedule(kind).betas)
    x, t = _x(), torch.tensor([3, 700])
    # the same weights: the network output matches the UNet that was saved, not a fresh init
    assert torch.allclose(m.raw(x, t), _direct(reference_unet, x, t), atol=1e-5)
    eps = m.eps(x, t)
    assert eps.shape == x.shape and eps.dtype == torch.float32 and eps.device.type == "cpu"


def test_load_model_same_for_path_and_str_and_size_padding(saved):
    folder = saved[("flat", "epsilon")]
    m = network.load_model(folder)
    assert network.load_model(str(folder)).resolution == m.resolution
    odd = torch.randn(1, 3, RES + 1, RES - 3)  # not a multiple of 2: padded, then cropped back
    assert m.eps(odd, 10).shape == odd.shape


def test_bin_only_folder_loads_with_weights_only(tmp_path, reference_unet, monkeypatch):
    folder = network.save_model(reference_unet, _schedule("epsilon"), tmp_path / "bin")
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
    x, t = _x(1), torch.tensor([5, 5])
    assert torch.allclose(m.raw(x, t), _direct(reference_unet, x, t), atol=1e-5)


def test_old_attention_weight_names_are_renamed(tmp_path, reference_unet):
    """Checkpoints saved by early diffusers (like Google's DDPMs) name attention query/key/value/proj_attn."""
    from safetensors.torch import save_file

    folder = network.save_model(reference_unet, _schedule("epsilon"), tmp_path / "old")
    new_to_old = {".to_q.": ".query.", ".to_k.": ".key.", ".to_v.": ".value.", ".to_out.0.": ".proj_attn."}
    state = {}
    for k, v in reference_unet.state_dict().items():
        for new, old in new_to_old.items():
            k = k.replace(new, old)
        state[k] = v.contiguous()
    assert any(".query." in k for k in state)
    save_file(state, str(folder / network.WEIGHTS_SAFE))
    m = network.load_local(folder)
    x, t = _x(6), torch.tensor([7, 300])
    assert torch.allclose(m.raw(x, t), _direct(reference_unet, x, t), atol=1e-5)


class _Payload:
    """Unpickling this runs a shell command (the classic pickle attack)."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_malicious_pickle_is_refused_and_not_run(tmp_path, reference_unet):
    folder = network.save_model(reference_unet, _schedule("epsilon"), tmp_path / "evil")
    (folder / network.WEIGHTS_SAFE).unlink()
    marker = tmp_path / "pwned"
    torch.save({"conv_in.weight": _Payload(marker)}, folder / network.WEIGHTS_PICKLE)
    # the payload is live: an unsafe load would run it
    torch.load(folder / network.WEIGHTS_PICKLE, weights_only=False)
    assert marker.exists()
    marker.unlink()
    with pytest.raises(ModelLoadError) as err:
        network.load_local(folder)
    assert "Refused" in _one_sentence(err) and "safetensors" in str(err.value)
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
    x = _x(2, b=4)
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
# The Hub, with only snapshot_download mocked
# ---------------------------------------------------------------------------------


def _http_error(cls, status: int, msg: str):
    try:
        import httpx2 as httpx
    except ImportError:  # older huggingface_hub
        import httpx
    req = httpx.Request("GET", "https://huggingface.co/api/models/x/y")
    return cls(msg, response=httpx.Response(status, request=req))


class FakeHub:
    """Stands in for ``huggingface_hub.snapshot_download``: copies the allowed files of a local
    "remote" folder into a cache folder and drives the tqdm class as the real one does."""

    def __init__(self, remotes: dict[str, Path], cache: Path):
        self.remotes, self.cache, self.calls = remotes, cache, []

    def __call__(self, repo_id, *, allow_patterns=None, tqdm_class=None, cache_dir=None, **kwargs):
        from huggingface_hub import errors

        self.calls.append((repo_id, list(allow_patterns)))
        if repo_id not in self.remotes:
            raise _http_error(errors.RepositoryNotFoundError, 404, "404 Client Error. Repository Not Found")
        src, dst = self.remotes[repo_id], self.cache / repo_id.replace("/", "--")
        files = [
            p
            for p in sorted(src.rglob("*"))
            if p.is_file() and any(fnmatch(p.relative_to(src).as_posix(), pat) for pat in allow_patterns)
        ]
        bar = (
            tqdm_class(total=sum(p.stat().st_size for p in files), unit="B", desc="Downloading") if tqdm_class else None
        )
        for p in files:
            target = dst / p.relative_to(src)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(p, target)
            if bar is not None:
                bar.update(p.stat().st_size)
        if bar is not None:
            bar.close()
        dst.mkdir(parents=True, exist_ok=True)
        return str(dst)

    def downloaded(self, repo_id: str) -> set[str]:
        root = self.cache / repo_id.replace("/", "--")
        return {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()}


@pytest.fixture
def hub(tmp_path, monkeypatch, saved, reference_unet):
    """A fake Hub holding: a pipeline repo with safetensors AND a .bin, a flat .bin-only repo,
    a latent pipeline and a 1-channel model."""
    import huggingface_hub
    from diffusers import UNet2DModel

    remotes = {}
    pipe = tmp_path / "remote-pipe"
    shutil.copytree(saved[("pipeline", "v_prediction")], pipe)
    torch.save(reference_unet.state_dict(), pipe / "unet" / network.WEIGHTS_PICKLE)  # must not be fetched
    remotes["someone/tiny-pipe"] = pipe
    flat_bin = tmp_path / "remote-bin"
    shutil.copytree(saved[("flat", "epsilon")], flat_bin)
    (flat_bin / network.WEIGHTS_SAFE).unlink()
    torch.save(reference_unet.state_dict(), flat_bin / network.WEIGHTS_PICKLE)
    remotes["someone/tiny-bin"] = flat_bin
    latent = tmp_path / "remote-latent"
    shutil.copytree(saved[("pipeline", "epsilon")], latent)
    (latent / "model_index.json").write_text(json.dumps({"_class_name": "LDMPipeline", "unet": [], "vqvae": []}))
    remotes["someone/latent"] = latent
    gray = tmp_path / "remote-gray"
    UNet2DModel(
        sample_size=8,
        in_channels=1,
        out_channels=1,
        block_out_channels=(8, 8),
        layers_per_block=1,
        down_block_types=("DownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "UpBlock2D"),
        norm_num_groups=4,
    ).save_pretrained(str(gray))
    remotes["someone/mnist"] = gray
    four = tmp_path / "remote-four"
    UNet2DModel(
        sample_size=8,
        in_channels=4,
        out_channels=4,
        block_out_channels=(8, 8),
        layers_per_block=1,
        down_block_types=("DownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "UpBlock2D"),
        norm_num_groups=4,
    ).save_pretrained(str(four))
    remotes["someone/four-channel"] = four
    fake = FakeHub(remotes, tmp_path / "hf-cache")
    monkeypatch.setattr(huggingface_hub, "snapshot_download", fake)
    return fake


def test_hub_pipeline_downloads_configs_then_safetensors_only(hub, reference_unet):
    seen = []
    m = network.load_model("someone/tiny-pipe", progress=lambda done, total, desc: seen.append((done, total)))
    assert m.source == "someone/tiny-pipe" and m.schedule.prediction_type == "v_prediction"
    x, t = _x(3), torch.tensor([10, 900])
    assert torch.allclose(m.raw(x, t), _direct(reference_unet, x, t), atol=1e-5)
    assert len(hub.calls) == 2 and all(p.endswith(".json") for p in hub.calls[0][1])
    files = hub.downloaded("someone/tiny-pipe")
    assert "unet/diffusion_pytorch_model.safetensors" in files
    assert not any(f.endswith(".bin") for f in files)
    assert seen and seen[-1][0] == seen[-1][1] > 1000  # progress reached the total number of bytes


def test_hub_bin_only_repo_falls_back_to_bin(hub, reference_unet):
    m = network.load_model("someone/tiny-bin")
    assert [c[1] for c in hub.calls[1:]] == [[network.WEIGHTS_SAFE], [network.WEIGHTS_PICKLE]]
    x, t = _x(4), torch.tensor([1, 2])
    assert torch.allclose(m.raw(x, t), _direct(reference_unet, x, t), atol=1e-5)


def test_hub_latent_or_4_channel_models_are_refused_before_weights_download(hub):
    with pytest.raises(ModelLoadError) as err:
        network.load_model("someone/latent")
    assert "latent" in _one_sentence(err) and "vqvae" in str(err.value)
    with pytest.raises(ModelLoadError) as err:
        network.load_model("someone/four-channel")
    assert "4-channel" in _one_sentence(err)
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
    assert "no model called nobody/no-such-model" in _one_sentence(err)

    def offline(*a, **k):
        raise errors.LocalEntryNotFoundError("Got: ConnectError: [Errno -2] Name or service not known")

    monkeypatch.setattr(huggingface_hub, "snapshot_download", offline)
    with pytest.raises(ModelLoadError) as err:
        network.load_model("google/ddpm-cifar10-32")
    assert "offline" in _one_sentence(err) and "bundled" in str(err.value)

    def gated(*a, **k):
        raise _http_error(errors.GatedRepoError, 403, "403 gated")

    monkeypatch.setattr(huggingface_hub, "snapshot_download", gated)
    with pytest.raises(ModelLoadError) as err:
        network.load_model("someone/gated")
    assert "gated" in _one_sentence(err)


def test_known_hub_models_list():
    ids = list(network.KNOWN_HUB_MODELS)
    assert ids[0] == "google/ddpm-cifar10-32" and len(ids) == 5
    assert {m.resolution for m in network.KNOWN_HUB_MODELS.values()} == {32, 256}
    assert all(network.parse_source(i) == ("hub", i) for i in ids)
    assert all(m.description.endswith(".") for m in network.KNOWN_HUB_MODELS.values())


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
        assert "bundled model" in _one_sentence(err)
    with pytest.raises(ModelLoadError) as err:
        network.load_model(tmp_path)  # exists, but holds no config.json
    assert "not a diffusers UNet2DModel" in _one_sentence(err)


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
        assert expected in _one_sentence(err), folder.name


def test_oversized_models_are_refused_before_weights_are_read(saved, hub, monkeypatch):
    monkeypatch.setattr(checkpoint_io, "MAX_PARAMETERS", 100_000)  # the tiny UNet has 165k
    monkeypatch.setattr(checkpoint_io, "_load_state_dict", lambda *a: pytest.fail("weights read"))
    with pytest.raises(ModelLoadError) as err:
        network.load_local(saved[("flat", "epsilon")])
    assert "0.2M parameters, more than the 0M" in _one_sentence(err)
    with pytest.raises(ModelLoadError):
        network.load_model("someone/tiny-pipe")
    assert len(hub.calls) == 1  # configs only


# ---------------------------------------------------------------------------------
# Cache: bound, LRU order, one load per model under concurrency
# ---------------------------------------------------------------------------------


def test_lru_cache_is_bounded_and_evicts_least_recent():
    loads = []

    def loader(kind, where, progress, device):
        loads.append(where)
        return object()

    cache = ModelCache(2, loader=loader)
    a = cache.get("o/a")
    cache.get("o/b")
    assert cache.get("o/a") is a  # hit; "o/b" is now least recent
    cache.get("o/c")
    assert len(cache) == 2 and {k[1] for k in cache.keys()} == {"o/a", "o/c"}
    cache.get("o/b")  # evicted earlier, so loaded again
    assert loads == ["o/a", "o/b", "o/c", "o/b"]
    assert network.MAX_CACHED_MODELS == network._CACHE.maxsize == 3


def test_same_model_requested_concurrently_loads_once():
    loads = []

    def slow_loader(kind, where, progress, device):
        loads.append(where)
        time.sleep(0.2)
        return object()

    cache = ModelCache(2, loader=slow_loader)
    got = []
    threads = [threading.Thread(target=lambda: got.append(cache.get("o/same"))) for _ in range(6)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert loads == ["o/same"] and len(got) == 6 and all(g is got[0] for g in got)


def test_failed_loads_are_not_cached():
    attempts = []

    def flaky(kind, where, progress, device):
        attempts.append(1)
        if len(attempts) == 1:
            raise ModelLoadError("offline.")
        return object()

    cache = ModelCache(2, loader=flaky)
    with pytest.raises(ModelLoadError):
        cache.get("o/x")
    assert cache.get("o/x") is not None and len(attempts) == 2


def test_get_model_shares_one_instance_and_reloads_resaved_folder(tmp_path, reference_unet):
    folder = network.save_model(reference_unet, _schedule("epsilon"), tmp_path / "m")
    m = network.get_model(folder)
    assert network.get_model(str(folder)) is m and network.load_model(folder) is m
    time.sleep(0.01)
    network.save_model(network.tiny_unet(RES, seed=5), _schedule("sample"), folder)
    m2 = network.get_model(folder)
    assert m2 is not m and m2.schedule.prediction_type == "sample"


def test_device_selection(monkeypatch):
    monkeypatch.delenv("DIFFUSION_LENS_DEVICE", raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert network.select_device().type == "cpu"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert network.select_device().type == "cuda"
    monkeypatch.setenv("DIFFUSION_LENS_DEVICE", "cpu")
    assert network.select_device().type == "cpu"


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
        _direct(unet, torch.zeros(1, 3, res, res), torch.tensor([10]))
    finally:
        for h in handles:
            h.remove()
    tokens, channels = (res // 2) ** 2, unet.config.block_out_channels[-1]  # mid-block attention at res / 2
    return total + 2 * tokens * tokens * channels


def test_count_macs_matches_a_hand_count(saved):
    # the time estimates themselves are tested against measured runs in tests/test_estimates.py
    m = network.load_local(saved[("flat", "epsilon")])
    macs = costs.count_macs(m.unet, RES)
    assert macs == _hand_count_macs(m.unet, RES)
    assert costs.count_macs(m.unet, 2 * RES) > 3.5 * macs  # ~4x pixels
