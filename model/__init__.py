"""Diffusion Lens math and model code: pure, UI-free (no streamlit or plotly imports).

The sub-packages, from the taught math outwards:

* :mod:`model.diffusion`: the diffusion math the app teaches: noise schedules, the forward process q, the reverse
  process p_theta (x0_hat, the posterior, DDPM/DDIM steps and the one trajectory generator), classifier-free
  guidance, the variational bound and the simple loss. Depends on torch only.
* :mod:`model.nets`: the networks: loading a diffusers ``UNet2DModel`` from the bundled folder, a local folder or
  the Hub; the arithmetic it runs in; the inference queue and the batcher; what a pass costs; looking inside it.
* :mod:`model.images`: untrusted image bytes in, tensors out and back, and the blog figure.
* :mod:`model.training`: training the bundled networks, and the data sources they learn from.
* :mod:`model.evaluation`: judging a checkpoint (against classical denoisers) and a generator (with a judge CNN).
* :mod:`model.cli`: the command lines (``python -m model.cli.NAME``, or the ``diffusion-lens-*`` commands).

``python -m model.figure`` and ``python -m model.likelihood`` are the README's two classroom commands.
"""
