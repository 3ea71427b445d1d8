"""Diffusion Lens Streamlit app: thin pages over the pure code in ``model/``."""
