"""The model card of ``checkpoints/emoji-sd`` (its README.md), written from the training record at every export, so it
always says what the exported weights went through."""

from __future__ import annotations

from pathlib import Path

from model.emoji.data import LICENCES


def _fmt_minutes(seconds: float) -> str:
    return f"{seconds / 60:.1f} min"


def card_text(record: dict) -> str:
    ph = record.get("phases", {})
    cfg = record.get("config", {})
    ae, judge, unet = ph.get("autoencoder", {}), ph.get("judge", {}), ph.get("unet", {})
    lines = [
        "# emoji-sd: a miniature Stable Diffusion trained on emoji",
        "",
        "Text encoder, autoencoder and latent U-Net with cross-attention, trained from scratch in the Diffusion Lens",
        "repository on a shared 2-core CPU at nice 15 (one or two torch threads; which, per phase, in docs/models.md).",
        'Layout and how to use or retrain it: docs/models.md (section "The words-to-pictures model").',
        "",
        "## Data and licences",
        "",
        "emoji-datasource 16.0.0 and emojilib 4.0.3 (npm, SHA-256 pinned in model/emoji/data.py). Pictures from two",
        "art sets only:",
        "",
        f"* Google Noto Emoji: {LICENCES['google']}",
        f"* Twitter Twemoji: {LICENCES['twitter']}",
        f"* emoji-datasource: {LICENCES['emoji-datasource']}; emojilib: {LICENCES['emojilib']}",
        "",
        "The apple and facebook sheets are not used. The weights are derived from the pictures above: keep the",
        "attribution when you share them.",
        "",
        "## Training record (from model_index.json)",
        "",
        "| part | steps | batch | minutes (wall clock, shared machine) | result |",
        "|---|---:|---:|---:|---|",
    ]
    if ae:
        res = f"held-out PSNR {ae['held_out_psnr_db']:.2f} dB" if "held_out_psnr_db" in ae else "(in progress)"
        lines.append(
            f"| autoencoder | {ae.get('step', 0)} | {cfg.get('ae_batch', '')} | {_fmt_minutes(ae.get('seconds', 0))} | {res} |"
        )
    dec = ph.get("decoder", {})
    if dec:
        res = f"held-out PSNR {dec['held_out_psnr_db']:.2f} dB" if "held_out_psnr_db" in dec else "(in progress)"
        lines.append(
            f"| decoder fine-tuned, encoder frozen | {dec.get('step', 0)} | {cfg.get('decoder_batch', '')} | "
            f"{_fmt_minutes(dec.get('seconds', 0))} | {res} |"
        )
    if judge:
        acc = judge.get("held_out_accuracy")
        res = f"held-out accuracy {100 * acc:.1f} % (9 categories)" if acc is not None else ""
        lines.append(
            f"| category judge | {judge.get('step', 0)} | 64 | {_fmt_minutes(judge.get('seconds', 0))} | {res} |"
        )
    if unet:
        state = "finished" if unet.get("done") else "stopped early: exported at this step"
        lines.append(
            f"| text encoder + U-Net | {unet.get('step', 0)} | {cfg.get('unet_batch', '')} | "
            f"{_fmt_minutes(unet.get('seconds', 0))} | {state} (planned {cfg.get('unet_steps', '')}) |"
        )
    lines += ["", "Category agreement, diversity, near-copies and speed: `python bench/emoji.py`.", ""]
    return "\n".join(lines)


def write_card(folder: Path, record: dict) -> None:
    (Path(folder) / "README.md").write_text(card_text(record))
