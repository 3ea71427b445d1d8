"""Where a model comes from: a source string classified as the bundled folder, a local folder
or a Hugging Face Hub id; the Hub models the picker offers by name; and downloading from the
Hub only what a ``UNet2DModel`` needs (configs checked first), with Hub and network errors
turned into one sentence a person can act on.

Nothing here builds a model: :func:`model.nets.network.load_model` does that with the folder
:func:`download_hub_model` returns.
"""

from __future__ import annotations

import io
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from model.nets.checkpoint_io import WEIGHTS_PICKLE, WEIGHTS_SAFE, ModelLoadError, _check_size, _inspect_folder

REPO_ROOT = Path(__file__).resolve().parents[2]
BUNDLED_MODEL = REPO_ROOT / "checkpoints" / "photo-unet"
# the second bundled model: a class-conditional Fashion-MNIST generator (source name "fashion")
FASHION_MODEL = REPO_ROOT / "checkpoints" / "fashion-unet"
BUNDLED_SOURCES = {"bundled": BUNDLED_MODEL, "fashion": FASHION_MODEL}

# progress(done, total, description): ``done``/``total`` in the bar's unit (bytes or files);
# ``total`` is None while unknown. Called from download threads; must be cheap.
Progress = Callable[[float, "float | None", str], None]


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


# ---------------------------------------------------------------------------------
# Sources: bundled, local folder, Hub id
# ---------------------------------------------------------------------------------

_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.\-]*/[\w.\-]+$")


def is_hub_id(text: str) -> bool:
    """True if ``text`` has the form of a Hub repo id (``owner/name``), judged from the text alone (no disk)."""
    return bool(_HUB_ID.match(text)) and not text.startswith((".", "/", "~")) and ".." not in text


def parse_source(source: str | Path | None) -> tuple[str, str]:
    """Classify a model source as ``("bundled", path)``, ``("local", path)`` or ``("hub", repo_id)``.

    ``None``, ``""`` and ``"bundled"`` mean the bundled photo model, ``"fashion"`` the bundled
    Fashion-MNIST generator. An existing folder is local; otherwise ``owner/name`` (or
    ``hf://owner/name``) is a Hub id.
    """
    if source is None or str(source).strip() in ("", "bundled"):
        return "bundled", str(BUNDLED_MODEL)
    if str(source).strip() == "fashion":
        return "bundled", str(FASHION_MODEL)
    text = str(source).strip()
    if text.startswith("hf://"):
        return "hub", text[len("hf://") :].strip("/")
    path = Path(text).expanduser()
    if path.exists():
        return "local", str(path.resolve())
    if is_hub_id(text):
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
        reason = f"Could not reach the Hugging Face Hub to download {repo_id} (are you offline?)."
        advice = "connect to the internet, or use the bundled model or a local folder."
        return ModelLoadError(f"{reason[:-1]}; {advice}", reason=reason)
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
