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
:mod:`model.diffusion.schedule`). Images: ``(B, C, H, W)`` float32, about [-1, 1] for small t, with
C = :attr:`LoadedModel.channels` (3 for RGB models, 1 for grey ones).

Class-conditional models (``num_class_embeds`` in the config, e.g. the bundled Fashion-MNIST
generator) take ``class_labels`` (B,) int64. A ``classes.json`` beside the weights names the
classes and the "no label" index (``null_label``) that classifier-free guidance uses; calls
without labels use that index, i.e. the unconditional prediction ε̂(x_t, ∅).

Where the parts live: this module holds :class:`LoadedModel`, :func:`load_local`,
:func:`load_model` and the cache behind :func:`get_model`; reading and writing a folder is
:mod:`model.nets.checkpoint_io`, sources and Hub downloads are :mod:`model.nets.hub`. Every name is
re-exported here, so ``from model.nets.network import ...`` keeps working.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch

from model.diffusion.reverse import output_to_eps, output_to_x0
from model.diffusion.schedule import Schedule, make_schedule, schedule_from_config
from model.nets.checkpoint_io import (
    WEIGHTS_PICKLE,
    WEIGHTS_SAFE,
    ModelLoadError,
    _build_unet,
    _inspect_folder,
    _read_json,
)
from model.nets.hub import (
    _CONFIG_FILES,
    Progress,
    download_hub_model,
    parse_source,
)
from model.serving.graph import Traces
from model.serving.precision import PrecisionChoice
from model.serving.service import Serving


def select_device(prefer: str | torch.device | None = None) -> torch.device:
    """CUDA when available, otherwise the CPU. ``prefer`` (the edge's ``DIFFUSION_LENS_DEVICE``) overrides."""
    if prefer:
        return torch.device(prefer)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


# ---------------------------------------------------------------------------------
# The loaded model
# ---------------------------------------------------------------------------------


# Called after every forward pass as observe(model, batch, resolution, t, wall_seconds), the queue's wait included:
# the app's time estimates follow the server's current speed with them (app/compute/estimates.py). Empty unless an app adds
# one; an observer must be cheap and must not raise.
PASS_OBSERVERS: list[Callable[[LoadedModel, int, int, torch.Tensor, float], None]] = []


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
    classes: tuple[str, ...] | None = None  # class names of a class-conditional model, else None
    null_label: int | None = None  # the "no label" index (classifier-free guidance), if the model has one
    # guidance acts only for lo <= t <= hi (classes.json "guidance_interval"; None: at every t); measured per model
    guidance_interval: tuple[int, int] | None = None
    # the guidance scale w the model's card recommends (classes.json "recommended_guidance"; None: w = 0)
    recommended_guidance: float | None = None
    precision: PrecisionChoice | None = field(
        default=None, compare=False
    )  # None: plain fp32 (model/serving/precision.py)
    # what runs its passes: the queue, the batcher, graph traces (Serving.prepare sets it); None: a plain direct pass
    serving: Serving | None = field(default=None, compare=False, repr=False)

    @property
    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.unet.parameters())

    @property
    def channels(self) -> int:
        """Image channels: 3 (RGB) or 1 (grey)."""
        return int(getattr(getattr(self.unet, "config", None), "in_channels", 3))

    @property
    def conditional(self) -> bool:
        """True for a class-conditional model (it takes ``class_labels``)."""
        return bool(getattr(getattr(self.unet, "config", None), "num_class_embeds", None))

    @property
    def guidable(self) -> bool:
        """True when classifier-free guidance is possible: conditional, with a "no label" index."""
        return self.conditional and self.null_label is not None

    def labels(self, class_labels, batch: int) -> torch.Tensor | None:
        """``class_labels`` (None, an int or a (B,) tensor) as a (batch,) LongTensor for the UNet.

        None for an unconditional model. For a conditional model, None means "no label"
        (:attr:`null_label`, or class 0 for a model without one)."""
        if not self.conditional:
            if class_labels is not None:
                raise ValueError("this model is unconditional: it takes no class label")
            return None
        if class_labels is None:
            class_labels = self.null_label if self.null_label is not None else 0
        y = torch.as_tensor(class_labels, dtype=torch.long).reshape(-1)
        return y.expand(batch) if y.numel() == 1 else y

    @property
    def size_multiple(self) -> int:
        """H and W must be multiples of this (2 ** number of downsamplings); :meth:`raw` pads otherwise."""
        blocks = getattr(getattr(self.unet, "config", None), "block_out_channels", None)
        return 2 ** (len(blocks) - 1) if blocks else 1

    @torch.inference_mode()
    def raw(self, x_t: torch.Tensor, t: torch.Tensor, class_labels=None) -> torch.Tensor:
        """The network's own output for x_t (B, C, H, W) at timesteps t (B,) LongTensor, on the CPU.

        ``class_labels``: see :meth:`labels`. Sizes that are not a multiple of :attr:`size_multiple`
        are reflect-padded and the output cropped back. A learned-variance head (2C output channels)
        is cut to its first C.
        """
        c, h, w = x_t.shape[1:]
        m = self.size_multiple
        ph, pw = (-h) % m, (-w) % m
        x = x_t.to(self.device, torch.float32)
        if ph or pw:
            mode = "reflect" if ph < h and pw < w else "replicate"
            x = torch.nn.functional.pad(x, (0, pw, 0, ph), mode=mode)
        y = self.labels(class_labels, x.shape[0])
        tt = torch.as_tensor(t).to(self.device)
        y = None if y is None else y.to(self.device)
        start = time.perf_counter()
        if self.serving is not None:  # its server's fair queue, batched with other sessions' passes if it batches
            out = self.serving.run(self._network, x, tt, y)
        else:  # not prepared by a Serving object (library code, most tests): a plain pass
            out = self._network(x, tt, y)
        for observe in PASS_OBSERVERS:  # how long this pass took, queueing included (the app's estimates)
            observe(self, x_t.shape[0], h, tt, time.perf_counter() - start)
        return out[:, :c, :h, :w].float().cpu()

    def _network(self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
        """One forward pass of the UNet on ``self.device``: x (B, C, H, W) padded, t (B,), y (B,) or None.

        Runs under the precision path chosen at load (:mod:`model.serving.precision`; None = plain fp32),
        eager or as a TorchScript graph (:mod:`model.serving.graph`).
        Returns the raw output tensor (B, C_out, H, W), in whatever dtype the path produced.
        """

        def call() -> torch.Tensor:
            out = self.unet(x, t) if y is None else self.unet(x, t, class_labels=y)
            return out.sample if hasattr(out, "sample") else out

        if self.precision is None:
            return call()
        path = self.precision.path_for(t)
        if not path.graph:
            return path.forward(call)
        traces = self.serving.traces if self.serving is not None else Traces()  # (a graph path comes from a Serving)
        return traces.run(self.unet, path, x, t, y)

    @torch.inference_mode()
    def predict(self, x_t: torch.Tensor, t: torch.Tensor | int, class_labels=None) -> tuple[torch.Tensor, torch.Tensor]:
        """(eps_hat, x0_hat) for x_t (B, C, H, W) at t (an int or a (B,) LongTensor), from one forward pass
        (``class_labels``: see :meth:`labels`).

        eps_hat comes from the network output by :func:`model.diffusion.reverse.output_to_eps`, x0_hat by
        :func:`model.diffusion.reverse.output_to_x0` (eq. 15 for an eps-predictor; straight from the output,
        as diffusers does, for v- and sample-predictors).
        """
        t = torch.as_tensor(t, dtype=torch.long).reshape(-1).expand(x_t.shape[0])
        x_t = x_t.float().cpu()
        out = self.raw(x_t, t, class_labels)
        return output_to_eps(self.schedule, out, x_t, t), output_to_x0(self.schedule, out, x_t, t)

    @torch.inference_mode()
    def eps(self, x_t: torch.Tensor, t: torch.Tensor | int, class_labels=None) -> torch.Tensor:
        """eps_hat = eps_theta(x_t, t[, y]), shaped like x_t; converts v / sample outputs to eps.

        For a reverse step use :meth:`predict`: a step given eps_hat alone would rebuild x0_hat by eq. 15, which
        for a v- or sample-predicting network loses precision at high t, so the steps refuse it
        (:func:`model.diffusion.reverse.step_x0_hat`)."""
        t = torch.as_tensor(t, dtype=torch.long).reshape(-1).expand(x_t.shape[0])
        x = x_t.float().cpu()
        return output_to_eps(self.schedule, self.raw(x, t, class_labels), x, t)

    @torch.inference_mode()
    def x0_hat(self, x_t: torch.Tensor, t: torch.Tensor | int, class_labels=None) -> torch.Tensor:
        """x0_hat, shaped like x_t: :meth:`predict`'s (eq. 15 for an eps-predictor, straight from the output else)."""
        return self.predict(x_t, t, class_labels)[1]

    __call__ = eps


# ---------------------------------------------------------------------------------
# Loading a folder (flat or pipeline layout; reading it is model/nets/checkpoint_io.py)
# ---------------------------------------------------------------------------------


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
    if dev.type == "cpu":
        # oneDNN runs channels-last convolutions faster on a CPU (bench/forward_pass.py times both layouts)
        unet = unet.to(memory_format=torch.channels_last)
    size = layout.config.get("sample_size", 64)
    size = int(size[0] if isinstance(size, (list, tuple)) else size)
    classes, null = _read_classes(folder, layout.config, name)
    interval = _read_guidance_interval(folder, schedule.T, name) if null is not None else None
    w = _read_recommended_guidance(folder, name) if null is not None else None
    model = LoadedModel(
        unet=unet, schedule=schedule, resolution=size, source=name, device=str(dev), classes=classes, null_label=null,
        guidance_interval=interval, recommended_guidance=w,
    )  # fmt: skip
    return model  # plain fp32; Serving.prepare gives it its server's queue and arithmetic


def precision_label(model: LoadedModel) -> str:
    """Which arithmetic runs ``model``'s forward pass, in one line (the sidebar shows it)."""
    return model.precision.label if model.precision is not None else "fp32"


def _read_classes(folder: Path, config: dict, name: str) -> tuple[tuple[str, ...] | None, int | None]:
    """(class names, "no label" index) of a class-conditional model; (None, None) for an unconditional one.

    ``classes.json`` (``{"names": [...], "null_label": 10}``) beside the weights names them; without it the
    classes are called "class 0", "class 1", ... and there is no "no label" index (so no guidance).
    """
    n = config.get("num_class_embeds")
    if not n:
        return None, None
    f = folder / "classes.json"
    if not f.is_file():
        return tuple(f"class {i}" for i in range(int(n))), None
    info = _read_json(f)
    names, null = info.get("names"), info.get("null_label")
    if not isinstance(names, list) or not names or len(names) > int(n) or not all(isinstance(s, str) for s in names):
        raise ModelLoadError(f"classes.json of {name} must list at most {n} class names; re-save the model.")
    if null is not None and (not isinstance(null, int) or not 0 <= null < int(n) or null < len(names)):
        raise ModelLoadError(f"classes.json of {name} has a bad null_label {null!r}; re-save the model.")
    return tuple(names), null


def _read_guidance_interval(folder: Path, T: int, name: str) -> tuple[int, int] | None:
    """``classes.json``'s ``"guidance_interval": [lo, hi]``: the timesteps where classifier-free guidance acts
    (:func:`model.diffusion.guidance.in_interval`), or None (every t). Chosen by measurement: bench/guidance.py."""
    f = folder / "classes.json"
    if not f.is_file():
        return None
    iv = _read_json(f).get("guidance_interval")
    if iv is None:
        return None
    if not (isinstance(iv, list) and len(iv) == 2 and all(isinstance(v, int) for v in iv) and 0 <= iv[0] <= iv[1] < T):
        raise ModelLoadError(
            f"classes.json of {name} has a bad guidance_interval {iv!r}: use [lo, hi] with 0 <= lo <= hi < {T}."
        )
    return int(iv[0]), int(iv[1])


def _read_recommended_guidance(folder: Path, name: str) -> float | None:
    """``classes.json``'s ``"recommended_guidance": w``: the guidance scale the model's card recommends (the app's
    and the commands' default), or None (w = 0). Chosen by measurement: bench/guidance.py."""
    f = folder / "classes.json"
    w = _read_json(f).get("recommended_guidance") if f.is_file() else None
    if w is None:
        return None
    if isinstance(w, bool) or not isinstance(w, (int, float)) or not 0 <= w <= 20:
        raise ModelLoadError(f"classes.json of {name} has a bad recommended_guidance {w!r}: use a number from 0 to 20.")
    return float(w)


# ---------------------------------------------------------------------------------
# Sources: bundled, local folder, Hub id (classifying and downloading: model/nets/hub.py)
# ---------------------------------------------------------------------------------


def load_model(
    source: str | Path | None = None, progress: Progress | None = None, device: str | torch.device | None = None
) -> LoadedModel:
    """Load a model from the bundled folder (``None`` / ``"bundled"``), a local folder or a Hub id: a new
    instance every call (the app shares one per model through ``app.compute.models``). Raises
    :class:`ModelLoadError`."""
    kind, where = parse_source(source)
    return load_parsed(kind, where, progress, device)


def load_parsed(kind: str, where: str, progress: Progress | None, device) -> LoadedModel:
    """:func:`load_model` for a source already classified by :func:`parse_source`."""
    if kind == "hub":
        folder = download_hub_model(where, progress)
        return load_local(folder, device, name=where)
    if kind == "bundled" and not Path(where).is_dir():
        raise ModelLoadError(
            f"The bundled model is not there yet ({where}); train or copy it there, or pick a Hub model."
        )
    return load_local(where, device)


# ---------------------------------------------------------------------------------
# What identifies a loaded model (the app's cache keys on these)
# ---------------------------------------------------------------------------------

_FINGERPRINT_FILES = [*_CONFIG_FILES, WEIGHTS_SAFE, WEIGHTS_PICKLE, "unet/" + WEIGHTS_SAFE, "unet/" + WEIGHTS_PICKLE]


def fingerprint(kind: str, where: str) -> tuple:
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


def cache_key(kind: str, where: str, device: torch.device, policy: str = "fp32") -> tuple:
    """The identity of a loaded model: its source, device and arithmetic policy (a model loaded under "fp32" is
    not the "auto" one)."""
    return (kind, where, str(device), policy)
