"""The network as a TorchScript graph: same outputs as eager, one trace for every shape, chosen by the guard."""

from __future__ import annotations

import dataclasses
import threading

import pytest
import torch

from model.diffusion.schedule import make_schedule
from model.nets.checkpoint_io import tiny_unet
from model.nets.network import LoadedModel, precision_label
from model.serving import precision
from model.serving.precision import FP32, FP32_GRAPH, PrecisionChoice, PrecisionPath
from model.serving.service import Serving

BF16 = PrecisionPath("bf16", "cpu", torch.bfloat16)
BF16_GRAPH = PrecisionPath("bf16 graph", "cpu", torch.bfloat16, graph=True)


def _model(num_class_embeds: int | None = None, prediction_type: str = "epsilon") -> LoadedModel:
    unet = tiny_unet(sample_size=16, num_class_embeds=num_class_embeds).eval()
    schedule = dataclasses.replace(make_schedule("linear"), prediction_type=prediction_type)
    return LoadedModel(unet=unet, schedule=schedule, resolution=16, source="tiny")


SERVING: dict[str, Serving] = {}  # this test's Serving object: it keeps the traces


@pytest.fixture(autouse=True)
def _a_serving_object_per_test():
    SERVING["s"] = Serving()
    yield
    SERVING.clear()


def _on(model: LoadedModel, path: PrecisionPath | PrecisionChoice) -> LoadedModel:
    """``model`` run by this test's Serving object on ``path`` (or a whole choice)."""
    choice = path if isinstance(path, PrecisionChoice) else PrecisionChoice(path=path, reason=path.name)
    return dataclasses.replace(model, precision=choice, serving=SERVING["s"])


def _traces(model: LoadedModel) -> int:
    return SERVING["s"].traces.count(model.unet)


@pytest.mark.parametrize("num_class_embeds", [None, 11])
def test_the_fp32_graph_gives_eagers_outputs_at_every_shape_from_one_trace(num_class_embeds):
    model = _model(num_class_embeds)
    fast = _on(model, FP32_GRAPH)
    g = torch.Generator().manual_seed(0)
    for b, size in [(1, 16), (3, 16), (2, 32), (1, 24)]:  # 24 px: padded to a multiple of 2 and cropped back
        x = torch.randn(b, 3, size, size, generator=g)
        t = torch.randint(0, 1000, (b,), generator=g)
        y = torch.randint(0, 10, (b,), generator=g) if num_class_embeds else None
        torch.testing.assert_close(fast.raw(x, t, y), model.raw(x, t, y), rtol=1e-5, atol=1e-5)
    assert _traces(model) == 1  # traced once, on the first call; every later shape reuses it


def test_the_graph_shares_the_networks_weights():
    model = _model()
    x, t = torch.randn(1, 3, 16, 16), torch.tensor([10])
    fast = _on(model, FP32_GRAPH)
    before = fast.raw(x, t)
    with torch.no_grad():
        model.unet.conv_out.bias.add_(1.0)  # the trace holds the same tensors, not a copy
    after = fast.raw(x, t)
    torch.testing.assert_close(after, before + 1.0, rtol=1e-5, atol=1e-5)


def test_concurrent_callers_each_get_their_own_answer():
    model = _on(_model(), FP32_GRAPH)
    inputs = [
        (torch.randn(2, 3, 16, 16, generator=torch.Generator().manual_seed(i)), torch.tensor([i, 900 - i]))
        for i in range(6)
    ]
    expected = [model.raw(x, t) for x, t in inputs]
    got: dict[int, torch.Tensor] = {}

    def work(i: int) -> None:
        got[i] = model.raw(*inputs[i])

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(inputs))]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    for i, want in enumerate(expected):
        torch.testing.assert_close(got[i], want, rtol=1e-5, atol=1e-5)


def test_a_bf16_graph_runs_bf16_and_hands_over_to_the_fp32_graph_above_t_max():
    model = _model()
    choice = PrecisionChoice(
        path=BF16_GRAPH, t_max=400, reason="test", trials={"fp32": {"ms": 3.0}, "bf16 graph": {"ms": 1.0}}
    )
    assert choice.path_for(torch.tensor([0, 400])) is BF16_GRAPH
    assert choice.path_for(torch.tensor([401])) == FP32_GRAPH
    assert choice.label == "bf16 autocast, graph (3.0x faster) for t <= 400, fp32 above"
    fast = _on(model, choice)
    x = torch.randn(1, 3, 16, 16)
    low, high = fast.raw(x, torch.tensor([10])), fast.raw(x, torch.tensor([900]))
    assert 0 < (low - model.raw(x, torch.tensor([10]))).abs().max() < 0.1  # rounded, but close
    torch.testing.assert_close(high, model.raw(x, torch.tensor([900])), rtol=1e-5, atol=1e-5)  # exact fp32 above
    assert _traces(model) == 2


@pytest.mark.parametrize(
    "graph_ms, chosen",  # fp32 eager takes 10 ms: within the credit the graph wins; beyond it eager stays
    [(10 * (1 + precision.GRAPH_CREDIT) * 0.97, "fp32 graph"), (10 * (1 + precision.GRAPH_CREDIT) * 1.03, "fp32")],
)
def test_the_guard_prefers_a_graph_unless_it_is_clearly_slower(monkeypatch, graph_ms, chosen):
    times = iter([10.0, graph_ms])  # fp32 eager timed first, then the candidate
    monkeypatch.setattr(precision, "_time_ms", lambda run, repeats=3: next(times))
    choice = precision.choose(_model(), paths=[FP32_GRAPH])
    assert choice.trials["fp32 graph"]["min_psnr_db"] > 100  # the same arithmetic: identical up to rounding order
    assert choice.path.name == chosen
    if chosen == "fp32 graph":
        assert choice.t_max is None and precision_label(dataclasses.replace(_model(), precision=choice)).startswith(
            "fp32, graph"
        )
    else:
        assert choice.path is FP32


def test_graphs_can_be_switched_off_and_that_is_another_stored_choice():
    model = _model()
    assert not any(p.graph for p in precision.candidates("cpu", graphs=False))  # DIFFUSION_LENS_GRAPH=off
    assert precision.machine_key(model, graphs=False) != precision.machine_key(model)
    choice = precision.choose(model, graphs=False)
    assert set(choice.trials) == {"fp32", "bf16"} and not choice.path.graph


def test_forward_hooks_do_not_see_a_graph_pass_so_probes_use_the_eager_network():
    """Why model.nets.probe calls the eager module: hooks do not fire inside a trace."""
    model = _model()
    seen = []
    handle = model.unet.conv_in.register_forward_hook(lambda *a: seen.append(1))
    try:
        x, t = torch.randn(1, 3, 16, 16), torch.tensor([5])
        _on(model, FP32_GRAPH).raw(x, t)  # traces (hooks fire while tracing) ...
        seen.clear()
        _on(model, FP32_GRAPH).raw(x, t)  # ... but not when the graph runs
        assert seen == []
        _on(model, FP32).raw(x, t)
        assert seen == [1]
    finally:
        handle.remove()


def test_a_dropped_networks_traces_go_with_it():
    """The app's model cache drops models; their traces must not keep them alive."""
    import gc
    import weakref

    unet = tiny_unet(sample_size=16).eval()
    SERVING["s"].traces.run(unet, FP32_GRAPH, torch.randn(1, 3, 16, 16), torch.tensor([3]), None)
    assert SERVING["s"].traces.count(unet) == 1
    ref = weakref.ref(unet)
    del unet
    gc.collect()
    assert ref() is None
