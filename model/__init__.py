"""Diffusion Lens math and model code: pure, UI-free (no streamlit or plotly imports)."""
