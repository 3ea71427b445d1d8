"""Training the words-to-pictures model, in three phases, resumable at any moment (command: :mod:`model.cli.train_emoji`).

1. **autoencoder** (``ae_steps``): AdamW, loss = MSE + 0.5·L1 of the reconstruction from a posterior sample, plus
   ``kl_weight``·KL(q(z|x) || N(0, I)) (Rombach et al. 2022, sec. 3); random horizontal flips. At the end: the
   held-out PSNR, and the latent ``scaling_factor`` = 1 / std of the posterior means (so the U-Net sees unit variance).
2. **category judge** (``judge_steps``, :mod:`model.evaluation.emoji_judge`), on the training pictures.
3. **text encoder + latent U-Net** together (``unet_steps``): each picture's latent z ~ q(z|x) scaled, a prompt drawn
   by :func:`model.emoji.prompts.draw_prompt` (10 % empty: classifier-free guidance), t uniform in 0..T-1,
   x_t = q_sample(z, t) (Ho et al. eq. 4) and the loss ||eps - eps_hat(x_t, t, words)||². An exponential moving
   average of the weights (decay ``ema``) is what gets exported.

Every ``checkpoint_every`` seconds (and at each phase's end) the full state (weights, optimiser, EMA, step, random
states) goes to ``out/train_state/`` (git-ignored), and the current EMA networks are exported into ``out/`` in the
pipeline layout (:mod:`model.emoji.pipeline`), so stopping the process at any time leaves a usable model; run the
same command again to go on from the last state.
"""

from __future__ import annotations

import json
import math
import random
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from diffusers import UNet2DConditionModel

from model.diffusion.forward import q_sample
from model.emoji.card import write_card
from model.emoji.data import CATEGORIES, EmojiData, load_emoji, to_model
from model.emoji.nets import TextEncoder, make_unet, make_vae
from model.emoji.pipeline import make_emoji_schedule, save_part, save_schedule, write_index
from model.emoji.prompts import draw_prompt, vocabulary
from model.emoji.tokenizer import Tokenizer


@dataclass(frozen=True)
class EmojiTrainConfig:
    data: str = "data/emoji"
    out: str = "checkpoints/emoji-sd"
    judge_out: str = "checkpoints/emoji-judge"
    ae_steps: int = 1500  # batches of ae_batch
    ae_batch: int = 32
    ae_lr: float = 2e-3
    kl_weight: float = 1e-6
    judge_steps: int = 3000  # 300 until December 2026: held-out accuracy 0.64 (bench/results/emoji.txt)
    unet_steps: int = 40000  # batches of unet_batch; stop the process earlier and the last export stays
    unet_batch: int = 48
    unet_lr: float = 8e-4
    ema: float = 0.999
    checkpoint_every: float = 180.0  # seconds between saves
    seed: int = 0
    device: str = "cpu"
    retrain: str = ""  # train only these phases again, comma-separated (RETRAINABLE): "judge", "decoder"
    decoder_steps: int = 24000  # --retrain decoder: batches of decoder_batch on the frozen encoder's latents (the
    # committed decoder's run: 64 min on 2 threads; held-out PSNR flat from about 10,000 steps on, docs/models.md)
    decoder_batch: int = 64
    decoder_lr: float = 3e-3


def cosine_lr(base: float, step: int, total: int) -> float:
    """The learning rate at ``step`` of ``total``: a cosine from ``base`` down to 10 % of it."""
    return base * (0.1 + 0.45 * (1 + math.cos(math.pi * step / total)))


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    """Mean over pictures of 10 log10(1 / MSE) on [0, 1] pixels; a, b (N, 3, H, W) in [-1, 1]."""
    mse = ((a.clamp(-1, 1) - b.clamp(-1, 1)) / 2).pow(2).flatten(1).mean(1).clamp_min(1e-10)
    return float((10 * torch.log10(1 / mse)).mean())


@torch.no_grad()
def reconstruct(vae, x: torch.Tensor, batch: int = 256) -> torch.Tensor:
    """The autoencoder's reconstruction from the posterior mean (what the bench measures)."""
    vae.eval()
    return torch.cat(
        [vae.decode(vae.encode(x[i : i + batch]).latent_dist.mean).sample for i in range(0, len(x), batch)]
    )


RETRAINABLE = ("judge", "decoder")  # phases --retrain trains on their own: the judge again from scratch; the
# decoder on from the exported autoencoder (resumable), its encoder and so the U-Net's latent space left as they are


class Trainer:
    """One run: holds the config, the data, the state paths, and a clock for checkpoints."""

    def __init__(self, cfg: EmojiTrainConfig, log: Callable[[str], None] = print):
        self.cfg, self.log = cfg, log
        self.out = Path(cfg.out)
        self.state_dir = self.out / "train_state"
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.data: EmojiData = load_emoji(Path(cfg.data))
        self.train_idx = np.flatnonzero(~self.data.held_out)
        self.held_idx = np.flatnonzero(self.data.held_out)
        self.x = to_model(self.data.images)  # (N, 3, 32, 32)
        self.record = self._read_record()
        self.record["config"] = {k: v for k, v in asdict(cfg).items() if k != "retrain"}  # this run's (a resumed
        # run may change the step counts); not "retrain", which says what this run did, not how the parts were made

    # ---- bookkeeping ----
    def _read_record(self) -> dict:
        """The training record: train_state/record.json, or, where the state was lost (a new machine), the record
        the last export wrote into model_index.json, so that finished phases are not trained again."""
        p = self.state_dir / "record.json"
        if p.exists():
            return json.loads(p.read_text())
        index = self.out / "model_index.json"
        exported = json.loads(index.read_text()).get("training") if index.exists() else None
        if exported and all((self.out / part).is_dir() for part in ("vae", "text_encoder", "unet")):
            self.log("no train_state: going on from the exported model's record (optimizer state starts afresh)")
            return exported
        return {"config": asdict(self.cfg), "phases": {}}

    def _write_record(self, only: tuple[str, ...] = ()) -> None:
        """The record into train_state/ and, with the model card, into the export. ``only``: phases retrained on their
        own, which alone change in the export's record (the training state may be ahead of the exported networks)."""
        (self.state_dir / "record.json").write_text(json.dumps(self.record, indent=2))
        index = self.out / "model_index.json"
        exported = (json.loads(index.read_text()).get("training") if only and index.exists() else None) or self.record
        if exported is not self.record:
            for name in only:
                exported["phases"][name] = self.record["phases"][name]
                exported["config"].update({k: v for k, v in self.record["config"].items() if k.startswith(name + "_")})
        write_index(self.out, {"training": exported})
        write_card(self.out, exported)

    def _phase(self, name: str) -> dict:
        return self.record["phases"].setdefault(name, {"done": False, "seconds": 0.0, "step": 0})

    def run(self) -> None:
        again = [name for name in (p.strip() for p in self.cfg.retrain.split(",")) if name]
        for name in again:
            if name not in RETRAINABLE:
                raise ValueError(
                    f"--retrain takes {', '.join(RETRAINABLE)}, not {name!r} (the autoencoder and the U-Net go on from "
                    "their last state; train into a new --out folder to start them afresh)"
                )
        if again:  # only these phases, from scratch; the others are left as they are
            torch.manual_seed(self.cfg.seed)
            if "judge" in again:
                self.train_category_judge()
            if "decoder" in again:
                self.train_decoder()
            self.log(f"trained again: {', '.join(again)}")
            return
        torch.manual_seed(self.cfg.seed)
        tok = Tokenizer.from_words(vocabulary(self.data.rows))
        tok.save(self.out / "tokenizer")
        save_schedule(self.out, make_emoji_schedule())
        if not self._phase("autoencoder")["done"]:
            self.train_autoencoder()
        if not self._phase("judge")["done"]:
            self.train_category_judge()
        if not self._phase("unet")["done"]:
            self.train_unet(tok)
        self.log("all phases done")

    # ---- phase 1 ----
    def train_autoencoder(self) -> None:
        cfg, ph = self.cfg, self._phase("autoencoder")
        vae = make_vae().to(cfg.device)
        opt = torch.optim.AdamW(vae.parameters(), cfg.ae_lr, weight_decay=0.0)
        step = self._load(vae, opt, "autoencoder.pt")
        rng = torch.Generator().manual_seed(cfg.seed + step)
        x_train = self.x[self.train_idx]
        last, t0 = time.time(), time.time()
        vae.train()
        while step < cfg.ae_steps:
            lr = cosine_lr(cfg.ae_lr, step, cfg.ae_steps)
            for g in opt.param_groups:
                g["lr"] = lr
            x = x_train[torch.randint(0, len(x_train), (cfg.ae_batch,), generator=rng)]
            flip = torch.rand(cfg.ae_batch, generator=rng) < 0.5
            x = torch.where(flip[:, None, None, None], x.flip(3), x).to(cfg.device)
            post = vae.encode(x).latent_dist
            rec = vae.decode(post.sample()).sample
            loss = F.mse_loss(rec, x) + 0.5 * F.l1_loss(rec, x) + cfg.kl_weight * post.kl().mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            step += 1
            if step % 100 == 0:
                self.log(f"autoencoder step {step}/{cfg.ae_steps} loss {loss.item():.4f}")
            if step % 500 == 0:
                held = self.x[self.held_idx]
                self.log(f"autoencoder held-out PSNR {psnr(reconstruct(vae, held.to(cfg.device)).cpu(), held):.2f} dB")
                vae.train()
            if time.time() - last > cfg.checkpoint_every:
                ph["seconds"] += time.time() - t0
                t0 = last = time.time()
                ph["step"] = step
                self._save(vae, opt, step, "autoencoder.pt")
                self._write_record()
        ph["seconds"] += time.time() - t0
        vae = vae.cpu().eval()
        with torch.no_grad():
            means = torch.cat([vae.encode(x_train[i : i + 256]).latent_dist.mean for i in range(0, len(x_train), 256)])
        vae.register_to_config(scaling_factor=float(1.0 / means.std()))
        held = self.x[self.held_idx]
        ph.update(
            done=True,
            step=step,
            held_out_psnr_db=psnr(reconstruct(vae, held), held),
            train_psnr_db=psnr(reconstruct(vae, x_train[:256]), x_train[:256]),
            scaling_factor=float(vae.config.scaling_factor),
        )
        save_part(vae, self.out / "vae")
        self._save(vae, opt, step, "autoencoder.pt")
        self._write_record()
        self.log(f"autoencoder done: held-out PSNR {ph['held_out_psnr_db']:.2f} dB")

    # ---- phase 1b (--retrain decoder) ----
    def train_decoder(self) -> None:
        """Fine-tune the exported autoencoder's decoder (and post_quant_conv) alone, on latents of the frozen encoder:
        the latent space, its ``scaling_factor`` and so the U-Net trained on it stay valid, as Stability AI's ft-MSE
        decoder did for Stable Diffusion. Loss as in phase 1 (MSE + 0.5 L1, from posterior samples of the picture and
        of its mirror image), cosine learning rate to 10 %; resumable from ``train_state/decoder.pt``; the held-out
        PSNR goes into the record's "decoder" row."""
        from model.emoji.pipeline import load_vae

        cfg, ph = self.cfg, self._phase("decoder")
        if ph.get("done") and ph.get("planned") != cfg.decoder_steps:  # a longer (or new) run: go on from the state
            ph["done"] = False
        vae = load_vae(self.out).to(cfg.device)
        trained = [p for n, p in vae.named_parameters() if n.startswith(("decoder.", "post_quant_conv."))]
        for p in vae.parameters():
            p.requires_grad_(False)
        for p in trained:
            p.requires_grad_(True)
        opt = torch.optim.AdamW(trained, cfg.decoder_lr, weight_decay=0.0)
        step = begun = self._load(vae, opt, "decoder.pt")
        x_train = self.x[self.train_idx]
        x_both = torch.cat([x_train, x_train.flip(3)])
        with torch.no_grad():
            dists = [vae.encode(x_both[i : i + 256].to(cfg.device)).latent_dist for i in range(0, len(x_both), 256)]
        mean, std = torch.cat([d.mean for d in dists]), torch.cat([d.std for d in dists])
        rng = torch.Generator().manual_seed(cfg.seed + 2000 + step)
        held = self.x[self.held_idx]
        last, t0 = time.time(), time.time()
        vae.decoder.train()
        while step < cfg.decoder_steps:
            warm = min(1.0, (step + 1 - begun) / 300)  # Adam starts afresh or from its saved state: warm up again
            lr = cosine_lr(cfg.decoder_lr, step, cfg.decoder_steps) * warm
            for g in opt.param_groups:
                g["lr"] = lr
            i = torch.randint(0, len(x_both), (cfg.decoder_batch,), generator=rng)
            z = mean[i] + std[i] * torch.randn(mean[i].shape, generator=rng).to(cfg.device)
            x = x_both[i].to(cfg.device)
            rec = vae.decode(z).sample
            loss = F.mse_loss(rec, x) + 0.5 * F.l1_loss(rec, x)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            step += 1
            if step % 100 == 0:
                self.log(f"decoder step {step}/{cfg.decoder_steps} loss {loss.item():.4f}")
            if step % 1000 == 0 or step == cfg.decoder_steps or time.time() - last > cfg.checkpoint_every:
                ph["seconds"] += time.time() - t0
                t0 = last = time.time()
                ph.update(step=step, planned=cfg.decoder_steps, held_out_psnr_db=psnr(reconstruct(vae, held), held))
                self.log(f"decoder held-out PSNR {ph['held_out_psnr_db']:.2f} dB at step {step}")
                vae.decoder.train()
                self._save(vae, opt, step, "decoder.pt")
                save_part(vae.cpu(), self.out / "vae")
                vae.to(cfg.device)
                self._write_record(only=("decoder",))
        ph["done"] = True
        self._write_record(only=("decoder",))
        self.log(f"decoder done: held-out PSNR {ph.get('held_out_psnr_db', float('nan')):.2f} dB")

    # ---- phase 2 ----
    def train_category_judge(self) -> None:
        from model.evaluation.emoji_judge import save_judge, train_judge

        ph, t0 = self._phase("judge"), time.time()
        judge = train_judge(
            self.data.images[self.train_idx], self.data.categories[self.train_idx], self.cfg.judge_steps
        )
        pred = judge.predict(self.data.images[self.held_idx])
        acc = float((pred == self.data.categories[self.held_idx]).mean())
        ph.update(done=True, step=self.cfg.judge_steps, seconds=time.time() - t0, held_out_accuracy=acc)
        save_judge(judge, Path(self.cfg.judge_out), {"held_out_accuracy": acc, "steps": self.cfg.judge_steps})
        self._write_record(only=("judge",) if self.cfg.retrain else ())
        self.log(f"judge done: held-out accuracy {acc:.3f} over {len(CATEGORIES)} categories")

    # ---- phase 3 ----
    def _latents(self):
        from model.emoji.pipeline import load_vae

        vae = load_vae(self.out)
        with torch.no_grad():
            dists = [vae.encode(self.x[i : i + 256]).latent_dist for i in range(0, len(self.x), 256)]
        mean = torch.cat([d.mean for d in dists]) * vae.config.scaling_factor
        std = torch.cat([d.std for d in dists]) * vae.config.scaling_factor
        return mean, std

    def train_unet(self, tok: Tokenizer) -> None:
        cfg, ph = self.cfg, self._phase("unet")
        schedule = make_emoji_schedule()
        mean, std = self._latents()
        te, unet = TextEncoder(len(tok.vocab)).to(cfg.device), make_unet().to(cfg.device)
        ema_te, ema_unet = TextEncoder(len(tok.vocab)), make_unet()
        ema_te.load_state_dict(te.state_dict())
        ema_unet.load_state_dict(unet.state_dict())
        params = list(te.parameters()) + list(unet.parameters())
        opt = torch.optim.AdamW(params, cfg.unet_lr, weight_decay=0.01)
        nets = torch.nn.ModuleDict({"te": te, "unet": unet, "ema_te": ema_te, "ema_unet": ema_unet})
        step = self._load(nets, opt, "unet.pt")
        warm_from = 0
        if step == 0 and ph["step"] > 0:
            step = warm_from = self._warm_start(te, unet, ema_te, ema_unet, ph["step"])
        rng = torch.Generator().manual_seed(cfg.seed + 1000 + step)
        prng = random.Random(cfg.seed + step)
        rows, idx_pool = self.data.rows, self.train_idx
        last, t0 = time.time(), time.time()
        te.train()
        unet.train()
        while step < cfg.unet_steps:
            lr = cfg.unet_lr * min(1.0, (step + 1) / 500, (step + 1 - warm_from) / 200 if warm_from else 1.0)
            for g in opt.param_groups:
                g["lr"] = lr
            idx = idx_pool[torch.randint(0, len(idx_pool), (cfg.unet_batch,), generator=rng).numpy()]
            z0 = mean[idx] + std[idx] * torch.randn(mean[idx].shape, generator=rng)
            ids = torch.tensor([tok.encode_words(draw_prompt(rows[i], prng)) for i in idx])
            t = torch.randint(0, schedule.T, (cfg.unet_batch,), generator=rng)
            x_t, eps = q_sample(schedule, z0, t, generator=rng)
            eps_hat = unet(x_t.to(cfg.device), t.to(cfg.device), encoder_hidden_states=te(ids.to(cfg.device))).sample
            loss = F.mse_loss(eps_hat, eps.to(cfg.device))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
            step += 1
            decay = min(cfg.ema, (1 + step) / (10 + step))  # EMA warm-up: the first steps forget the initial weights
            with torch.no_grad():
                for ema, live in ((ema_te, te), (ema_unet, unet)):
                    for pe, pl in zip(ema.parameters(), live.parameters(), strict=True):
                        pe.lerp_(pl.detach().cpu(), 1 - decay)
            if step % 100 == 0:
                self.log(f"unet step {step}/{cfg.unet_steps} loss {loss.item():.4f}")
            if time.time() - last > cfg.checkpoint_every or step == cfg.unet_steps:
                ph["seconds"] += time.time() - t0
                t0 = last = time.time()
                ph.update(step=step, done=step >= cfg.unet_steps, examples_seen=step * cfg.unet_batch)
                self._save(nets, opt, step, "unet.pt")
                save_part(ema_te, self.out / "text_encoder")
                save_part(ema_unet, self.out / "unet")
                self._write_record()
                self.log(f"unet checkpoint at step {step}")

    def _warm_start(self, te, unet, ema_te, ema_unet, step: int) -> int:
        """Go on from the exported EMA networks (both the live and the EMA copies) when train_state/unet.pt is gone;
        the optimizer's moments start at zero, so the learning rate warms up again over 200 steps."""
        te_w = TextEncoder.from_pretrained(self.out / "text_encoder", torch_dtype=torch.float32).state_dict()
        unet_w = UNet2DConditionModel.from_pretrained(self.out / "unet", torch_dtype=torch.float32).state_dict()
        for net, w in ((te, te_w), (ema_te, te_w), (unet, unet_w), (ema_unet, unet_w)):
            net.load_state_dict(w)
        self.log(f"warm start from the exported networks at step {step}")
        return step

    # ---- state ----
    def _save(self, model, opt, step: int, name: str) -> None:
        tmp = self.state_dir / (name + ".tmp")
        torch.save({"model": model.state_dict(), "opt": opt.state_dict(), "step": step}, tmp)
        tmp.replace(self.state_dir / name)

    def _load(self, model, opt, name: str) -> int:
        p = self.state_dir / name
        if not p.exists():
            return 0
        state = torch.load(p, map_location="cpu", weights_only=True)
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["opt"])
        self.log(f"resumed {name} at step {state['step']}")
        return int(state["step"])
