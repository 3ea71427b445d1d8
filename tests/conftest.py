"""Shared fixtures: small tensors and a tiny randomly initialised model saved on disk."""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from fakes import KINDS, RES, FakeHub, schedule_for, tiny_emoji_folder, tiny_unet
from PIL import Image

from model.nets import checkpoint_io, network

ROOT = Path(__file__).resolve().parent.parent

APP_ENTRY = str(ROOT / "app" / "streamlit_app.py")


def app_test(model_source=None, resolution: int | None = 32, page: str | None = None, timeout: float = 240):
    """An AppTest of the whole app (not run yet) on ``model_source`` at ``resolution`` px, switched to ``page``
    (e.g. ``"views/denoise.py"``); ``None`` leaves a setting at the app's default."""
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(APP_ENTRY, default_timeout=timeout)
    if model_source is not None:
        at.session_state["model_source"] = str(model_source)
    if resolution is not None:
        at.session_state["resolution"] = resolution
    if page:
        at.switch_page(page)
    return at


def assert_ok(at) -> None:
    """The run raised nothing and showed no error box."""
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]


def image_captions(at) -> list[str]:
    """Captions of every picture on the page and in the sidebar."""
    return [c for img in at.image for c in img.captions]


@pytest.fixture(scope="module")
def emoji_dir(tmp_path_factory) -> Path:
    """A tiny randomly initialised words-to-pictures model in its pipeline folder."""
    return tiny_emoji_folder(tmp_path_factory.mktemp("emoji-sd"))


def words_page(folder, steps: int = 3, **state):
    """The words-to-pictures page run once on the emoji model in ``folder``, ``steps`` steps, and ``state`` set."""
    at = app_test(page="views/words.py")
    at.session_state["emoji_model_dir"] = str(folder)
    at.session_state["emoji_steps"] = steps
    for k, v in state.items():
        at.session_state[k] = v
    return at.run()


@pytest.fixture(scope="session", autouse=True)
def _precision_choices_in_a_temporary_folder(tmp_path_factory):
    """Tests never read or write the user's remembered precision choices (~/.cache/diffusion-lens): the app's
    settings (read once, app/settings.py) find a temporary folder in DIFFUSION_LENS_PRECISION_CACHE."""
    import os

    cache_env = "DIFFUSION_LENS_PRECISION_CACHE"
    old = os.environ.get(cache_env)
    os.environ[cache_env] = str(tmp_path_factory.mktemp("precision-choices"))
    # the app's background load of the default model (app.compute.models.warm_up) stays off in tests that don't ask
    os.environ.setdefault("DIFFUSION_LENS_WARM_UP", "0")
    # tests load tiny models from temporary folders; the classroom lock (app/session/sources.py) would refuse them, because
    # AppTest does not listen on loopback only: tests of the lock set DIFFUSION_LENS_SOURCES (or delete it) themselves
    os.environ.setdefault("DIFFUSION_LENS_SOURCES", "all")
    from app import settings

    settings.current.clear()  # read once, but a module imported while collecting may have read them already
    settings.serving.clear()
    yield
    if old is None:
        os.environ.pop(cache_env, None)
    else:
        os.environ[cache_env] = old


@pytest.fixture
def server_env(monkeypatch):
    """``server_env(NAME, value)`` sets a variable (``None`` unsets it) as if the server had started with it: the
    app reads its settings (app/settings.py) once, so they are read again after each change, and after the test;
    the server's Serving object and its lanes (app/server/admission.py) are made again from them."""
    from app import settings
    from app.server import admission

    def change(name: str, value: str | None) -> None:
        if value is None:
            monkeypatch.delenv(name, raising=False)
        else:
            monkeypatch.setenv(name, value)
        settings.current.clear()
        settings.serving.clear()
        admission.reset()

    yield change
    settings.current.clear()  # monkeypatch puts the environment back next; the settings are read again lazily
    settings.serving.clear()
    admission.reset()


@pytest.fixture(scope="module")
def one_torch_thread():
    """Tiny tensors: one intra-op thread is ~10x faster than two on a busy 2-core machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    """A flat diffusers folder holding a tiny random UNet2DModel and the linear schedule."""
    from model.diffusion.schedule import make_schedule
    from model.nets.checkpoint_io import save_model, tiny_unet

    folder = tmp_path_factory.mktemp("tiny-model")
    save_model(tiny_unet(32), make_schedule("linear"), folder)
    return folder


def png_bytes(size=(40, 30), seed=0, mode="RGB") -> bytes:
    """A random PNG made in the test."""
    rng = np.random.default_rng(seed)
    arr = rng.integers(0, 256, size=(size[1], size[0], 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr).convert(mode).save(buf, format="PNG")
    return buf.getvalue()


@pytest.fixture
def x0_small() -> torch.Tensor:
    """(2, 3, 8, 8) smooth-ish images in [-1, 1]."""
    g = torch.Generator().manual_seed(123)
    return torch.rand((2, 3, 8, 8), generator=g) * 2 - 1


@pytest.fixture(scope="session")
def tiny_cond_model_dir(tmp_path_factory) -> Path:
    """A tiny grey class-conditional UNet2DModel (Fashion-MNIST's 10 classes + the "no label" index 10)
    with its classes.json, like checkpoints/fashion-unet."""
    import json

    from model.diffusion.schedule import make_schedule
    from model.nets.checkpoint_io import save_model, tiny_unet
    from model.training.fashion import CLASSES, NULL_LABEL

    folder = tmp_path_factory.mktemp("tiny-cond-model")
    save_model(tiny_unet(32, channels=1, num_class_embeds=len(CLASSES) + 1), make_schedule("linear"), folder)
    (folder / "classes.json").write_text(json.dumps({"names": list(CLASSES), "null_label": NULL_LABEL}))
    return folder


# Tiny saved models and a fake Hub (helpers in tests/fakes.py)


@pytest.fixture(scope="module")
def reference_unet() -> torch.nn.Module:
    return checkpoint_io.tiny_unet(RES, seed=1)


@pytest.fixture(scope="module")
def saved(tmp_path_factory, reference_unet) -> dict[tuple[str, str], Path]:
    """Tiny folders in both layouts with each prediction type, all holding reference_unet's weights."""
    root = tmp_path_factory.mktemp("saved")
    return {
        (layout, kind): checkpoint_io.save_model(
            reference_unet, schedule_for(kind), root / f"{layout}-{kind}", layout=layout
        )
        for layout in ("flat", "pipeline")
        for kind in KINDS
    }


@pytest.fixture
def hub(tmp_path, monkeypatch, saved, reference_unet):
    """A fake Hub holding: a pipeline repo with safetensors AND a .bin, a flat .bin-only repo,
    a latent pipeline and a 1-channel model."""
    import huggingface_hub

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
    tiny_unet(sample_size=8, in_channels=1, out_channels=1, block_out_channels=(8, 8)).save_pretrained(str(gray))
    remotes["someone/mnist"] = gray
    four = tmp_path / "remote-four"
    tiny_unet(sample_size=8, in_channels=4, out_channels=4, block_out_channels=(8, 8)).save_pretrained(str(four))
    remotes["someone/four-channel"] = four
    fake = FakeHub(remotes, tmp_path / "hf-cache")
    monkeypatch.setattr(huggingface_hub, "snapshot_download", fake)
    return fake
