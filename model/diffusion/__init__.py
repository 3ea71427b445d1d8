"""The diffusion math the app teaches, with shapes and ranges documented in each module.

* :mod:`~model.diffusion.schedule`: beta_t, alpha_t, alpha_bar_t and the SNR, built in float64.
* :mod:`~model.diffusion.forward`: q(x_t | x_0) in closed form and q(x_t | x_{t-1}) step by step.
* :mod:`~model.diffusion.reverse`: x0_hat, the output/eps/v conversions, the posterior, DDPM and DDIM steps.
* :mod:`~model.diffusion.trajectory`: :func:`~model.diffusion.trajectory.sample_trajectory`, the one generator of
  (t, x_t, eps_hat, x0_hat) at every step.
* :mod:`~model.diffusion.guidance`: classifier-free guidance.
* :mod:`~model.diffusion.vlb_terms`, :mod:`~model.diffusion.likelihood`: the variational bound in bits/dim and the
  simple loss.

Every formula takes an int or a ``(B,)`` tensor of t, so nothing else re-derives it.
"""
