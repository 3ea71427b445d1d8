"""Predict, then reveal: a question whose answer picture stays hidden until the learner picks an answer.

:func:`ask` draws the question (optionally with candidate pictures), a radio with no answer chosen, and only after
a pick calls ``compute()`` and shows its :class:`Answer`: the correct option, the pictures that prove it and one
sentence why. The answer is computed from the live model and the current settings, never typed in.

The three questions of the pages (issue 26): :func:`forward_question` ("what will x_t look like at t = 900?"),
:func:`denoise_question` ("is x̂₀ sharper at t = 50 or 500?") and :func:`guidance_question` ("will guidance
w = 4 look better?").

Every pick is counted in a server-wide :class:`Tally` (thread-safe, one vote per browser and question, whatever its
tabs: changing one's answer moves the vote; :func:`app.server.guard.browser_id`). The tally is this process's own object,
not a Streamlit cache, so nothing a browser sends empties it. The presenter (:func:`app.ui.present.presenter`: the
teacher who gave the presenter key) sees the class's counts under each question, refreshed every
:data:`REFRESH_S` seconds while students vote, with a button to start a new count; students never see them.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import streamlit as st
import torch

from app.charts.render import picture
from app.compute import core, models, reverse
from app.server import guard
from app.ui import present
from model.diffusion.guidance import guided_eps_model
from model.diffusion.trajectory import make_timesteps, sample_trajectory
from model.images.tensors import tensor_to_uint8, to_picture
from model.nets import hub

MAX_VOTERS = 5000  # per question: a classroom, with room to spare (older votes are dropped first)


# --- the tally -------------------------------------------------------------------------------------------------
class Tally:
    """Server-wide answer counts: question id -> {voter id: option}. Safe to call from every session's thread."""

    def __init__(self, max_voters: int = MAX_VOTERS):
        self._lock = threading.Lock()
        self._votes: dict[str, dict[str, str]] = {}
        self._max = max_voters

    def vote(self, question: str, voter: str, option: str) -> None:
        """Record (or move) ``voter``'s answer to ``question``."""
        with self._lock:
            votes = self._votes.setdefault(question, {})
            votes.pop(voter, None)  # re-insert: the dict keeps the latest voters last
            votes[voter] = option
            while len(votes) > self._max:
                votes.pop(next(iter(votes)))

    def counts(self, question: str, options: Sequence[str] = ()) -> dict[str, int]:
        """Votes per option (every option in ``options`` listed, 0 if none voted for it)."""
        with self._lock:
            chosen = list(self._votes.get(question, {}).values())
        out = {o: 0 for o in options}
        for o in chosen:
            out[o] = out.get(o, 0) + 1
        return out

    def reset(self, question: str) -> None:
        with self._lock:
            self._votes.pop(question, None)


_TALLY = Tally()  # a module's object lives as long as the process: clear_cache (even the operator's) leaves it


def tally() -> Tally:
    """The one tally of this server process."""
    return _TALLY


def voter_id() -> str:
    """This browser's anonymous id in the tally (all its tabs share it)."""
    return guard.browser_id()


# --- the question ----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Answer:
    correct: str  # one of the options
    why: str  # one sentence, with the measured numbers
    pictures: list = field(default_factory=list)  # [(picture, caption)] that show the answer
    columns: int = 3  # the pictures are drawn this many to a row: the size of the page's other pictures


def ask(
    qid: str,
    prompt: str,
    options: Sequence[str],
    compute: Callable[[], Answer],
    candidates: Sequence[tuple[object, str]] = (),
) -> str | None:
    """Draw the question ``qid``; after a pick, the computed answer. Returns the option picked, or None."""
    # The question comes before the pictures that answer it, so it must not push them off a 1080-px projector or a
    # phone's first screen. Presenting, it is one line the teacher opens when asking the class (the page's own
    # pictures fill the screen there); elsewhere a compact box with the candidates beside it, small, in one row
    # ("pics_" keeps a row on a phone; presentation mode caps their height, app/ui/present.py).
    if present.on():
        box = st.expander(f"**Predict, then reveal.** {prompt}", expanded=False, icon=":material/quiz:")
    else:
        box = st.container(border=True, key=f"reveal_{qid}")
    with box:
        ask_col, pics_col = st.columns([3, 2], vertical_alignment="center") if candidates else (st.container(), None)
        with ask_col:
            st.markdown(f"**Predict, then reveal.** {prompt}")
            choice = st.radio(
                "Your prediction", list(options), index=None, key=f"reveal_pick_{qid}", horizontal=True,
                help="Pick one: the answer is computed from the model only then.",
            )  # fmt: skip
            if choice is None:
                st.caption("The answer stays hidden until you pick.")
        if candidates:
            cols = pics_col.container(key=f"pics_reveal_{qid}").columns(len(candidates))
            for c, (pic, cap) in zip(cols, candidates, strict=True):
                c.image(pic, caption=cap, width="stretch")
        if choice is None:
            _presenter_counts(qid, options)
            return None
        tally().vote(qid, voter_id(), choice)
        with st.spinner("Computing the answer from the model…"):
            answer = compute()
        right = choice == answer.correct
        (st.success if right else st.warning)(
            f"{'Right' if right else 'Not quite'}: the answer is **{answer.correct}**. {answer.why}"
        )
        if answer.pictures:  # as wide as the page's own pictures (one column of three), not the page's width
            cols = st.columns(max(answer.columns, len(answer.pictures)))[: len(answer.pictures)]
            for c, (pic, cap) in zip(cols, answer.pictures, strict=True):
                c.image(pic, caption=cap, width="stretch")
        _presenter_counts(qid, options)
    return choice


REFRESH_S = 3.0  # the presenter's counts are redrawn this often while the page is open


def _presenter_counts(qid: str, options: Sequence[str]) -> None:
    if present.presenter():
        _live_counts(qid, tuple(options))


@st.fragment(run_every=REFRESH_S)
def _live_counts(qid: str, options: tuple[str, ...]) -> None:
    """The class's answers, redrawn every :data:`REFRESH_S` s (a fragment: only these lines rerun)."""
    counts = tally().counts(qid, options)
    total = sum(counts.values())
    st.markdown(
        f"**The class's answers** ({total}): " + " · ".join(f"{o}: **{n}**" for o, n in counts.items()),
        help="Counted by this server process, one answer per browser (its latest pick); behind several replicas, "
        "the students whose browsers were sent to this one (docs/security.md).",
    )
    st.button("Start a new count", key=f"reveal_reset_{qid}", on_click=tally().reset, args=(qid,))


# --- Forward: what will x_t look like at t = 900? -------------------------------------------------------------
FORWARD_T = 900
LOOKS = {  # option -> the signal-to-noise ratio its candidate picture is drawn at
    "A: the photo, a little grainy": 4.0,
    "B: photo and noise, half and half": 0.4,
    "C: almost pure noise": 0.01,
}


def t_at_snr(snr: torch.Tensor, target: float) -> int:
    """The timestep whose SNR is nearest ``target`` (in log scale)."""
    return int((snr.log() - math.log(target)).abs().argmin())


def forward_answer(img, schedule_name: str, seed: int, t: int = FORWARD_T) -> Answer:
    """The look whose SNR is nearest SNR(t) on this schedule (in log scale), with x_t at t to prove it."""
    snr = core.schedule(schedule_name).snr
    t = min(t, len(snr) - 1)
    s = float(snr[t])
    correct = min(LOOKS, key=lambda o: abs(math.log(s) - math.log(LOOKS[o])))
    x_t, _ = core.forward_jump(img.key, img.resolution, schedule_name, t, seed, img.x0)
    return Answer(
        correct,
        f"On the {schedule_name} schedule the signal-to-noise ratio at t = {t} is {s:.2g} "
        f"({'the photo still dominates' if s > 1 else 'the noise dominates'}).",
        [(picture(x_t), f"x_t at t = {t}, SNR {s:.2g}")],
    )


def forward_question(img, schedule_name: str, seed: int) -> str | None:
    """On Forward: three candidate pictures (x_t at three SNRs, unlabelled by t); which one is x_t at t = 900?"""
    snr = core.schedule(schedule_name).snr
    cands = []
    for option, target in LOOKS.items():
        x, _ = core.forward_jump(img.key, img.resolution, schedule_name, t_at_snr(snr, target), seed + 1, img.x0)
        cands.append((picture(x, 128), option.split(":")[0]))
    return ask(
        f"forward_t{FORWARD_T}",
        f"What will x_t look like at t = {FORWARD_T}, on the {schedule_name} schedule?",
        list(LOOKS),
        lambda: forward_answer(img, schedule_name, seed),
        cands,
    )


# --- Denoise: is x̂₀ sharper at t = 50 or 500? ----------------------------------------------------------------
SHARP_TS = (50, 500)
SAME_DB = 1.0  # PSNRs closer than this count as "about the same"
SHARP_OPTIONS = (f"at t = {SHARP_TS[0]}", f"at t = {SHARP_TS[1]}", "about the same")


def denoise_answer(img, model, mkey: str, seed: int, label: int | None) -> Answer:
    """Which t gives the sharper x̂₀, decided by PSNR(x̂₀, x₀) from the model at both t."""
    T = model.schedule.T
    rows = [
        (t, reverse.denoise_at(img.key, img.resolution, mkey, min(t, T - 1), seed, img.x0, model, label))
        for t in SHARP_TS
    ]
    (t1, r1), (t2, r2) = rows
    diff = r1["psnr"] - r2["psnr"]
    correct = SHARP_OPTIONS[2] if abs(diff) < SAME_DB else SHARP_OPTIONS[0 if diff > 0 else 1]
    return Answer(
        correct,
        f"PSNR of x̂₀ against the photo: {r1['psnr']:.1f} dB at t = {t1}, {r2['psnr']:.1f} dB at t = {t2} "
        f"(higher is closer; less than {SAME_DB:g} dB apart counts as the same).",
        [(picture(r["x0_hat"]), f"x̂₀ at t = {t}, PSNR {r['psnr']:.1f} dB") for t, r in rows],
    )


def denoise_question(img, model, mkey: str, seed: int, label: int | None) -> str | None:
    return ask(
        "denoise_sharper",
        f"Is the network's guess x̂₀ sharper at t = {SHARP_TS[0]} or at t = {SHARP_TS[1]}?",
        SHARP_OPTIONS,
        lambda: denoise_answer(img, model, mkey, seed, label),
    )


# --- Reverse trajectory: will guidance w = 4 look better? ------------------------------------------------------
GUIDE_W = 4.0
GUIDE_N = 8  # samples per scale
GUIDE_STEPS = 25
GUIDE_OPTIONS = ("yes, clearer", "no, worse", "about the same")
JUDGE = core.ROOT / "checkpoints" / "fashion-judge"


@st.cache_resource(show_spinner=False)
def judge():
    from model.evaluation.judge import load_judge

    return load_judge(JUDGE)


def guidance_available() -> bool:
    return hub.FASHION_MODEL.is_dir() and (JUDGE / "judge.json").is_file()


@st.cache_data(max_entries=16, show_spinner=False)
def judged_samples(label: int, w: float, n: int = GUIDE_N, steps: int = GUIDE_STEPS, seed: int = 0):
    """``n`` samples of class ``label`` from the bundled Fashion generator at guidance ``w`` (DDIM η = 0, the same
    noise for every w), and the share the judge classifies as ``label``: ``(uint8 (n, 32, 32), agreement)``."""
    model = models.get_bundled("fashion")
    g = torch.Generator().manual_seed(seed)
    x = torch.randn((n, model.channels, model.resolution, model.resolution), generator=g)
    y = torch.full((n,), int(label), dtype=torch.long)
    last = None
    with torch.inference_mode():
        for last in sample_trajectory(  # noqa: B007 -- the last record holds the samples
            guided_eps_model(model, y, float(w)), model.schedule, x, make_timesteps(model.schedule.T - 1, steps),
            "ddim", 0.0, g,
        ):  # fmt: skip
            pass
    images = np.stack([tensor_to_uint8(last.x_prev[i])[..., 0] for i in range(n)])
    pred = judge().predict(images[:, 2:30, 2:30].copy())  # the judge sees the central 28 px
    return images, float((pred == int(label)).mean())


def guidance_answer(label: int, classes: Sequence[str]) -> Answer:
    """Better or worse, decided by the judge's agreement with the class at w = 0 and at w = :data:`GUIDE_W`."""
    (im0, a0), (im4, a4) = judged_samples(label, 0.0), judged_samples(label, GUIDE_W)
    step = 1.5 / GUIDE_N  # more than one sample's difference
    correct = GUIDE_OPTIONS[0] if a4 - a0 > step else GUIDE_OPTIONS[1] if a0 - a4 > step else GUIDE_OPTIONS[2]
    name = classes[label]
    return Answer(
        correct,
        f"Of {GUIDE_N} {name} samples from the same noise, the judge (a separate classifier) recognised "
        f"{round(a0 * GUIDE_N)} at w = 0 and {round(a4 * GUIDE_N)} at w = {GUIDE_W:g}.",
        [(_strip(im0), f"w = 0: {round(a0 * GUIDE_N)}/{GUIDE_N} judged {name}"),
         (_strip(im4), f"w = {GUIDE_W:g}: {round(a4 * GUIDE_N)}/{GUIDE_N} judged {name}")],
        columns=2,  # two strips of samples, one above the other on a phone
    )  # fmt: skip


def _strip(images: np.ndarray):
    """A row of grey samples as one picture."""
    return to_picture(np.concatenate(list(images), axis=1), 64 * len(images))


def guidance_question(class_name: str | None) -> str | None:
    """On Reverse trajectory: the Fashion generator, the class chosen on the page (or Sneaker), w = 0 vs 4."""
    if not guidance_available():
        return None
    classes = list(models.get_bundled("fashion").classes)
    label = classes.index(class_name) if class_name in classes else classes.index("Sneaker")
    return ask(
        "trajectory_guidance",
        f"With the Fashion generator, will guidance w = {GUIDE_W:g} draw a clearer **{classes[label]}** than w = 0?",
        GUIDE_OPTIONS,
        lambda: guidance_answer(label, classes),
    )
