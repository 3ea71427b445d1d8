"""The words-to-pictures model's figures (issue 37): autoencoder PSNR, category agreement, diversity, near-copies,
and the page's speed.

    .venv/bin/python bench/emoji.py [--per-prompt 16] [--w 3] [--steps 25] [--threads 2] [--json out.json]

* **autoencoder PSNR**: mean over the held-out emoji (5 %, both art sets) of 10 log10(1 / MSE) on [0, 1] pixels,
  decoding the posterior mean (target >= 28 dB).
* **category agreement**: for each prompt of :data:`PROMPTS` (words of one category), ``--per-prompt`` pictures
  (seeds 0..n-1, one batch) at guidance ``--w`` and ``--steps`` DDIM steps; the share that the category judge
  (checkpoints/emoji-judge, its held-out accuracy printed beside) puts in the prompt's category (target >= 80 %).
* **diversity**: mean pairwise L2 distance ([0, 1] pixels) between the pictures of one prompt, averaged over
  prompts, beside the same for real training emoji of the prompt's category (same count).
* **near-copies**: share of pictures whose nearest training emoji is closer than the 1st percentile of the
  held-out emoji's nearest-training distances (:func:`model.evaluation.gen_metrics.calibrate_copy_threshold`; real
  unseen emoji score about 1 % by construction; target <= 5 %).
* **prompt -> 25-step picture**: :func:`model.emoji.sample.generate` of one picture with attention maps recorded,
  median of ``--repeats`` (target <= 2 s on 2 cores).
* **slider move**: the page rerun (AppTest) after a step-slider move over a cached run (target <= 300 ms).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
APP = str(ROOT / "app" / "streamlit_app.py")
PROMPTS = {  # prompt -> its category's index in model.emoji.data.CATEGORIES
    "smiling face": 0,
    "red heart": 0,
    "cat": 2,
    "dog": 2,
    "pizza": 3,
    "car": 4,
    "soccer ball": 5,
    "light bulb": 6,
    "flag": 8,
    "woman": 1,
}


def data_category(data, prompt: str) -> tuple[int, dict[int, int]]:
    """The category most of the training emoji carrying all of ``prompt``'s words (name, short names or keywords)
    belong to, and the count per category: what the prompt means in this data (18 of the 28 emoji with "cat" are
    Smileys & Emotion's cat faces)."""
    want = set(prompt.split())
    counts: dict[int, int] = {}
    for row, cat, held in zip(data.rows, data.categories, data.held_out, strict=True):
        have = set(row["name"]) | set(row["keywords"]) | {w for names in row["short_names"] for w in names}
        if not held and want <= have:
            counts[int(cat)] = counts.get(int(cat), 0) + 1
    return (max(counts, key=counts.get) if counts else -1), counts


def bench_autoencoder(pipe, data) -> float:
    from model.emoji.data import to_model
    from model.emoji.train import psnr, reconstruct

    held = to_model(data.images[data.held_out])
    return psnr(reconstruct(pipe.vae, held), held)


def bench_generation(pipe, data, judge, per_prompt: int, w: float, steps: int) -> dict:
    from model.emoji.data import to_uint8
    from model.emoji.sample import Settings, generate
    from model.evaluation.gen_metrics import calibrate_copy_threshold, nearest_train_distance

    train = data.images[~data.held_out]
    flat = lambda a: a.reshape(len(a), a.shape[1], -1)  # noqa: E731 (N, 32, 96): what gen_metrics takes
    threshold = calibrate_copy_threshold(flat(data.images[data.held_out]), flat(train))
    rng = np.random.default_rng(0)
    rows, pics_all, agree, div, div_real, by_data, agree_data = {}, [], [], [], [], {}, []
    for prompt, cat in PROMPTS.items():
        run = generate(
            pipe,
            Settings(prompt, w=w, steps=steps, seed=0, batch=per_prompt),
            record_attention=False,
            decode_steps=False,
        )
        pics = to_uint8(run.final)
        pred = judge.predict(pics)
        rows[prompt] = float((pred == cat).mean())
        agree.append(pred == cat)
        major, counts = data_category(data, prompt)
        by_data[prompt] = {"category": major, "training_emoji": counts, "agreement": float((pred == major).mean())}
        agree_data.append(pred == major)
        pics_all.append(pics)
        div.append(_pairwise(pics))
        real = train[data.categories[~data.held_out] == cat]
        div_real.append(_pairwise(real[rng.choice(len(real), min(per_prompt, len(real)), replace=False)]))
    pics_all = np.concatenate(pics_all)
    d = nearest_train_distance(flat(pics_all), flat(train))
    return {
        "agreement_per_prompt": rows,
        "agreement": float(np.concatenate(agree).mean()),
        "by_data": by_data,
        "agreement_by_data": float(np.concatenate(agree_data).mean()),
        "diversity": float(np.mean(div)),
        "diversity_real": float(np.mean(div_real)),
        "near_copy_share": float((d < threshold).mean()),
        "near_copy_threshold": threshold,
    }


def _pairwise(pics: np.ndarray) -> float:
    x = torch.from_numpy(pics.reshape(len(pics), -1).astype(np.float32) / 255)
    d = torch.cdist(x, x)
    n = len(x)
    return float(d.sum() / (n * (n - 1))) if n > 1 else float("nan")


def bench_speed(pipe, repeats: int, steps: int, w: float) -> list[float]:
    from model.emoji.sample import Settings, generate

    ms = []
    for i in range(repeats):
        t0 = time.perf_counter()
        generate(pipe, Settings("smiling face", w=w, steps=steps, seed=i))
        ms.append((time.perf_counter() - t0) * 1000)
    return ms


def bench_slider(repeats: int) -> list[float]:
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(APP, default_timeout=300)
    at.switch_page("views/words.py")
    at.run()
    if at.exception or at.error or at.info:
        raise SystemExit(
            f"error: the page did not render a run: {[e.value for e in [*at.exception, *at.error, *at.info]]}"
        )
    ms = []
    for i in range(repeats):
        at.slider(key="emoji_step").set_value(1 + (7 * i) % 25)
        t0 = time.perf_counter()
        at.run()
        ms.append((time.perf_counter() - t0) * 1000)
    return ms


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--per-prompt", type=int, default=16)
    ap.add_argument("--w", type=float, default=None, help="guidance (default: the page's default)")
    ap.add_argument("--steps", type=int, default=25)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--model", type=Path, default=ROOT / "checkpoints" / "emoji-sd")
    ap.add_argument("--judge", type=Path, default=ROOT / "checkpoints" / "emoji-judge")
    ap.add_argument("--data", type=Path, default=ROOT / "data" / "emoji")
    ap.add_argument("--skip-page", action="store_true", help="leave out the slider timing (AppTest)")
    ap.add_argument("--json", default=None)
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)
    import streamlit.logger

    streamlit.logger.set_log_level("error")
    from model.emoji.data import load_emoji
    from model.emoji.pipeline import load_pipeline
    from model.emoji.sample import Settings, install_recorders
    from model.evaluation.emoji_judge import load_judge

    w = Settings.w if a.w is None else a.w
    pipe = load_pipeline(a.model)
    install_recorders(pipe.unet)
    data = load_emoji(a.data)
    judge = load_judge(a.judge)
    judge_acc = json.loads((a.judge / "judge.json").read_text())["held_out_accuracy"]
    from model.emoji.data import CATEGORIES

    out: dict = {"threads": torch.get_num_threads(), "w": w, "steps": a.steps, "per_prompt": a.per_prompt}
    out["autoencoder_psnr_db"] = bench_autoencoder(pipe, data)
    out.update(bench_generation(pipe, data, judge, a.per_prompt, w, a.steps))
    gen_ms = bench_speed(pipe, a.repeats, a.steps, w)
    out["prompt_to_picture_ms"] = statistics.median(gen_ms)
    if not a.skip_page:
        out["slider_move_ms"] = statistics.median(bench_slider(a.repeats))
    print(f"emoji model {a.model.name}, {out['threads']} torch threads, w = {w:g}, {a.steps} steps")
    print(f"  autoencoder PSNR on held-out emoji        {out['autoencoder_psnr_db']:.2f} dB   (target >= 28)")
    print(
        f"  category agreement ({a.per_prompt} per prompt)       {100 * out['agreement']:.1f} %   (target >= 80; judge's own held-out accuracy {100 * judge_acc:.1f} %)"
    )
    short = [c.split(" &")[0] for c in CATEGORIES]
    print("      prompt         agreement  training emoji with the prompt's words, per category (judged against *)")
    for p, v in out["agreement_per_prompt"].items():
        d = out["by_data"][p]
        where = ", ".join(
            f"{short[c]}{'*' if c == PROMPTS[p] else ''} {n}" for c, n in sorted(d["training_emoji"].items())
        )
        print(f"      {p:14s} {100 * v:5.1f} %    {where}")
    print(
        f"  agreement with each prompt's majority category in the data   {100 * out['agreement_by_data']:.1f} %   "
        "(the same pictures; differs where a prompt's words mostly name another category's emoji)"
    )
    print(
        f"  diversity within a prompt                 {out['diversity']:.2f}   (real emoji of the category: {out['diversity_real']:.2f})"
    )
    print(f"  near-copy share                           {100 * out['near_copy_share']:.1f} %   (target <= 5)")
    print(
        f"  prompt -> {a.steps}-step picture + attention     {out['prompt_to_picture_ms']:.0f} ms median of {a.repeats}   (target <= 2000)"
    )
    if "slider_move_ms" in out:
        print(
            f"  slider move (page rerun, AppTest)         {out['slider_move_ms']:.0f} ms median of {a.repeats}   (target <= 300)"
        )
    if a.json:
        Path(a.json).write_text(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
