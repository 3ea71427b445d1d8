"""The eps-predictor: loading a diffusers ``UNet2DModel`` with its schedule, from the
bundled folder, a local folder or the Hugging Face Hub; caching it; and what a step costs.

A checkpoint is a folder in the diffusers layout, config beside the weights:

* flat:     ``config.json`` + ``diffusion_pytorch_model.safetensors`` + ``scheduler_config.json``
* pipeline: ``model_index.json`` + ``unet/`` (config + weights) + ``scheduler/scheduler_config.json``

All three sources load through :func:`load_model` (and, cached, :func:`get_model`). The
returned :class:`LoadedModel` is read-only and shared by every session;
:meth:`LoadedModel.eps` always returns eps_hat, whatever the network predicts
(``epsilon``, ``v_prediction`` or ``sample``), and :meth:`LoadedModel.x0_hat` the x_0
estimate (Ho et al. eq. 15).

Safety: weights are read from ``*.safetensors`` where they exist. A pickled ``.bin`` is
read only with ``torch.load(weights_only=True)``, which refuses any pickle that would
build objects other than tensors (so a booby-trapped file raises instead of running).
The UNet is built from its ``config.json`` by diffusers' own ``UNet2DModel`` class; code
in a repository is never imported or run (no ``trust_remote_code``, no custom pipelines).

Timestep convention: index ``t`` in ``0 .. T-1``, 0 = the first noising step (see
:mod:`model.schedule`). Images: ``(B, 3, H, W)`` float32, about [-1, 1] for small t.
"""

from __future__ import annotations

import io
import json
import os
import pickle
import re
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch

from model.reverse import output_to_eps, predict_x0
from model.runtime import inference_slot
from model.schedule import Schedule, make_schedule, schedule_from_config

REPO_ROOT = Path(__file__).resolve().parent.parent
BUNDLED_MODEL = REPO_ROOT / "checkpoints" / "photo-unet"

WEIGHTS_SAFE = "diffusion_pytorch_model.safetensors"
WEIGHTS_PICKLE = "diffusion_pytorch_model.bin"
MAX_PARAMETERS = 400_000_000  # 1.6 GB in float32; the Google 256-px DDPMs have 113.7M

# progress(done, total, description): ``done``/``total`` in the bar's unit (bytes or files);
# ``total`` is None while unknown. Called from download threads; must be cheap.
Progress = Callable[[float, "float | None", str], None]


class ModelLoadError(RuntimeError):
    """A model could not be loaded; the message says what was wrong and what to do."""


@dataclass(frozen=True)
class KnownModel:
    """A pixel-space DDPM on the Hub that the picker offers by name."""

    repo_id: str
    resolution: int  # native sample_size, px
    description: str
    params_m: float  # millions of parameters (Ho et al. 2020: 35.7M at 32 px, 114M at 256 px)


KNOWN_HUB_MODELS: dict[str, KnownModel] = {
    m.repo_id: m
    for m in (
        KnownModel("google/ddpm-cifar10-32", 32, "CIFAR-10: tiny 32 px objects and animals (Ho et al. 2020).", 35.7),
        KnownModel("google/ddpm-ema-celebahq-256", 256, "CelebA-HQ: celebrity faces, EMA weights.", 113.7),
        KnownModel("google/ddpm-ema-church-256", 256, "LSUN churches: outdoor church buildings, EMA weights.", 113.7),
        KnownModel("google/ddpm-ema-cat-256", 256, "LSUN cats: photos of cats, EMA weights.", 113.7),
        KnownModel("google/ddpm-ema-bedroom-256", 256, "LSUN bedrooms: indoor bedroom scenes, EMA weights.", 113.7),
    )
}


def select_device(prefer: str | torch.device | None = None) -> torch.device:
    """CUDA when available, otherwise the CPU. ``prefer`` (or env ``DIFFUSION_LENS_DEVICE``) overrides."""
    prefer = prefer or os.environ.get("DIFFUSION_LENS_DEVICE")
    if prefer:
        return torch.device(prefer)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


# ---------------------------------------------------------------------------------
# The loaded model
# ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class LoadedModel:
    """A UNet in eval mode plus the schedule and conventions it was trained with.

    ``resolution``: the model's native ``sample_size`` in px. ``source``: where it came
    from (a folder path or a Hub repo id). ``device``: where the UNet lives; inputs are
    moved there and outputs come back to the CPU as float32.
    """

    unet: torch.nn.Module
    schedule: Schedule
    resolution: int
    source: str
    device: str = "cpu"
    _costs: dict = field(default_factory=dict, compare=False, repr=False)  # memo for estimate_cost

    @property
    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.unet.parameters())

    @property
    def size_multiple(self) -> int:
        """H and W must be multiples of this (2 ** number of downsamplings); :meth:`raw` pads otherwise."""
        blocks = getattr(getattr(self.unet, "config", None), "block_out_channels", None)
        return 2 ** (len(blocks) - 1) if blocks else 1

    @torch.inference_mode()
    def raw(self, x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """The network's own output for x_t (B, 3, H, W) at timesteps t (B,) LongTensor, on the CPU.

        Sizes that are not a multiple of :attr:`size_multiple` are reflect-padded and the
        output cropped back. A learned-variance head (6 output channels) is cut to its first 3.
        """
        c, h, w = x_t.shape[1:]
        m = self.size_multiple
        ph, pw = (-h) % m, (-w) % m
        x = x_t.to(self.device, torch.float32)
        if ph or pw:
            mode = "reflect" if ph < h and pw < w else "replicate"
            x = torch.nn.functional.pad(x, (0, pw, 0, ph), mode=mode)
        with inference_slot():  # process-wide fair queue on concurrent forward passes (model/runtime.py)
            out = self.unet(x, torch.as_tensor(t).to(self.device))
        out = out.sample if hasattr(out, "sample") else out
        return out[:, :c, :h, :w].float().cpu()

    @torch.inference_mode()
    def predict(self, x_t: torch.Tensor, t: torch.Tensor | int) -> tuple[torch.Tensor, torch.Tensor]:
        """(eps_hat, x0_hat) for x_t (B, 3, H, W), from one forward pass.

        eps_hat comes from the network output by :func:`model.reverse.output_to_eps`;
        x0_hat = (x_t - sqrt(1 - alpha_bar_t) eps_hat) / sqrt(alpha_bar_t)  (eq. 15).
        """
        t = torch.as_tensor(t, dtype=torch.long).reshape(-1)
        if t.numel() == 1 and x_t.shape[0] > 1:
            t = t.expand(x_t.shape[0])
        x_t = x_t.float().cpu()
        out = self.raw(x_t, t)
        kind = self.schedule.prediction_type
        if bool((t == t[0]).all()):  # the common case (a trajectory step): one t for the whole batch
            tv = int(t[0])
            eps = out if kind == "epsilon" else output_to_eps(self.schedule, out, x_t, tv, kind)
            return eps, predict_x0(self.schedule, x_t, eps, tv)
        eps = out if kind == "epsilon" else torch.empty_like(out)
        x0 = torch.empty_like(out)
        for tv in t.unique().tolist():
            sel = t == tv
            if kind != "epsilon":
                eps[sel] = output_to_eps(self.schedule, out[sel], x_t[sel], int(tv), kind)
            x0[sel] = predict_x0(self.schedule, x_t[sel], eps[sel], int(tv))
        return eps, x0

    @torch.inference_mode()
    def eps(self, x_t: torch.Tensor, t: torch.Tensor | int) -> torch.Tensor:
        """eps_hat = eps_theta(x_t, t), shaped like x_t; converts v / sample outputs to eps."""
        tt = torch.as_tensor(t, dtype=torch.long).reshape(-1)
        if bool((tt == tt[0]).all()):  # one t for the batch (every trajectory step): skip x0_hat
            x = x_t.float().cpu()
            out = self.raw(x, tt.expand(x.shape[0]))
            kind = self.schedule.prediction_type
            return out if kind == "epsilon" else output_to_eps(self.schedule, out, x, int(tt[0]), kind)
        return self.predict(x_t, t)[0]

    @torch.inference_mode()
    def x0_hat(self, x_t: torch.Tensor, t: torch.Tensor | int) -> torch.Tensor:
        """x0_hat: x_t with all of eps_hat removed (eq. 15), shaped like x_t."""
        return self.predict(x_t, t)[1]

    __call__ = eps


# ---------------------------------------------------------------------------------
# Reading a folder (flat or pipeline layout)
# ---------------------------------------------------------------------------------


def _read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelLoadError(
            f"Could not read {path.name} in {path.parent} ({exc}); re-save or re-download it."
        ) from exc
    if not isinstance(data, dict):
        raise ModelLoadError(f"{path} is not a JSON object; re-save or re-download the model.")
    return data


@dataclass(frozen=True)
class _Layout:
    unet_dir: Path
    scheduler_file: Path
    config: dict  # the UNet's config.json


_LATENT_PARTS = ("vae", "vqvae", "text_encoder", "tokenizer", "image_encoder", "transformer")


def _inspect_folder(folder: Path, name: str) -> _Layout:
    """Find the UNet and scheduler configs and check that this is a pixel-space RGB UNet2DModel.

    Reads JSON only, so a Hub repo can be checked before its weights are downloaded.
    """
    index = folder / "model_index.json"
    if index.is_file():
        parts = [k for k in _read_json(index) if not k.startswith("_")]
        extra = [p for p in parts if p in _LATENT_PARTS]
        if extra:
            raise ModelLoadError(
                f"{name} is a latent or text-conditional pipeline (it has {', '.join(extra)}); Diffusion Lens "
                "needs an unconditional pixel-space UNet2DModel such as google/ddpm-cifar10-32."
            )
    if (folder / "unet" / "config.json").is_file():
        unet_dir, sched = folder / "unet", folder / "scheduler" / "scheduler_config.json"
    elif (folder / "config.json").is_file():
        unet_dir, sched = folder, folder / "scheduler_config.json"
    else:
        raise ModelLoadError(
            f"{name} has no config.json or unet/config.json, so it is not a diffusers UNet2DModel; "
            "point at a folder saved with save_pretrained (or pick the bundled model)."
        )
    cfg = _read_json(unet_dir / "config.json")
    cls = cfg.get("_class_name") or ("UNet2DModel" if "block_out_channels" in cfg else "config without _class_name")
    if cls != "UNet2DModel" or "cross_attention_dim" in cfg:
        raise ModelLoadError(
            f"{name} holds a {cls}, but Diffusion Lens needs an unconditional pixel-space UNet2DModel "
            "(latent and text-conditional models are not supported)."
        )
    cin, cout = cfg.get("in_channels", 3), cfg.get("out_channels", 3)
    learned = cout == 6 and sched.is_file() and "learned" in str(_read_json(sched).get("variance_type", ""))
    if cin != 3 or (cout != 3 and not learned):
        raise ModelLoadError(
            f"{name} works on {cin}-channel inputs with {cout}-channel outputs; Diffusion Lens needs an RGB "
            "model with 3 input and 3 output channels (grayscale and latent models are not supported)."
        )
    return _Layout(unet_dir=unet_dir, scheduler_file=sched, config=cfg)


def _load_state_dict(unet_dir: Path, name: str) -> dict[str, torch.Tensor]:
    """Weights as a state dict: safetensors if present, else a ``.bin`` with ``weights_only=True``."""
    safe, pickled = unet_dir / WEIGHTS_SAFE, unet_dir / WEIGHTS_PICKLE
    if not safe.is_file():
        found = sorted(unet_dir.glob("*.safetensors"))
        safe = found[0] if len(found) == 1 else safe
    try:
        if safe.is_file():
            from safetensors.torch import load_file

            return load_file(str(safe), device="cpu")
        if pickled.is_file():
            return torch.load(str(pickled), map_location="cpu", weights_only=True, mmap=False)
    except pickle.UnpicklingError as exc:
        raise ModelLoadError(
            f"Refused to load {pickled.name} from {name}: the pickle holds more than plain tensors (possibly code), "
            "and Diffusion Lens only reads weights. Use a safetensors copy of the model."
        ) from exc
    except Exception as exc:  # truncated file, git-lfs pointer, wrong format
        bad = safe if safe.is_file() else pickled
        raise ModelLoadError(
            f"The weights file {bad.name} in {name} is damaged or incomplete ({type(exc).__name__}); "
            "re-download or re-save the model."
        ) from exc
    raise ModelLoadError(
        f"{name} has a config but no weights ({WEIGHTS_SAFE} or {WEIGHTS_PICKLE}); re-download or re-save the model."
    )


def _unet_from_config(config: dict, name: str, device: str | torch.device = "cpu") -> torch.nn.Module:
    """diffusers' own UNet2DModel built from a config dict (no repository code is involved)."""
    from diffusers import UNet2DModel

    try:
        with torch.device(device):
            return UNet2DModel.from_config(config)
    except Exception as exc:
        raise ModelLoadError(f"The config.json of {name} does not describe a valid UNet2DModel ({exc}).") from exc


def _check_size(config: dict, name: str) -> None:
    """Refuse oversized models before any weights are read (built on the meta device: no memory)."""
    n = sum(p.numel() for p in _unet_from_config(config, name, "meta").parameters())
    if n > MAX_PARAMETERS:
        raise ModelLoadError(
            f"{name} has {n / 1e6:.1f}M parameters, more than the {MAX_PARAMETERS / 1e6:.0f}M this app allows "
            "(memory is shared by every user); pick a smaller pixel-space DDPM."
        )


def _build_unet(layout: _Layout, name: str) -> torch.nn.Module:
    """UNet2DModel from its config (diffusers' own class: no repository code), weights checked strictly."""
    _check_size(layout.config, name)
    unet = _unet_from_config(layout.config, name)
    state = _load_state_dict(layout.unet_dir, name)
    fix = getattr(unet, "_fix_state_dict_keys_on_load", None)  # old attention names (query/key/value/proj_attn)
    if fix is not None:
        fix(state)
    own = unet.state_dict()
    missing, unexpected = sorted(own.keys() - state.keys()), sorted(state.keys() - own.keys())
    wrong = sorted(k for k in own.keys() & state.keys() if own[k].shape != state[k].shape)
    if missing or unexpected or wrong:
        example = (wrong or missing or unexpected)[0]
        raise ModelLoadError(
            f"The weights in {name} do not match its config.json ({len(wrong)} wrong-shaped, {len(missing)} missing, "
            f"{len(unexpected)} unexpected tensors, e.g. {example}); re-download the model, or re-save it with its config."
        )
    unet.load_state_dict(state, strict=True)
    return unet.eval().requires_grad_(False)


def load_local(folder: str | Path, device: str | torch.device | None = None, *, name: str | None = None) -> LoadedModel:
    """Load a flat or pipeline-layout folder (see module docstring) onto ``device`` (default: :func:`select_device`)."""
    folder = Path(folder).expanduser()
    name = name or str(folder)
    if not folder.is_dir():
        raise ModelLoadError(f"No model folder at {folder}. Check the path, or pick the bundled model.")
    layout = _inspect_folder(folder, name)
    try:
        schedule = (
            schedule_from_config(_read_json(layout.scheduler_file))
            if layout.scheduler_file.is_file()
            else make_schedule("linear")
        )
    except ValueError as exc:
        raise ModelLoadError(f"The scheduler config of {name} is not supported: {exc}.") from exc
    dev = select_device(device)
    unet = _build_unet(layout, name).to(dev)
    size = layout.config.get("sample_size", 64)
    size = int(size[0] if isinstance(size, (list, tuple)) else size)
    return LoadedModel(unet=unet, schedule=schedule, resolution=size, source=name, device=str(dev))


# ---------------------------------------------------------------------------------
# Sources: bundled, local folder, Hub id
# ---------------------------------------------------------------------------------

_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.\-]*/[\w.\-]+$")


def parse_source(source: str | Path | None) -> tuple[str, str]:
    """Classify a model source as ``("bundled", path)``, ``("local", path)`` or ``("hub", repo_id)``.

    ``None``, ``""`` and ``"bundled"`` mean the bundled model. An existing folder is local;
    otherwise ``owner/name`` (or ``hf://owner/name``) is a Hub id.
    """
    if source is None or str(source).strip() in ("", "bundled"):
        return "bundled", str(BUNDLED_MODEL)
    text = str(source).strip()
    if text.startswith("hf://"):
        return "hub", text[len("hf://") :].strip("/")
    path = Path(text).expanduser()
    if path.exists():
        return "local", str(path.resolve())
    if _HUB_ID.match(text) and not text.startswith((".", "/", "~")) and ".." not in text:
        return "hub", text
    raise ModelLoadError(
        f"No model folder at {text}, and it is not a Hub id like google/ddpm-cifar10-32. "
        "Check the path or the id, or pick the bundled model."
    )


def _progress_tqdm(progress: Progress):
    """A tqdm class that draws nothing and reports every update to ``progress``."""
    from tqdm.std import tqdm as std_tqdm

    class _ProgressTqdm(std_tqdm):
        def __init__(self, *args, **kwargs):
            kwargs.pop("name", None)
            kwargs["disable"] = False
            kwargs["file"] = io.StringIO()  # the callback is the display
            super().__init__(*args, **kwargs)
            self._report()

        def update(self, n=1):
            out = super().update(n)
            self._report()
            return out

        def _report(self) -> None:
            try:
                progress(float(self.n), float(self.total) if self.total else None, str(self.desc or ""))
            except Exception:  # noqa: BLE001, S110 -- a broken progress display must not break the download
                pass

    return _ProgressTqdm


def _hub_error(repo_id: str, exc: Exception) -> ModelLoadError:
    """Turn a huggingface_hub / network exception into one sentence a person can act on."""
    from huggingface_hub import errors as hf

    if isinstance(exc, hf.GatedRepoError):
        msg = f"{repo_id} is gated on the Hub: accept its licence on huggingface.co and log in (hf auth login)."
    elif isinstance(exc, (hf.RepositoryNotFoundError, hf.RevisionNotFoundError, hf.HFValidationError)):
        msg = f"There is no model called {repo_id} on the Hugging Face Hub (or it is private); check the spelling."
    elif isinstance(exc, (hf.LocalEntryNotFoundError, ConnectionError, TimeoutError)) or "connect" in repr(exc).lower():
        msg = (
            f"Could not reach the Hugging Face Hub to download {repo_id} (are you offline?); "
            "connect to the internet, or use the bundled model or a local folder."
        )
    elif isinstance(exc, hf.HfHubHTTPError):
        msg = f"The Hugging Face Hub refused to send {repo_id} ({str(exc).splitlines()[0][:120]}); try again later."
    else:
        msg = f"Downloading {repo_id} failed ({type(exc).__name__}: {str(exc)[:120]}); try again later."
    return ModelLoadError(msg)


_CONFIG_FILES = [
    "model_index.json",
    "config.json",
    "scheduler_config.json",
    "unet/config.json",
    "scheduler/scheduler_config.json",
]


def download_hub_model(repo_id: str, progress: Progress | None = None, cache_dir: str | Path | None = None) -> Path:
    """Download only what a UNet2DModel needs from the Hub and return the local snapshot folder.

    1. the JSON configs (a few kB), which are checked before any weights are fetched;
    2. ``diffusion_pytorch_model.safetensors`` (root or ``unet/``);
    3. only if there is no safetensors file: ``diffusion_pytorch_model.bin`` (read later
       with ``weights_only=True``).

    Files land in the normal Hugging Face cache, so a second call, even offline, reuses them.
    ``progress(done, total, description)`` is called as bytes / files arrive.
    """
    from huggingface_hub import snapshot_download

    kw = {"cache_dir": str(cache_dir) if cache_dir else None}
    if progress is not None:
        kw["tqdm_class"] = _progress_tqdm(progress)

    def fetch(patterns: list[str]) -> Path:
        try:
            return Path(snapshot_download(repo_id, allow_patterns=patterns, **kw))
        except Exception as exc:
            raise _hub_error(repo_id, exc) from exc

    folder = fetch(_CONFIG_FILES)
    layout = _inspect_folder(folder, repo_id)
    _check_size(layout.config, repo_id)
    sub = "" if layout.unet_dir == folder else "unet/"
    folder = fetch([sub + WEIGHTS_SAFE])
    if not (folder / sub / WEIGHTS_SAFE).is_file():
        folder = fetch([sub + WEIGHTS_PICKLE])
    return folder


def load_model(
    source: str | Path | None = None, progress: Progress | None = None, device: str | torch.device | None = None
) -> LoadedModel:
    """Load a model from the bundled folder (``None`` / ``"bundled"``), a local folder or a Hub id.

    If the process-wide cache of :func:`get_model` already holds this model, that (read-only)
    instance is returned instead of a second copy. Raises :class:`ModelLoadError`.
    """
    cached = _CACHE.peek(source, device)
    if cached is not None:
        return cached
    kind, where = parse_source(source)
    return _load(kind, where, progress, device)


def _load(kind: str, where: str, progress: Progress | None, device) -> LoadedModel:
    if kind == "hub":
        folder = download_hub_model(where, progress)
        return load_local(folder, device, name=where)
    if kind == "bundled" and not Path(where).is_dir():
        raise ModelLoadError(
            f"The bundled model is not there yet ({where}); train or copy it there, or pick a Hub model."
        )
    return load_local(where, device)


# ---------------------------------------------------------------------------------
# A bounded, thread-safe, process-wide cache
# ---------------------------------------------------------------------------------

MAX_CACHED_MODELS = 3


_FINGERPRINT_FILES = [*_CONFIG_FILES, WEIGHTS_SAFE, WEIGHTS_PICKLE, "unet/" + WEIGHTS_SAFE, "unet/" + WEIGHTS_PICKLE]


def _fingerprint(kind: str, where: str) -> tuple:
    """For a folder: (name, size, mtime) of its model files, so a re-saved model is reloaded. Hub ids: ()."""
    if kind == "hub":
        return ()
    stats = []
    for rel in _FINGERPRINT_FILES:
        try:
            st = (Path(where) / rel).stat()
        except OSError:
            continue
        stats.append((rel, st.st_size, st.st_mtime_ns))
    return tuple(stats)


def _cache_key(kind: str, where: str, device: torch.device) -> tuple:
    return (kind, where, str(device))


class ModelCache:
    """At most ``maxsize`` loaded models, least recently used evicted first.

    Thread safety: one lock guards the table, and one lock per key makes concurrent
    requests for the same model wait for a single load instead of loading it twice
    (different models still load in parallel). Failed loads are not cached.
    """

    def __init__(self, maxsize: int = MAX_CACHED_MODELS, loader=_load):
        if maxsize < 1:
            raise ValueError("maxsize must be >= 1")
        self.maxsize = maxsize
        self._loader = loader
        self._lock = threading.Lock()
        self._models: OrderedDict[tuple, tuple[tuple, LoadedModel]] = OrderedDict()
        self._loading: dict[tuple, threading.Lock] = {}

    def __len__(self) -> int:
        return len(self._models)

    def keys(self) -> list[tuple]:
        with self._lock:
            return list(self._models)

    def clear(self) -> None:
        with self._lock:
            self._models.clear()

    def peek(self, source, device=None) -> LoadedModel | None:
        """The cached model for ``source`` if it is loaded and up to date, else None; never loads."""
        kind, where = parse_source(source)
        key, fp = _cache_key(kind, where, select_device(device)), _fingerprint(kind, where)
        with self._lock:
            hit = self._models.get(key)
        return hit[1] if hit and hit[0] == fp else None

    def _hit(self, key: tuple, fp: tuple) -> LoadedModel | None:
        with self._lock:
            hit = self._models.get(key)
            if hit is None or hit[0] != fp:
                return None
            self._models.move_to_end(key)
            return hit[1]

    def get(self, source, progress: Progress | None = None, device=None) -> LoadedModel:
        kind, where = parse_source(source)
        dev = select_device(device)
        key, fp = _cache_key(kind, where, dev), _fingerprint(kind, where)
        model = self._hit(key, fp)
        if model is not None:
            return model
        with self._lock:
            key_lock = self._loading.setdefault(key, threading.Lock())
        with key_lock:
            model = self._hit(key, fp)  # loaded by another thread while we waited
            if model is not None:
                return model
            try:
                model = self._loader(kind, where, progress, dev)
                with self._lock:
                    self._models[key] = (fp, model)
                    self._models.move_to_end(key)
                    while len(self._models) > self.maxsize:
                        self._models.popitem(last=False)
            finally:
                with self._lock:
                    self._loading.pop(key, None)
        return model


_CACHE = ModelCache(MAX_CACHED_MODELS)


def get_model(
    source: str | Path | None = None, progress: Progress | None = None, device: str | torch.device | None = None
) -> LoadedModel:
    """:func:`load_model` through a process-wide LRU cache of at most ``MAX_CACHED_MODELS`` = 3 models.

    Why 3: the cache is per process, shared by every browser session, so sessions do not
    multiply it. A 256-px Google DDPM has 113.7M parameters = 455 MB in float32 (the
    32-px CIFAR-10 one 35.7M = 143 MB). Three is the bundled model plus two others to
    compare (say CIFAR-10 and one 256-px model), at most ~1.4 GB of weights. On a 24 GB
    server that leaves ~22 GB for activations: one 256-px forward at batch 1 peaks at a few
    hundred MB, so ~30 sessions stepping at once still fit. A fourth model evicts the
    least recently used one; reloading it costs seconds (from the local Hub cache), never a
    re-download.
    """
    return _CACHE.get(source, progress, device)


# ---------------------------------------------------------------------------------
# Saving and tiny models
# ---------------------------------------------------------------------------------


def save_model(unet: torch.nn.Module, schedule: Schedule, folder: str | Path, layout: str = "flat") -> Path:
    """Write a diffusers folder: config.json, safetensors weights and the scheduler config.

    ``layout="flat"`` writes everything in ``folder``; ``"pipeline"`` writes
    ``model_index.json``, ``unet/`` and ``scheduler/`` as ``DDPMPipeline`` does.
    """
    folder = Path(folder)
    if layout not in ("flat", "pipeline"):
        raise ValueError("layout must be 'flat' or 'pipeline'")
    unet_dir = folder if layout == "flat" else folder / "unet"
    sched_dir = folder if layout == "flat" else folder / "scheduler"
    for d in (folder, unet_dir, sched_dir):
        d.mkdir(parents=True, exist_ok=True)
    unet.save_pretrained(str(unet_dir), safe_serialization=True)
    (sched_dir / "scheduler_config.json").write_text(json.dumps(schedule.to_scheduler_config(), indent=2) + "\n")
    if layout == "pipeline":
        index = {
            "_class_name": "DDPMPipeline",
            "scheduler": ["diffusers", "DDPMScheduler"],
            "unet": ["diffusers", "UNet2DModel"],
        }
        (folder / "model_index.json").write_text(json.dumps(index, indent=2) + "\n")
    return folder


def tiny_unet(sample_size: int = 32, seed: int = 0) -> torch.nn.Module:
    """A very small randomly initialised UNet2DModel (for tests and stand-ins)."""
    from diffusers import UNet2DModel

    with torch.random.fork_rng(devices=[]):  # seeded init without touching the global generator
        torch.manual_seed(seed)
        return UNet2DModel(
            sample_size=sample_size,
            in_channels=3,
            out_channels=3,
            block_out_channels=(16, 32),
            layers_per_block=1,
            down_block_types=("DownBlock2D", "DownBlock2D"),
            up_block_types=("UpBlock2D", "UpBlock2D"),
            norm_num_groups=8,
        ).eval()
