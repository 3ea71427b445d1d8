"""The words-to-pictures model: a miniature Stable Diffusion trained here on emoji (data, tokenizer, text encoder,
autoencoder, latent U-Net with cross-attention, training, and sampling with guidance and attention maps)."""
