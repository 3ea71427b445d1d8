"""The three networks of the words-to-pictures model, small enough to train on two CPU cores, in diffusers' layouts.

* :class:`TextEncoder`: token ids (B, L) -> token embeddings (B, L, 128): a token and position embedding and a
  2-layer transformer encoder (padding masked), trained jointly with the U-Net on the diffusion loss (as Imagen's
  encoder is not: ours starts from nothing, so it learns what the U-Net needs).
* the autoencoder: diffusers' ``AutoencoderKL``, (B, 3, 32, 32) in [-1, 1] <-> a latent (B, 4, 8, 8), trained with a
  reconstruction loss and a small KL term (Rombach et al. 2022, sec. 3).
* the U-Net: diffusers' ``UNet2DConditionModel`` on the 8×8×4 latent with cross-attention to the token embeddings
  (``encoder_hidden_states`` (B, L, 128)) at every level.

One folder holds them all (``checkpoints/emoji-sd``): ``tokenizer/vocab.json``, ``text_encoder/``, ``vae/``,
``unet/`` (each ``config.json`` + fp16 safetensors) and ``scheduler/scheduler_config.json``, as a diffusers
Stable Diffusion pipeline folder is laid out.
"""

from __future__ import annotations

import torch
from diffusers import AutoencoderKL, UNet2DConditionModel
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from torch import nn

from model.emoji.tokenizer import MAX_LEN, PAD

EMBED_DIM = 128  # the width of a token embedding, = the U-Net's cross_attention_dim
LATENT_CHANNELS = 4
LATENT_RES = 8


class TextEncoder(ModelMixin, ConfigMixin):
    """Token ids (B, L) int64 -> token embeddings (B, L, embed_dim) float32 (Vaswani et al. 2017, pre-norm)."""

    @register_to_config
    def __init__(
        self, vocab_size: int, embed_dim: int = EMBED_DIM, layers: int = 2, heads: int = 4, max_len: int = MAX_LEN
    ):
        super().__init__()
        self.token = nn.Embedding(vocab_size, embed_dim)
        self.position = nn.Embedding(max_len, embed_dim)
        layer = nn.TransformerEncoderLayer(
            embed_dim, heads, 2 * embed_dim, dropout=0.0, batch_first=True, norm_first=True, activation="gelu"
        )
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(embed_dim)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        pos = torch.arange(ids.shape[1], device=ids.device)
        h = self.token(ids) + self.position(pos)[None]  # (B, L, D)
        h = self.encoder(h, src_key_padding_mask=ids == PAD)
        return self.norm(h)


def make_vae() -> AutoencoderKL:
    """32×32×3 <-> 8×8×4: two downsamplings, one ResNet block per level, no attention."""
    return AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * 3,
        up_block_types=("UpDecoderBlock2D",) * 3,
        block_out_channels=(16, 32, 64),
        layers_per_block=1,
        latent_channels=LATENT_CHANNELS,
        norm_num_groups=8,
        sample_size=32,
        mid_block_add_attention=False,
    )


def make_unet() -> UNet2DConditionModel:
    """The latent U-Net: 8×8 -> 4×4 -> 8×8 with cross-attention to the words at both levels and in the middle."""
    return UNet2DConditionModel(
        sample_size=LATENT_RES,
        in_channels=LATENT_CHANNELS,
        out_channels=LATENT_CHANNELS,
        down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
        block_out_channels=(64, 128),
        layers_per_block=1,
        cross_attention_dim=EMBED_DIM,
        attention_head_dim=4,  # diffusers' name for the number of heads here
        norm_num_groups=16,
    )


def count_params(m: nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())
