"""The precision path: the fidelity guard refuses lossy paths, the policy and its environment variable."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from model.diffusion.schedule import make_schedule
from model.nets.checkpoint_io import tiny_unet
from model.nets.network import LoadedModel, precision_label
from model.serving import precision
from model.serving.precision import FP32, PrecisionChoice, PrecisionPath
from model.serving.service import Serving
from model.serving.settings import ServingSettings


@dataclasses.dataclass(frozen=True)
class NoisyPath(PrecisionPath):
    """A deliberately lossy path: adds Gaussian noise of std ``noise`` to the network's output."""

    noise: float = 0.1

    def forward(self, call):
        out = call()
        return out + self.noise * torch.randn(out.shape, generator=torch.Generator().manual_seed(0))


@dataclasses.dataclass(frozen=True)
class FastExactPath(PrecisionPath):
    """Exact, and pretends to be fast: the guard must pass it and the timing must prefer it."""

    def forward(self, call):
        return call()


def _model(prediction_type: str = "epsilon") -> LoadedModel:
    torch.manual_seed(0)
    unet = tiny_unet(sample_size=16).eval()
    schedule = dataclasses.replace(make_schedule("linear"), prediction_type=prediction_type)
    return LoadedModel(unet=unet, schedule=schedule, resolution=16, source="tiny")


def test_guard_refuses_a_lossy_path():
    model = _model("sample")  # x0_hat is the output itself: the noise reaches x0_hat undiminished at every t
    choice = precision.choose(model, paths=[NoisyPath("noisy", noise=0.5)])
    assert choice.path is FP32
    trial = choice.trials["noisy"]
    assert "refused" in trial and trial["passed_to"] is None
    assert trial["min_psnr_db"] < precision.GUARD_MIN_PSNR_DB
    assert "failed the fidelity guard" in choice.reason
    assert precision_label(dataclasses.replace(model, precision=choice)).startswith("fp32")


def test_guard_limits_a_path_whose_error_grows_with_t():
    """eps-prediction divides eps_hat by sqrt(alpha_bar_t): an output error that passes at t = 0 fails at T - 1."""
    alpha_bar = make_schedule("linear").alpha_bar.float()
    t = torch.linspace(0, 999, precision.GUARD_TIMESTEPS).round().long()
    reference = precision.guard_image(3, 16).expand(len(t), -1, -1, -1) * 0.5
    noise = torch.randn(reference.shape, generator=torch.Generator().manual_seed(0))

    def predict_x0(path, x, tt):  # x0_hat = x0 + (output error) * sqrt(1 - ab) / sqrt(ab)
        if path is FP32:
            return reference
        ab = alpha_bar[tt].view(-1, 1, 1, 1)
        return reference + 1e-3 * noise * ((1 - ab) / ab).sqrt()

    t_max, scores = precision.guard(predict_x0, None, t, PrecisionPath("lossy"), reference)
    assert scores[0] >= precision.GUARD_MIN_PSNR_DB and scores[-1] < precision.GUARD_MIN_PSNR_DB
    first_fail = next(i for i, s in enumerate(scores) if s < precision.GUARD_MIN_PSNR_DB)
    assert t_max == int(t[first_fail - 1])  # the last grid t before the first failure
    assert all(s >= precision.GUARD_MIN_PSNR_DB for s in scores[:first_fail])


def test_split_choice_runs_fp32_above_t_max():
    fast = PrecisionPath("bf16", "cpu", torch.bfloat16)
    choice = PrecisionChoice(path=fast, t_max=400, reason="test", trials={"fp32": {"ms": 2.0}, "bf16": {"ms": 1.0}})
    assert choice.path_for(torch.tensor([0, 400])) is fast
    assert choice.path_for(torch.tensor([0, 401])) is FP32
    assert choice.label == "bf16 autocast (2.0x faster) for t <= 400, fp32 above"


def test_exact_fast_path_is_chosen_and_used(monkeypatch):
    model = _model("v_prediction")
    path = FastExactPath("exact")
    times = iter([10.0, 1.0])  # fp32 timed first, then the candidate
    monkeypatch.setattr(precision, "_time_ms", lambda run, repeats=3: next(times))
    choice = precision.choose(model, paths=[path])
    assert choice.path is path and choice.t_max is None
    assert choice.trials["exact"]["min_psnr_db"] == float("inf")
    fast = dataclasses.replace(model, precision=choice)
    x = torch.randn(2, 3, 16, 16)
    calls = []
    monkeypatch.setattr(FastExactPath, "forward", lambda self, call: calls.append(1) or call())
    assert torch.allclose(fast.eps(x, 500), model.eps(x, 500), atol=1e-6)
    assert calls == [1]


def test_bf16_autocast_passes_the_guard_for_a_v_model_and_stays_close():
    model = _model("v_prediction")
    choice = precision.choose(model)  # real candidates for the CPU: bf16 autocast
    assert "bf16" in choice.trials
    assert choice.trials["bf16"]["min_psnr_db"] > 30  # tiny random net, v-prediction: rounding is not magnified
    fast = dataclasses.replace(model, precision=PrecisionChoice(path=PrecisionPath("bf16", "cpu", torch.bfloat16)))
    x = torch.randn(1, 3, 16, 16)
    out = fast.raw(x, torch.tensor([10]))
    assert out.dtype == torch.float32
    assert (out - model.raw(x, torch.tensor([10]))).abs().max() < 0.1


def test_the_policy_belongs_to_the_serving_object(tmp_path):
    from model.nets.checkpoint_io import save_model
    from model.nets.network import load_local

    folder = tmp_path / "tiny"
    torch.manual_seed(0)
    save_model(tiny_unet(sample_size=16), make_schedule("linear"), folder)
    loaded = load_local(folder)
    assert loaded.precision is None and loaded.serving is None  # library default: plain fp32, a direct pass
    plain = Serving().prepare(loaded)
    assert plain.precision is None and plain.serving is not None
    auto = Serving(ServingSettings(precision_cache=None), policy="auto")
    assert isinstance(auto.prepare(loaded).precision, PrecisionChoice)
    forced = Serving(ServingSettings(precision="fp32", graph=False), policy="auto")  # DIFFUSION_LENS_PRECISION=fp32
    assert forced.policy == "fp32" and forced.prepare(loaded).precision is None
    # fp32 forced with graphs on: fp32 arithmetic only, eager or the fp32 TorchScript graph (issue 38)
    graph_ok = Serving(ServingSettings(precision="fp32", precision_cache=None), policy="auto").prepare(loaded)
    choice = graph_ok.precision
    assert (
        isinstance(choice, PrecisionChoice) and choice.path.dtype is None and choice.path.name in ("fp32", "fp32 graph")
    )
    assert set(choice.trials) == {"fp32", "fp32 graph"} and choice.trials["fp32 graph"]["min_psnr_db"] == float("inf")
    with pytest.raises(ValueError, match="precision policy"):
        Serving(policy="fast")


def test_the_choice_is_remembered_per_machine(monkeypatch, tmp_path):
    """Same machine, same seed, same pictures: a second load reuses the stored choice instead of re-timing."""
    cache = tmp_path / "cache"
    model = _model("v_prediction")
    first = precision.apply(model, cache).precision
    stored = list((tmp_path / "cache").glob("*.json"))
    assert len(stored) == 1 and stored[0].stem == precision.machine_key(model)

    def no_measuring(*a, **k):
        raise AssertionError("choose() ran although a stored choice matched")

    monkeypatch.setattr(precision, "choose", no_measuring)
    again = precision.apply(model, cache).precision
    assert (again.path, again.t_max, again.reason) == (first.path, first.t_max, first.reason)
    # other weights are another key: measured afresh
    other = dataclasses.replace(model, unet=tiny_unet(sample_size=16, seed=1).eval())
    assert precision.machine_key(other) != precision.machine_key(model)
    with pytest.raises(AssertionError, match="stored choice"):
        precision.apply(other, cache)
    # a damaged file is measured again, not trusted
    stored[0].write_text("{not json")
    monkeypatch.undo()
    assert isinstance(precision.apply(model, cache).precision, PrecisionChoice)
    # graphs on or off are other keys (the candidates differ)
    assert precision.machine_key(model, graphs=False) != precision.machine_key(model)


@pytest.mark.parametrize("bf16_ok, names", [(True, ["bf16", "fp16"]), (False, ["fp16"])])
def test_a_gpu_tries_bf16_where_supported_then_fp16_autocast_on_cuda(monkeypatch, bf16_ok, names):
    """The same guard picks among these on a GPU (no GPU here: only the candidate list is checked)."""
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: bf16_ok)
    paths = precision.candidates("cuda", graphs=False)  # DIFFUSION_LENS_GRAPH=off
    assert [p.name for p in paths] == names and all(p.device_type == "cuda" for p in paths)
    assert {p.dtype for p in paths} <= {torch.bfloat16, torch.float16}
    assert [p.name for p in precision.candidates("cpu", False)] == ["bf16"] and precision.candidates("meta") == []
    # the default (on): each arithmetic also as a graph, on the same device
    graphs = [p for p in precision.candidates("cuda") if p.graph]
    assert [p.name for p in graphs] == ["fp32 graph"] + [f"{n} graph" for n in names]
    assert all(p.device_type == "cuda" for p in graphs)
    assert [p.name for p in precision.candidates("cpu")] == ["bf16", "fp32 graph", "bf16 graph"]
