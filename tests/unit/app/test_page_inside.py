"""The "Inside the network" page through AppTest (tiny models saved on disk), and its figure builders."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pytest
import torch
from conftest import app_test, assert_ok
from fakes import hub_like_unet, tiny_attention_unet, tiny_unet
from streamlit.testing.v1 import AppTest

from app.charts import inside as plots_inside
from model.diffusion.schedule import make_schedule
from model.nets import anatomy, probe

torch.set_num_threads(1)  # the machine is shared; one thread is much faster under contention

CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]


@pytest.fixture(scope="module")
def attention_model_dir(tmp_path_factory):
    """A tiny RGB model with self-attention at 16 px (4 heads) and in the mid block."""
    from model.nets.checkpoint_io import save_model

    folder = tmp_path_factory.mktemp("tiny-attention")
    save_model(tiny_attention_unet(), make_schedule("linear"), folder)
    return folder


@pytest.fixture(scope="module")
def cond_model_dir(tmp_path_factory):
    """A tiny grey class-conditional model with attention and classes.json, like checkpoints/fashion-unet."""
    from model.nets.checkpoint_io import save_model

    folder = tmp_path_factory.mktemp("tiny-cond-attention")
    save_model(tiny_attention_unet(in_channels=1, out_channels=1, num_class_embeds=11), make_schedule("linear"), folder)
    (folder / "classes.json").write_text(json.dumps({"names": CLASSES, "null_label": 10}))
    return folder


@pytest.fixture(scope="module")
def hub_like_dir(tmp_path_factory):
    """google/ddpm-cifar10-32's layout (4 levels, attention at the second), at a tiny width."""
    from model.nets.checkpoint_io import save_model

    folder = tmp_path_factory.mktemp("hub-like")
    save_model(hub_like_unet(), make_schedule("linear"), folder)
    return folder


def _app(model_dir, resolution=32) -> AppTest:
    return app_test(model_dir, resolution, page="views/inside.py", timeout=180)


def _image(at: AppTest, prefix: str):
    hits = [img for img in at.image if any(c.startswith(prefix) for c in img.captions)]
    assert len(hits) == 1, (prefix, [c for img in at.image for c in img.captions])
    return hits[0]


def _url(image) -> str:
    """The media URL of a picture: it names a hash of the bytes, so new bytes give a new URL."""
    return image.proto.imgs[0].url


def _charts(at: AppTest) -> list[str]:
    """Each Plotly chart's title and trace names (the spec is JSON with "/" and non-ASCII escaped)."""
    out = []
    for c in at.get("plotly_chart"):
        fig = json.loads(c.proto.spec)
        names = [d.get("name") or "" for d in fig["data"]]
        out.append(" | ".join([fig["layout"].get("title", {}).get("text", ""), *names]))
    return out


def test_page_renders_and_moving_t_changes_the_feature_maps(attention_model_dir):
    at = _app(attention_model_dir)
    at.run()
    assert_ok(at)
    # issue 26: the default is the last up block, at full resolution, not the mid block's few pixels
    assert at.selectbox(key="ins_block").value == "up 1"
    dot = at.get("graphviz_chart")[0].proto.spec
    assert '"down 0" -> "down 1"' in dot and "style=dashed" in dot and "self-attention (4 heads)" in dot
    assert _image(at, "x_t: the input at t = 500")
    before = _url(_image(at, "up 1's output"))
    specs = _charts(at)
    assert len(specs) == 5  # time heat-map, features, time MLP, injection, attention
    assert any("Sinusoidal features" in s for s in specs)
    assert any("How strongly t enters" in s for s in specs)

    at.slider(key="ins_t").set_value(100).run()
    assert_ok(at)
    assert _image(at, "x_t: the input at t = 100")
    assert _url(_image(at, "up 1's output")) != before

    # the ResNet block of another block, stage by stage; its attention layer is picked by default
    at.selectbox(key="ins_block").set_value("down 1").run()
    assert_ok(at)
    caps = [c for img in at.image for c in img.captions]
    stages = [c for c in caps if c[:2] in {f"{i}." for i in range(1, 10)}]
    assert stages[0] == "1. input: 8×16×16" and stages[-1].startswith("9. + skip") and stages[-1].endswith("16×16×16")
    assert "5. + time projection: 16×16×16" in stages
    assert any("within 0.0e+00" in c.value or "within" in c.value for c in at.caption)
    assert at.selectbox(key="ins_attn").value == "down 1 / attention 0"
    at.slider(key="ins_qrow").set_value(3)
    at.slider(key="ins_qcol").set_value(12).run()
    assert_ok(at)
    assert any("query (row 3, col 12)" in s for s in _charts(at))


def test_the_page_keeps_its_settings_across_pages_and_nothing_big_in_the_session(attention_model_dir):
    at = _app(attention_model_dir)
    at.run()
    at.slider(key="ins_t").set_value(321)
    at.selectbox(key="ins_block").set_value("down 0").run()
    at.switch_page("views/forward.py").run()
    at.switch_page("views/inside.py").run()
    assert_ok(at)
    assert at.slider(key="ins_t").value == 321 and at.selectbox(key="ins_block").value == "down 0"
    for key, value in at.session_state.items():
        assert not isinstance(value, (torch.Tensor, np.ndarray)), key


def test_a_link_naming_an_attention_layer_the_model_lacks_gets_a_sentence(attention_model_dir):
    at = _app(attention_model_dir)
    at.query_params["res"] = "32"
    at.query_params["attn"] = "up 9 / attention 0"
    at.run()
    assert_ok(at)
    text = " ".join(w.value for w in at.warning)
    assert "attn=`up 9 / attention 0` is not an attention layer of this model" in text, text
    assert "its attention layers are " in text and at.selectbox(key="ins_attn").value in text


def test_conditional_grey_model_shows_the_label_embedding(cond_model_dir):
    at = _app(cond_model_dir)
    at.run()
    assert_ok(at)
    box = at.selectbox(key="ins_label")
    assert box.options[0] == "0: T-shirt/top" and box.options[-1] == "no label (∅)"
    assert any("label embedding: 0: T-shirt/top" in s for s in _charts(at))
    dot = at.get("graphviz_chart")[0].proto.spec
    assert "label y = 0: T-shirt/top" in dot and '"emb" -> "label" [dir=back' in dot
    before = _url(_image(at, "up 1's output"))
    box.set_value("7: Sneaker").run()
    assert_ok(at)
    assert any("label embedding: 7: Sneaker" in s for s in _charts(at))
    assert _url(_image(at, "up 1's output")) != before  # the label changes what the blocks compute
    box.set_value("no label (∅)").run()
    assert_ok(at)


def test_a_hub_layout_model_at_64_px(hub_like_dir):
    at = _app(hub_like_dir, resolution=64)
    at.run()
    assert_ok(at)
    dot = at.get("graphviz_chart")[0].proto.spec
    assert "16×8×8" in dot  # down 3 at 64 px: 64 / 2^3
    at.selectbox(key="ins_block").set_value("down 1").run()
    assert_ok(at)
    assert at.selectbox(key="ins_attn").value == "down 1 / attention 0"
    assert at.selectbox(key="ins_resnet").options == ["down 1 / resnet 0", "down 1 / resnet 1"]


def test_a_model_without_attention_says_so(tmp_path):
    from model.nets.checkpoint_io import save_model

    save_model(tiny_unet(add_attention=False), make_schedule("linear"), tmp_path)
    at = _app(tmp_path)
    at.run()
    assert_ok(at)
    assert any("no self-attention" in i.value for i in at.info)
    at.selectbox(key="ins_block").set_value("conv_in").run()
    assert_ok(at)
    assert any("conv_in has no ResNet block" in i.value for i in at.info)


# ----------------------------------------------------------------------------------- the figure builders


def _arch_and_capture(unet, res=32, labels=None):
    x = torch.randn((1, unet.config.in_channels, res, res), generator=torch.Generator().manual_seed(0))
    return anatomy.architecture(unet, res), probe.capture(unet, x, 500, labels)[0]


def test_architecture_dot_draws_every_part_the_skips_and_the_selection():
    arch, cap = _arch_and_capture(tiny_attention_unet())
    dot = plots_inside.architecture_dot(arch, "up 0", {n: m.shape for n, m in cap.parts.items()})
    assert dot.startswith("digraph unet {") and dot.rstrip().endswith("}")
    for p in arch.parts:
        assert f'"{p.name}" [label=' in dot
    assert dot.count("style=dashed, color=") == len(arch.skips)
    assert f'fillcolor="{plots_inside.SELECTED_FILL}", penwidth=2.5' in dot
    assert dot.count("penwidth=2.5") == 1
    assert "8×16×16 → 16×16×16" in dot  # down 1: no downsampling at the last level
    assert '"label"' not in dot


def test_mosaic_and_query_marker():
    pics = np.stack([np.full((4, 4), v, np.uint8) for v in (0, 128, 255)])
    img = plots_inside.mosaic(pics, tile=16, gap=2)
    assert img.size == (3 * 16 + 2 * 2, 16)
    assert img.getpixel((0, 0)) == (0, 0, 0) and img.getpixel((18, 5)) == (128, 128, 128)
    assert img.getpixel((16, 0)) == plots_inside.GAP_COLOUR
    grid = plots_inside.mosaic(pics[:3], tile=8, gap=1, columns=2)
    assert grid.size == (17, 17)
    marked = plots_inside.mark_query(np.zeros((32, 32, 3), np.uint8), (4, 4), 1, 2, size=128)
    assert marked.getpixel((2 * 32, 1 * 32)) == (230, 30, 30) and marked.getpixel((0, 0)) == (0, 0, 0)


def test_time_and_attention_charts():
    ts = list(range(0, 1000, 10))
    table = anatomy.sinusoidal_embedding(torch.tensor(ts), 16, True, 0).numpy()
    fig = plots_inside.time_heatmap(ts, table, 250)
    assert fig.data[0].z.shape == (16, len(ts)) and fig.layout.shapes[0].x0 == 250
    emb = plots_inside.embedding_chart(np.ones(8), np.zeros(8), "Bag")
    assert [d.name for d in emb.data] == ["time MLP output", "label embedding: Bag"]
    assert len(plots_inside.embedding_chart(np.ones(8)).data) == 1
    inj = plots_inside.injection_chart(["a", "b"], [0.5, 0.2], [1.0, 2.0])
    assert list(inj.data[0].y) == [0.5, 0.2]
    w = np.random.default_rng(0).random((10, 4, 4))
    att = plots_inside.attention_chart(w / w.sum(axis=(1, 2), keepdims=True), 1, 3)
    heatmaps = [d for d in att.data if d.type == "heatmap"]
    assert len(heatmaps) == plots_inside.MAX_HEADS_SHOWN  # at most 8 heads drawn
    assert plots_inside.count(896) == "896" and plots_inside.count(30_016) == "30.0k"
    assert plots_inside.count(2_375_488) == "2.38M"


def test_a_cached_pass_is_much_smaller_than_the_activations_it_shows():
    """What st.cache_data keeps per (image, resolution, model, t, seed, label): uint8 pictures of a few channels,
    not the float activations."""
    _, cap = _arch_and_capture(tiny_attention_unet(), res=64)
    maps = [*cap.parts.values(), *(s for r in cap.resnets.values() for _, s in r.stages)]
    assert all(m.pictures.dtype == np.uint8 for m in maps)
    activations = sum(4 * int(np.prod(m.shape)) for m in maps)  # the same tensors as float32
    assert len(pickle.dumps(cap)) < activations / 4
