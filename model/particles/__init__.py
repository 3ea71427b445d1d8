"""The particle lab: diffusion on a 2-D point set, where every quantity has a closed form and runs in milliseconds.

* :mod:`~model.particles.data`: moons, rings, a few points, and typed or brushed points (validated, one sentence
  for bad input).
* :mod:`~model.particles.exact`: the exact denoiser of a finite point set (x0_hat is a softmax-weighted mean of the
  points), its eps_hat, flow velocity and probability-flow drift.
* :mod:`~model.particles.flow`: flow matching's interpolation and velocity, Euler paths, and the map between a DDPM
  state and a flow state.
* :mod:`~model.particles.paths`: DDIM (ODE) and DDPM (SDE) paths on the same seeds through
  :func:`model.diffusion.trajectory.sample_trajectory`, and path straightness.
* :mod:`~model.particles.mlp`: a small MLP trained live, eps-prediction or flow matching, reporting as it goes.
* :mod:`~model.particles.metrics`: MMD between particle clouds.
* :mod:`~model.particles.lab`: what the lab page shows (exact field, paths, a trained network's view), from its
  settings.
* :mod:`~model.particles.race`: diffusers' schedulers raced on network evaluations, on particles or an image model.

Pure torch and numpy (diffusers for the race); the noise schedule and alpha_bar come from :mod:`model.diffusion`.
"""
