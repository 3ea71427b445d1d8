"""The address bar's fields (app/session/urlstate.py reads and writes them): for each page, which parameter holds which
widget's value, and how its text is checked (a parser raises :class:`BadValue` with the sentence shown)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from app.compute import core

MAX_SEED = 2**31 - 1
NO_LABEL = "none"  # the "no label" choice of a class-conditional model, in the address


class BadValue(ValueError):
    """A value in the address that cannot be used; the message is the sentence shown."""


# --- parsers: text from the address -> session value (raise BadValue with a sentence) ----------------------
def _int(lo: int, hi: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise BadValue(f"should be a whole number from {lo} to {hi}") from None
        if not lo <= value <= hi:
            raise BadValue(f"should be from {lo} to {hi}")
        return value

    return parse


def _float(lo: float, hi: float, step: float) -> Callable[[str], float]:
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise BadValue(f"should be a number from {lo:g} to {hi:g}") from None
        if not lo <= value <= hi:  # also refuses nan
            raise BadValue(f"should be from {lo:g} to {hi:g}")
        return round(round(value / step) * step, 6)  # onto the slider's grid

    return parse


def _choice(options: dict[str, object]) -> Callable[[str], object]:
    def parse(text: str) -> object:
        value = options.get(text.strip().lower())
        if value is None:
            raise BadValue("should be one of " + ", ".join(options))
        return value

    return parse


def parse_bool(text: str) -> bool:
    if text.strip().lower() in ("1", "true", "on", "yes"):
        return True
    if text.strip().lower() in ("0", "false", "off", "no"):
        return False
    raise BadValue("should be 1 or 0")


def _name(text: str) -> str:
    """A short name (a class, a block, a layer), checked later against the model (classes in _class_value;
    blocks and layers by the Inside page, which says so (see from_link) and falls back to its default for a
    name the model lacks)."""
    text = text.strip()
    if not text or len(text) > 60:
        raise BadValue("should be a short name (a class of the model, or none)")
    return text


@dataclass(frozen=True)
class Field:
    param: str  # name in the address
    key: str  # st.session_state key (the widget's key)
    parse: Callable[[str], object]
    show: Callable[[object], str] = str  # session value -> text in the address


def _show_float(v: object) -> str:
    return f"{float(v):g}"


def _show_bool(v: object) -> str:
    return "1" if v else "0"


def _show_lower(v: object) -> str:
    return str(v).lower()


_SEED = _int(0, MAX_SEED)
_T = _int(0, 999)
# The trajectory page's "start from" radio: its labels, by their name in the address.
SOURCES = {"photo": "Your photo, noised to t_start", "noise": "Pure noise (generate)"}

PAGE_FIELDS: dict[str, tuple[Field, ...]] = {
    "forward": (
        Field("t", "fwd_t", _T),
        Field("schedule", "fwd_schedule", _choice({"linear": "linear", "cosine": "cosine"})),
        Field("seed", "fwd_seed", _SEED),
        Field("chain", "fwd_chain", parse_bool, _show_bool),
        Field("freq", "fwd_freq", parse_bool, _show_bool),
    ),
    "denoise": (
        Field("t", "den_t", _T),
        Field("seed", "den_seed", _SEED),
        Field("class", "den_class", _name),
    ),
    "trajectory": (
        Field("start", "traj_source", _choice(SOURCES), lambda v: {b: a for a, b in SOURCES.items()}[v]),
        Field("t_start", "traj_t_start", _T),
        Field("sampler", "traj_sampler", _choice({"ddim": "DDIM", "ddpm": "DDPM"}), _show_lower),
        Field("eta", "traj_eta", _float(0.0, 1.0, 0.1), _show_float),
        Field("steps", "traj_steps", _int(10, 1000)),
        Field("seed", "traj_seed", _SEED),
        Field("photo_model", "traj_photo_model_anyway", parse_bool, _show_bool),  # before class: it picks the model
        Field("class", "traj_class", _name),
        Field("w", "traj_guidance", _float(0.0, 8.0, 0.5), _show_float),
        Field("freq", "traj_freq", parse_bool, _show_bool),
    ),
    "inside": (
        Field("t", "ins_t", _T),
        Field("seed", "ins_seed", _SEED),
        Field("class", "ins_label", _name),
        Field("block", "ins_block", _name),
        Field("attn", "ins_attn", _name),
        Field("qrow", "ins_qrow", _int(0, 4096)),
        Field("qcol", "ins_qcol", _int(0, 4096)),
    ),
    "objective": (
        Field("seed", "obj_seed", _SEED),
        Field("n", "obj_n", _choice({"20": 20, "50": 50, "100": 100, "200": 200})),
        Field("draws", "obj_draws", _choice({"1": 1, "2": 2, "3": 3, "5": 5})),
        Field("lr", "obj_lr", _choice({f"{v:g}": v for v in (1e-5, 3e-5, 1e-4, 3e-4, 1e-3)}), _show_float),
    ),
    "about": (),
    "start": (),
    "glossary": (),
}
# the "no label" entry of each page's class widget
NO_LABEL_SHOWN = {"den_class": "no label (∅)", "traj_class": "no label (unconditional)", "ins_label": "no label (∅)"}
CLASS_KEYS = tuple(NO_LABEL_SHOWN)
# the trajectory page's step slider and auto-run: only meaningful with a finished run
STEP = Field("step", "traj_step", _int(1, 1000))
RES = Field("res", "resolution", _choice({str(r): r for r in core.RESOLUTIONS}))
