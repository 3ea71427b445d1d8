"""Shared stand-ins for the tests: tiny UNets, saved model folders in every layout and prediction type, and a fake
Hugging Face Hub (only ``snapshot_download`` is replaced). On pytest's pythonpath; the fixtures built on them
(``reference_unet``, ``saved``, ``hub``) are in conftest.py."""

from __future__ import annotations

import contextlib
import shutil
import threading
from fnmatch import fnmatch
from pathlib import Path
from unittest import mock

import pytest
import torch
from diffusers import UNet2DModel

from model.diffusion.schedule import make_schedule

KINDS = ("epsilon", "v_prediction", "sample")
RES = 16


def x_batch(seed: int = 0, b: int = 2) -> torch.Tensor:
    return torch.randn((b, 3, RES, RES), generator=torch.Generator().manual_seed(seed))


def direct(unet: torch.nn.Module, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return unet(x, t).sample


def schedule_for(kind: str):
    # non-default conventions, so the test sees them travel with the weights
    return make_schedule("cosine", prediction_type=kind, variance_type="fixed_large", clip_sample=False)


def one_sentence(exc: pytest.ExceptionInfo) -> str:
    msg = str(exc.value)
    assert "\n" not in msg and "Traceback" not in msg and len(msg) < 400, msg
    return msg


def http_error(cls, status: int, msg: str):
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
            raise http_error(errors.RepositoryNotFoundError, 404, "404 Client Error. Repository Not Found")
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


def tiny_unet(seed=0, **kw) -> UNet2DModel:
    """A tiny randomly initialised UNet2DModel; ``kw`` overrides the config."""
    cfg = dict(
        sample_size=32,
        in_channels=3,
        out_channels=3,
        block_out_channels=(8, 16),
        layers_per_block=1,
        down_block_types=("DownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "UpBlock2D"),
        norm_num_groups=4,
    )
    cfg.update(kw)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return UNet2DModel(**cfg).eval()


def tiny_attention_unet(**kw) -> UNet2DModel:
    """Self-attention (4 heads of width 4) at the lowest level, as the Fashion generator has it."""
    return tiny_unet(
        down_block_types=("DownBlock2D", "AttnDownBlock2D"),
        up_block_types=("AttnUpBlock2D", "UpBlock2D"),
        attention_head_dim=4,
        **kw,
    )


def hub_like_unet() -> UNet2DModel:
    """google/ddpm-cifar10-32's layout at a tiny width: 4 levels, 2 ResNets per level, attention at the second
    level, sin-then-cos features with frequency shift 1, no mid-block attention head width."""
    return tiny_unet(
        block_out_channels=(8, 8, 16, 16),
        layers_per_block=2,
        down_block_types=("DownBlock2D", "AttnDownBlock2D", "DownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "UpBlock2D", "AttnUpBlock2D", "UpBlock2D"),
        flip_sin_to_cos=False,
        freq_shift=1,
        downsample_padding=0,
        norm_eps=1e-6,
    )


@contextlib.contextmanager
def network_passes(unet: torch.nn.Module):
    """The batch size of every forward pass of ``unet`` while the block runs, in a list.

    Counts eager passes (a forward hook on ``unet``) and passes run as a TorchScript graph
    (``model.serving.graph.Traces.run``, where hooks do not fire); a pass that traces the graph counts once.
    """
    from model.serving import graph

    sizes: list[int] = []
    in_graph = threading.local()
    real_run = graph.Traces.run

    def on_eager(mod, args, out) -> None:
        if not getattr(in_graph, "on", False):
            sizes.append(args[0].shape[0])

    def counted_run(traces, net, path, x, t, y):
        if net is not unet:
            return real_run(traces, net, path, x, t, y)
        sizes.append(x.shape[0])
        in_graph.on = True
        try:
            return real_run(traces, net, path, x, t, y)
        finally:
            in_graph.on = False

    hook = unet.register_forward_hook(on_eager)
    try:
        with mock.patch.object(graph.Traces, "run", counted_run):
            yield sizes
    finally:
        hook.remove()


EMOJI_VOCAB = ["smiling", "face", "cat", "red", "heart"]


def tiny_emoji_folder(out: Path) -> Path:
    """An untrained emoji-sd folder (tokenizer over :data:`EMOJI_VOCAB`, text encoder, VAE, U-Net, schedule, index)
    in the layout :func:`model.emoji.pipeline.load_pipeline` reads: for shape and page tests, seeded."""
    from model.emoji.nets import TextEncoder, make_unet, make_vae
    from model.emoji.pipeline import make_emoji_schedule, save_part, save_schedule, write_index
    from model.emoji.tokenizer import Tokenizer

    torch.manual_seed(0)
    tok = Tokenizer.from_words(EMOJI_VOCAB)
    tok.save(out / "tokenizer")
    save_part(TextEncoder(len(tok.vocab)), out / "text_encoder")
    save_part(make_vae(), out / "vae")
    save_part(make_unet(), out / "unet")
    save_schedule(out, make_emoji_schedule())
    write_index(out, {"training": {}})
    return out
