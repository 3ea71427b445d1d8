"""A photo to an emoji: SDEdit (Meng et al. 2021) in the latent of the words-to-pictures model.

The recipe, in the paper's order (sec. 3):

1. the photo, centre-cropped to a square and resized to 32×32 with Pillow (:func:`photo_pixels`): x0_pixels
   (1, 3, 32, 32) float32 in [-1, 1];
2. its latent z_0 = scaling_factor · E(x0_pixels) (:func:`photo_to_latent`: the mean of the autoencoder's encoder
   distribution, no sampling), (1, 4, 8, 8);
3. noised part of the way, to t_start = round(strength · (T - 1)), with the closed form q(x_t | x_0)
   (:func:`model.diffusion.forward.q_sample`, Ho et al. 2020, eq. 4);
4. the same guided DDIM reverse process as a picture made from noise (:func:`model.emoji.sample.reverse_from`),
   from t_start down to 0 over ``make_timesteps(t_start, steps)``, every step recorded in an
   :class:`~model.emoji.sample.EmojiRun`.

``strength`` in (0, 1]: small keeps more of the photo (few steps of noise to undo), 1 starts from x_{T-1}, almost
pure noise, and follows the words alone. Timestep convention: index 0 is the first noising step, T - 1 the last.
One seed (``Settings.seed``) draws the noise of step 3 and then any noise of the reverse steps (eta > 0).
"""

from __future__ import annotations

import torch
from PIL import Image

from model.diffusion.forward import q_sample
from model.emoji.pipeline import EmojiPipeline
from model.emoji.sample import EmojiRun, Settings, check_settings, decode, reverse_from
from model.images.tensors import picture_to_x0, tensor_to_uint8

SIDE = 32  # the emoji model's pictures are 32×32


def check_strength(strength: float) -> float:
    """``strength`` as a float, or ``ValueError`` with one sentence."""
    if not 0 < float(strength) <= 1:
        raise ValueError(f"the strength must lie in (0, 1], above 0 and at most 1, got {strength}")
    return float(strength)


def start_step(pipe: EmojiPipeline, strength: float) -> int:
    """t_start = round(strength · (T - 1)), the timestep index the photo is noised to (0 .. T - 1)."""
    return int(round(check_strength(strength) * (pipe.schedule.T - 1)))


def photo_pixels(photo: Image.Image | torch.Tensor) -> torch.Tensor:
    """An RGB Pillow picture, or a picture tensor (1, 3, H, W) in [-1, 1], -> (1, 3, 32, 32) float32 in [-1, 1]:
    square centre crop, then a Lanczos resize to 32×32 (Pillow)."""
    if isinstance(photo, torch.Tensor):
        photo = Image.fromarray(tensor_to_uint8(photo))
    return picture_to_x0(photo.convert("RGB"), SIDE)


@torch.no_grad()
def photo_to_latent(pipe: EmojiPipeline, x0_pixels: torch.Tensor) -> torch.Tensor:
    """Pictures (B, 3, 32, 32) in [-1, 1] -> scaled latents z_0 (B, 4, 8, 8): the encoder's mean times the
    autoencoder's ``scaling_factor`` (the scale the U-Net was trained on)."""
    if tuple(x0_pixels.shape[1:]) != (3, SIDE, SIDE):
        raise ValueError(f"the photo must be (B, 3, {SIDE}, {SIDE}) pixels, got {tuple(x0_pixels.shape)}")
    return pipe.vae.encode(x0_pixels.float()).latent_dist.mode() * pipe.scaling_factor


def reconstruct(pipe: EmojiPipeline, x0_pixels: torch.Tensor) -> torch.Tensor:
    """What the autoencoder keeps of the photo: decode(encode(x0_pixels)), (B, 3, 32, 32) in [-1, 1]."""
    return decode(pipe, photo_to_latent(pipe, x0_pixels))


@torch.no_grad()
def edit(
    pipe: EmojiPipeline,
    s: Settings,
    x0_pixels: torch.Tensor,
    strength: float,
    record_attention: bool = True,
    decode_steps: bool = True,
) -> EmojiRun:
    """SDEdit: ``s.batch`` pictures from one photo x0_pixels (1, 3, 32, 32) in [-1, 1] and the words of ``s``.

    The run's ``timesteps[0]`` is t_start (:func:`start_step`) and ``x_t[0]`` the noised photo x_{t_start}
    (S, B, 4, 8, 8 as every run); raises ``ValueError`` (one sentence) for bad settings or strength.
    """
    check_settings(s)
    t_start = start_step(pipe, strength)
    if x0_pixels.shape[0] != 1:
        raise ValueError(f"edit one photo at a time, got {x0_pixels.shape[0]}")
    z0 = photo_to_latent(pipe, x0_pixels).expand(s.batch, -1, -1, -1)  # (B, 4, 8, 8)
    g = torch.Generator().manual_seed(s.seed)
    x_start, _ = q_sample(pipe.schedule, z0, t_start, generator=g)
    return reverse_from(pipe, s, x_start, t_start, g, record_attention, decode_steps)
