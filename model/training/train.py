"""Train the bundled noise predictor (a diffusers ``UNet2DModel``) on random photo crops.

    python -m model.cli.train --data data/train --out checkpoints/photo-unet --max-minutes 90
    python -m model.cli.train --data data/fashion --arch fashion --out checkpoints/fashion-unet --res 32 ...

``--data`` is a folder of photos (random crops, unconditional) or a Fashion-MNIST folder
(``python -m model.cli.data --fashion-out``; labelled 32-px images). With labels and a class-conditional
preset (``num_class_embeds``), each label is replaced by the "no label" index with probability
``--label-dropout``, so one network learns both ε̂(x_t, y) and ε̂(x_t, ∅) for classifier-free guidance.

Built on ``accelerate``: the same script runs on the CPU, on one GPU, or on several
(``accelerate launch -m model.cli.train ...``). It keeps an EMA of the weights (the saved
model *is* the EMA), writes the diffusers checkpoint folder (``config.json``,
``diffusion_pytorch_model.safetensors``, ``scheduler_config.json``) every
``--save-every-min`` minutes, and a resumable training state (model, optimizer, RNG,
EMA, step, elapsed time, data-sampler state) in ``OUT/train_state/``. Re-running the
same command resumes from the last save. The loss is logged to
``OUT/train_state/loss.csv``.

Loss: MSE on the network output (ε for ``--prediction epsilon``, v for
``--prediction v_prediction``), weighted over t by ``--loss-weight``:

* ``eps``       weight 1 (plain ε-MSE, Ho et al.)
* ``v``         ε-MSE × (1 + 1/SNR_t)  (= v-MSE; x̂_0 quality at high t matters)
* ``trunc:G``   ε-MSE × (1 + min(1/SNR_t, G))  (v-loss truncated so high t cannot dominate)

expressed in ε-MSE units whatever the prediction type, so the weighting means the same
thing for both parameterizations.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

import torch

from model.diffusion.forward import q_sample
from model.diffusion.reverse import output_to_eps
from model.diffusion.schedule import make_schedule
from model.training.crops import CropSampler, load_images
from model.training.fashion import NULL_LABEL, LabelledSampler, is_fashion_folder, load_split, to_model
from model.training.train_lib import (
    ARCHS,
    EMA,
    LossLog,
    RunState,
    build_unet,
    loss_weight,
    lr_at,
    parse_t_focus,
    sample_t,
)


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description="Train the photo ε-predictor (UNet2DModel) with accelerate.")
    ap.add_argument(
        "--data",
        type=Path,
        required=True,
        help="folder of training photos (python -m model.cli.data --out) or Fashion-MNIST (python -m model.cli.data --fashion-out)",
    )
    ap.add_argument(
        "--label-dropout",
        type=float,
        default=0.1,
        help="labelled data and a class-conditional model: probability that a label is replaced by 'no label' "
        "(classifier-free guidance needs both predictions)",
    )
    ap.add_argument("--out", type=Path, required=True, help="checkpoint folder, e.g. checkpoints/photo-unet")
    ap.add_argument("--arch", default="photo", choices=sorted(ARCHS), help="UNet preset")
    ap.add_argument(
        "--init-from",
        type=Path,
        default=None,
        help="start from the weights of a diffusers folder (e.g. the committed checkpoints/photo-unet) when OUT has "
        "no train_state/ to resume; --arch is then ignored",
    )
    ap.add_argument(
        "--prediction",
        default=None,
        choices=["epsilon", "v_prediction"],
        help="what the network outputs; default: that of the run being resumed or of --init-from "
        "(its scheduler_config.json), else epsilon. A value that contradicts them is refused",
    )
    ap.add_argument(
        "--loss-weight",
        default=None,
        help="eps | v | trunc:G (see module docstring); default: v for v_prediction, trunc:1000 for epsilon",
    )
    ap.add_argument(
        "--t-focus",
        type=parse_t_focus,
        default=None,
        help="P:TMAX: draw t from [0, TMAX) with probability P, else uniformly (default: uniform)",
    )
    ap.add_argument("--steps", type=int, default=1_000_000, help="stop after this many optimizer steps in total")
    ap.add_argument("--max-minutes", type=float, default=None, help="stop after this much training wall time in total")
    ap.add_argument("--batch", type=int, default=32, help="batch size per process")
    ap.add_argument("--lr", type=float, default=5e-4)
    ap.add_argument("--warmup", type=int, default=200, help="linear LR warm-up steps")
    ap.add_argument(
        "--lr-decay",
        default="cosine",
        choices=["cosine", "constant"],
        help="cosine: decay to 5%% of --lr over the step/time budget (whichever ends first)",
    )
    ap.add_argument("--weight-decay", type=float, default=0.0)
    ap.add_argument("--res", type=int, default=64, help="training crop resolution (multiple of 16 for the presets)")
    ap.add_argument(
        "--res-early",
        type=int,
        default=None,
        help="train at this (lower, cheaper) resolution for the first --early-frac of the budget",
    )
    ap.add_argument(
        "--early-frac", type=float, default=0.0, help="fraction of the step/time budget spent at --res-early"
    )
    ap.add_argument("--min-crop", type=int, default=None, help="smallest crop side in source pixels (default: --res)")
    ap.add_argument("--p-whole", type=float, default=0.25, help="probability of a whole-short-side crop")
    ap.add_argument(
        "--dihedral", action="store_true", help="also rotate crops by a random multiple of 90 degrees (8 symmetries)"
    )
    ap.add_argument("--ema-decay", type=float, default=0.999)
    ap.add_argument("--save-every-min", type=float, default=4.0)
    ap.add_argument(
        "--save-dtype",
        default="float16",
        choices=["float16", "float32"],
        help="dtype of the saved (committed) weights; the training state stays float32",
    )
    ap.add_argument(
        "--mixed-precision",
        default="no",
        choices=("no", "bf16", "fp16"),
        help="autocast the forward pass (accelerate's mixed_precision; weights, optimizer and EMA stay "
        "float32). bf16 trained 1.6x faster on this AMX CPU (bench/train_step.py: 1.9x per step); fp16 needs a GPU",
    )
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2, help="torch CPU threads (CPU runs only)")
    ap.add_argument("--no-progress", action="store_true", help="disable the tqdm bar")
    a = ap.parse_args(argv)
    if a.mixed_precision == "fp16" and not torch.cuda.is_available():
        ap.error("--mixed-precision fp16 needs a CUDA GPU; on a CPU use bf16 (see bench/train_step.py) or no")
    if not 0.0 <= a.label_dropout <= 1.0:
        ap.error(f"--label-dropout must be in [0, 1], got {a.label_dropout}")
    a.prediction = _settle_prediction(ap, a)
    if a.loss_weight is None:
        a.loss_weight = "v" if a.prediction == "v_prediction" else "trunc:1000"
    return a


def _settle_prediction(ap: argparse.ArgumentParser, a) -> str:
    """The prediction type to train: a warm start or resume keeps the one its weights were trained for.

    Training a v-predicting checkpoint as an ε-predictor (or the reverse) silently unlearns it, so
    the run being resumed (``OUT/train_state/run.json``) or the ``--init-from`` folder's
    ``scheduler_config.json`` decides, and an explicit ``--prediction`` that contradicts it is an error.
    """
    found, where = None, None
    run_json = a.out / "train_state" / "run.json"
    sched_json = a.init_from / "scheduler_config.json" if a.init_from is not None else None
    if run_json.exists():
        found, where = json.loads(run_json.read_text()).get("prediction"), str(run_json)
    elif sched_json is not None and sched_json.exists():
        found, where = json.loads(sched_json.read_text()).get("prediction_type", "epsilon"), str(sched_json)
    if found is not None and a.prediction is not None and a.prediction != found:
        ap.error(f"--prediction {a.prediction} contradicts {where} ({found}); leave --prediction out to keep {found}")
    return a.prediction or found or "epsilon"


# ---------------------------------------------------------------------------------
# The parts of a run: the model, the data, the loss, the saved state, the log
# ---------------------------------------------------------------------------------


def _build_model(a, acc, state_dir: Path, resuming: bool):
    """(UNet2DModel, its config dict): the run being resumed, a warm start from ``--init-from``, or a fresh preset."""
    from diffusers import UNet2DModel

    if resuming:  # parse_args already matched --prediction to run.json
        unet_config = json.loads((state_dir / "unet_config.json").read_text())
        return UNet2DModel.from_config(unet_config), unet_config
    if a.init_from is not None:  # warm start from a saved diffusers folder (e.g. the committed checkpoint)
        model = UNet2DModel.from_pretrained(str(a.init_from), torch_dtype=torch.float32)
        acc.print(f"initialised from {a.init_from} (weights and EMA); optimizer and step count start afresh")
        return model, dict(model.config)
    model = build_unet(a.arch, a.res)
    return model, dict(model.config)


def _make_sampler(a, acc, unet_config: dict):
    """(sampler, number of images, labelled?): labelled Fashion-MNIST batches, or random crops of photos.

    On a GPU the images live there, so the random crops and their antialiased resizes run on it too."""
    labelled = is_fashion_folder(a.data)
    if unet_config.get("num_class_embeds") and not labelled:
        raise SystemExit(f"error: a class-conditional model needs labelled data; {a.data} holds no Fashion-MNIST files")
    seed = a.seed * 1000 + acc.process_index
    if labelled:
        xs, ys = load_split(a.data, "train")
        images = to_model(xs, a.res).to(acc.device)  # (N, 1, res, res) in [-1, 1]
        if images.shape[1] != unet_config["in_channels"]:
            raise SystemExit(f"error: {a.data} is grey but the model has {unet_config['in_channels']} channels")
        return LabelledSampler(images, torch.from_numpy(ys).to(acc.device), seed=seed), len(images), True
    images = [im.to(acc.device) for im in load_images(a.data)]
    sampler = CropSampler(images, a.res, seed=seed, min_side=a.min_crop, p_whole=a.p_whole, dihedral=a.dihedral)
    return sampler, len(images), False


def _batch(a, sampler, labelled: bool, conditional: bool, progress: float, device):
    """(x0 (B, C, res, res) in [-1, 1], class labels (B,) or None) for one step."""
    if not labelled:
        sampler.res = a.res_early if (a.res_early and progress < a.early_frac) else a.res
        return sampler.batch(a.batch).to(device), None
    x0, y = sampler.batch(a.batch)
    if not conditional:
        return x0, None
    # label dropout: the same network learns eps(x_t, y) and eps(x_t, no label)
    drop = torch.rand(y.shape, device=y.device) < a.label_dropout
    return x0, torch.where(drop, torch.full_like(y, NULL_LABEL), y)


def _loss(model, sched, x0: torch.Tensor, y, t: torch.Tensor, snr: torch.Tensor, spec: str):
    """(weighted loss, per-image eps-MSE (B,)) of one batch: x_t by eq. 4, the output turned into eps_hat,
    eps-MSE weighted over t by ``--loss-weight`` (see the module docstring)."""
    eps = torch.randn_like(x0)
    x_t, _ = q_sample(sched, x0, t, noise=eps)  # eq. 4
    eps_hat = output_to_eps(sched, model(x_t, t, class_labels=y).sample, x_t, t)
    per = ((eps_hat - eps) ** 2).mean(dim=(1, 2, 3))
    return (loss_weight(spec, snr[t]) * per).mean(), per


def train(argv=None) -> dict:
    """Run ``python -m model.cli.train`` with ``argv``; returns ``{"step", "elapsed_s", "params"}``."""
    from accelerate import Accelerator
    from accelerate.utils import set_seed
    from tqdm.auto import tqdm

    a = parse_args(argv)
    acc = Accelerator(mixed_precision=a.mixed_precision)
    if acc.device.type == "cpu" and a.threads:
        torch.set_num_threads(a.threads)
    if acc.device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
    resuming = (a.out / "train_state" / "extra.pt").exists()
    set_seed(a.seed + acc.process_index)

    sched = make_schedule("linear", prediction_type=a.prediction)
    # the loss gathers its per-row coefficients on t's device: a copy of the schedule lives there
    dev_sched = sched if acc.device.type == "cpu" else dataclasses.replace(sched, betas=sched.betas.to(acc.device))
    snr = dev_sched.snr.float()
    model, unet_config = _build_model(a, acc, a.out / "train_state", resuming)
    n_params = sum(p.numel() for p in model.parameters())
    opt = torch.optim.AdamW(model.parameters(), lr=a.lr, weight_decay=a.weight_decay)
    model, opt = acc.prepare(model, opt)
    ema = EMA(acc.unwrap_model(model), a.ema_decay)
    sampler, n_images, labelled = _make_sampler(a, acc, unet_config)
    conditional = bool(unet_config.get("num_class_embeds"))
    run = RunState(a, acc, a.out, unet_config, ema, sched, sampler, n_params, conditional)
    if resuming:
        run.resume()
    run.write_run_files(n_images, labelled)

    budget_s = a.max_minutes * 60 if a.max_minutes else float("inf")
    log = LossLog(run.state_dir / "loss.csv", acc.is_main_process)
    run.t_start = run.last_save = time.time()
    bar = tqdm(total=a.steps, initial=run.step, disable=a.no_progress or not acc.is_main_process, dynamic_ncols=True)
    model.train()
    while run.step < a.steps:
        elapsed, since_save = run.clock()
        if elapsed >= budget_s:
            break
        progress = max(run.step / a.steps, elapsed / budget_s)
        lr = lr_at(a, run.step, progress)
        for g in opt.param_groups:
            g["lr"] = lr
        x0, y = _batch(a, sampler, labelled, conditional, progress, acc.device)
        t = sample_t(x0.shape[0], sched.T, a.t_focus, device=acc.device)
        loss, per = _loss(model, dev_sched, x0, y, t, snr, a.loss_weight)
        acc.backward(loss)
        acc.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        ema.update(acc.unwrap_model(model))
        run.step += 1
        log.add(run, bar, loss, per, lr, a.res if labelled else sampler.res)
        if since_save >= a.save_every_min * 60:
            run.save()
            run.last_save = time.time()
    bar.close()
    run.save()
    log.close()
    acc.print(f"done: step {run.step}, {run.elapsed() / 60:.1f} min trained in total; saved to {a.out}")
    return {"step": run.step, "elapsed_s": run.elapsed(), "params": n_params}
