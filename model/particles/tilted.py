"""What classifier-free guidance really samples, on a 2-D mixture of two labelled classes where every score is exact.

The data are a mixture of isotropic Gaussians, each component belonging to class 0 or class 1. Noised by the VP
process (Ho et al. eq. 4) a component N(mu, s^2 I) becomes N(sqrt(alpha_bar) mu, (alpha_bar s^2 + 1 - alpha_bar) I),
so the noised density, its score and eps_hat = -sqrt(1 - alpha_bar) * score are exact at every t, for one class
(p(x | c)) or for both (p(x)).

Classifier-free guidance at scale gamma (the project's w = gamma - 1, :func:`model.diffusion.guidance.cfg_combine`)
follows the eps of the *tilted* density p_t(x | c)^gamma p_t(x)^(1 - gamma) at every t. That density is not the
noised version of the tilted data density

    p_gamma(x) ∝ p(x | c)^gamma p(x)^(1 - gamma)                                  (the "true tilted target")

so the samples of guidance differ from p_gamma, and DDIM and DDPM differ from each other (Bradley & Nakkiran 2024,
"Classifier-free guidance is a predictor-corrector"). This module computes p_gamma on a grid (normalised
numerically), samples it, runs guidance with DDIM and DDPM, guidance only in an interval of t (Kynkäänniemi et al.
2024), and autoguidance (Karras et al. 2024: guide the class model by a weaker version of itself, here the same
mixture blurred by a wider component std), and measures each against the target and the plain conditional (MMD,
:mod:`model.particles.metrics`).

Shapes: points and particles (B, 2) float32 (float64 inside); grids (n, n) float64, row = y, column = x.
Timesteps follow the project's convention (0 .. T-1, 0 = the first noising step).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch

from model.diffusion.guidance import cfg_combine, in_interval
from model.diffusion.reverse import EpsModel
from model.diffusion.schedule import Schedule, alpha_bar_at
from model.particles.metrics import mmd
from model.particles.paths import start_noise, vp_paths

CLASS_NAMES = ("blue", "orange")


@dataclass(frozen=True)
class Mixture:
    """Isotropic Gaussian components: ``means`` (K, 2), ``stds`` (K,), ``weights`` (K,) summing to 1 over all
    components, ``labels`` (K,) the class (0 or 1) of each component."""

    means: torch.Tensor
    stds: torch.Tensor
    weights: torch.Tensor
    labels: torch.Tensor

    def of_class(self, c: int | None) -> Mixture:
        """p(x | c): class ``c``'s components, weights renormalised; ``None``: the whole mixture p(x)."""
        if c is None:
            return self
        keep = self.labels == int(c)
        if not bool(keep.any()):
            raise ValueError(f"class {c} has no components; choose 0 or 1")
        w = self.weights[keep]
        return Mixture(self.means[keep], self.stds[keep], w / w.sum(), self.labels[keep])

    def blurred(self, extra_std: float) -> Mixture:
        """A weaker model of the same data: every component widened to sqrt(s^2 + extra_std^2) (autoguidance)."""
        return replace(self, stds=(self.stds**2 + float(extra_std) ** 2).sqrt())


def two_classes(std: float = 0.15) -> Mixture:
    """The lab's mixture: class 0 (blue) at upper left and lower centre-left, class 1 (orange) at upper right and
    lower centre-right; the two lower blobs overlap, which is where guidance pushes the classes apart.
    Equal stds keep p(x | c)^gamma p(x)^(1 - gamma) integrable for every gamma >= 0."""
    means = torch.tensor([[-0.55, 0.35], [-0.12, -0.35], [0.55, 0.35], [0.12, -0.35]], dtype=torch.float64)
    return Mixture(
        means=means,
        stds=torch.full((4,), float(std), dtype=torch.float64),
        weights=torch.full((4,), 0.25, dtype=torch.float64),
        labels=torch.tensor([0, 0, 1, 1]),
    )


def _noised(m: Mixture, alpha_bar) -> tuple[torch.Tensor, torch.Tensor]:
    """Component means (B?, K, 2) and variances (B?, K) of the mixture noised to ``alpha_bar`` (float or (B, 1))."""
    ab = torch.as_tensor(alpha_bar, dtype=torch.float64).reshape(-1, 1)  # (B or 1, 1)
    means = ab.sqrt()[:, :, None] * m.means[None]  # (B, K, 2)
    var = ab * m.stds[None] ** 2 + (1 - ab)  # (B, K)
    return means, var


def _log_terms(m: Mixture, x: torch.Tensor, alpha_bar) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """log(w_k N(x; mean_k, var_k I)) (B, K), and the noised means and variances."""
    xx = x.to(torch.float64)
    means, var = _noised(m, alpha_bar)
    d2 = (xx[:, None, :] - means).pow(2).sum(-1)  # (B, K)
    logn = -d2 / (2 * var) - torch.log(2 * torch.pi * var)  # 2-D Gaussian
    return m.weights.log()[None] + logn, means, var


def log_density(m: Mixture, x: torch.Tensor, alpha_bar=1.0) -> torch.Tensor:
    """log p_t(x) of the mixture noised to ``alpha_bar`` (1: the clean data) at x (B, 2): (B,) float64."""
    terms, _, _ = _log_terms(m, x, alpha_bar)
    return torch.logsumexp(terms, dim=1)


def score(m: Mixture, x: torch.Tensor, alpha_bar) -> torch.Tensor:
    """grad_x log p_t(x) = sum_k r_k(x) (mean_k - x) / var_k, r_k the component posterior: (B, 2) float64."""
    terms, means, var = _log_terms(m, x, alpha_bar)
    r = torch.softmax(terms, dim=1)  # (B, K)
    return (r[:, :, None] * (means - x.to(torch.float64)[:, None, :]) / var[:, :, None]).sum(1)


def eps_hat(schedule: Schedule, m: Mixture, x_t: torch.Tensor, t) -> torch.Tensor:
    """The exact eps_hat = -sqrt(1 - alpha_bar_t) * score (Tweedie) at timestep t (int or (B,) tensor): (B, 2)."""
    ab = alpha_bar_at(schedule, t).reshape(-1, 1)
    return (-(1 - ab).sqrt() * score(m, x_t, ab)).to(x_t.dtype)


def exact_eps_model(schedule: Schedule, m: Mixture) -> EpsModel:
    """An ``eps_model(x_t, t)`` for :func:`model.diffusion.trajectory.sample_trajectory`: the exact eps_hat of ``m``."""
    return lambda x_t, t: eps_hat(schedule, m, x_t, t)


def guided_eps_model(
    schedule: Schedule,
    m: Mixture,
    c: int,
    gamma: float,
    interval: tuple[int, int] | None = None,
    guide: Mixture | None = None,
) -> EpsModel:
    """Guidance with exact scores: eps~ = eps(x | c) + (gamma - 1) (eps(x | c) - eps_guide(x)) (Ho & Salimans eq. 6
    with w = gamma - 1), which is the eps of p_t(x | c)^gamma p_guide,t(x)^(1 - gamma).

    ``guide``: the model guided away from; ``None`` is classifier-free guidance (the unconditional p(x)), a weaker
    model of class c (e.g. ``m.of_class(c).blurred(0.2)``) is autoguidance. ``interval``: guidance only for
    lo <= t <= hi (:func:`model.diffusion.guidance.in_interval`), the plain conditional elsewhere.
    """
    if gamma < 0:
        raise ValueError(f"gamma must be >= 0, got {gamma}")
    cond = m.of_class(c)
    away = m if guide is None else guide

    def model(x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        e_c = eps_hat(schedule, cond, x_t, t)
        if gamma == 1 or not in_interval(t, interval):
            return e_c
        return cfg_combine(e_c, eps_hat(schedule, away, x_t, t), gamma - 1)

    return model


# --- the true tilted target on a grid ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Grid:
    """A density on an n x n grid over [-extent, extent]^2: ``axis`` (n,), ``density`` (n, n) (row = y), which sums
    to 1 / cell area (so ``density.sum() * cell`` is 1)."""

    axis: torch.Tensor
    density: torch.Tensor

    @property
    def cell(self) -> float:
        """The area of one grid cell."""
        step = float(self.axis[1] - self.axis[0])
        return step * step

    def points(self) -> torch.Tensor:
        """The cell centres as (n * n, 2), in the order of ``density.reshape(-1)``."""
        gx, gy = torch.meshgrid(self.axis, self.axis, indexing="xy")
        return torch.stack([gx.reshape(-1), gy.reshape(-1)], dim=1)


def tilted_grid(
    m: Mixture, c: int, gamma: float, n: int = 161, extent: float = 1.5, guide: Mixture | None = None
) -> Grid:
    """p_gamma(x) ∝ p(x | c)^gamma p_guide(x)^(1 - gamma) on a grid (``guide`` None: p(x)), normalised numerically
    (summed over the cells; the mixture lies well inside [-extent, extent]^2). gamma = 1 is the plain conditional."""
    if gamma < 0:
        raise ValueError(f"gamma must be >= 0, got {gamma}")
    axis = torch.linspace(-extent, extent, n, dtype=torch.float64)
    grid = Grid(axis, torch.zeros(n, n, dtype=torch.float64))
    pts = grid.points()
    logp = gamma * log_density(m.of_class(c), pts)
    if gamma != 1:
        logp = logp + (1 - gamma) * log_density(m if guide is None else guide, pts)
    p = torch.exp(logp - logp.max())
    return Grid(axis, (p / (p.sum() * grid.cell)).reshape(n, n))


def sample_grid(grid: Grid, n: int, seed: int) -> torch.Tensor:
    """``n`` samples of the grid density: a cell drawn by its mass, then a uniform point in it. (n, 2) float32."""
    g = torch.Generator().manual_seed(int(seed))
    idx = torch.multinomial(grid.density.reshape(-1), n, replacement=True, generator=g)
    step = float(grid.axis[1] - grid.axis[0])
    jitter = (torch.rand(n, 2, generator=g, dtype=torch.float64) - 0.5) * step
    return (grid.points()[idx] + jitter).float()


def sample_mixture(m: Mixture, n: int, seed: int) -> torch.Tensor:
    """``n`` exact samples of the (clean) mixture: a component by its weight, then its Gaussian. (n, 2) float32."""
    g = torch.Generator().manual_seed(int(seed))
    k = torch.multinomial(m.weights, n, replacement=True, generator=g)
    return (m.means[k] + m.stds[k, None] * torch.randn(n, 2, generator=g, dtype=torch.float64)).float()


# --- the comparison the page draws --------------------------------------------------------------------------------


@dataclass(frozen=True)
class GuidanceSettings:
    """One comparison; frozen, so a cache key."""

    c: int = 0  # the class guided towards
    gamma: float = 3.0  # guidance strength (1: the plain conditional; the project's w = gamma - 1)
    n: int = 600  # particles per method
    steps: int = 100  # sampler steps from t = T-1 to 0
    seed: int = 0
    interval: tuple[int, int] = (0, 300)  # "interval": guidance only for these t (the Fashion generator's own)
    weak_std: float = 0.1  # autoguidance: the weak model's extra component std


METHODS = ("target", "conditional", "CFG (DDIM)", "CFG (DDPM)", "interval (DDIM)", "autoguidance (DDIM)")


@dataclass(frozen=True)
class GuidanceResult:
    """``grid``: the true tilted target's density; ``samples[method]`` (n, 2); ``to_target[method]`` and
    ``to_class[method]``: MMD^2 of the method's samples to target samples and to exact class samples."""

    settings: GuidanceSettings
    grid: Grid
    samples: dict[str, torch.Tensor]
    to_target: dict[str, float]
    to_class: dict[str, float]


def compare(schedule: Schedule, m: Mixture, s: GuidanceSettings) -> GuidanceResult:
    """Sample every method of :data:`METHODS` from the same start noise and measure each (MMD^2, lower is closer).

    "target" are samples of the tilted grid density and "conditional" exact samples of p(x | c) (their own seeds,
    so their MMD to each other is the floor); the others run the project's sampler on exact scores.
    """
    grid = tilted_grid(m, s.c, s.gamma)
    x_T = start_noise(s.n, s.seed)
    weak = m.of_class(s.c).blurred(s.weak_std)
    models = {
        "CFG (DDIM)": ("ddim", guided_eps_model(schedule, m, s.c, s.gamma)),
        "CFG (DDPM)": ("ddpm", guided_eps_model(schedule, m, s.c, s.gamma)),
        "interval (DDIM)": ("ddim", guided_eps_model(schedule, m, s.c, s.gamma, interval=s.interval)),
        "autoguidance (DDIM)": ("ddim", guided_eps_model(schedule, m, s.c, s.gamma, guide=weak)),
    }
    samples = {
        "target": sample_grid(grid, s.n, s.seed + 1),
        "conditional": sample_mixture(m.of_class(s.c), s.n, s.seed + 2),
    }
    for name, (sampler, model) in models.items():
        samples[name] = vp_paths(model, schedule, x_T, s.steps, sampler, seed=s.seed)[-1]
    ref_target = sample_grid(grid, s.n, s.seed + 3)
    ref_class = sample_mixture(m.of_class(s.c), s.n, s.seed + 4)
    to_target = {k: mmd(v, ref_target) for k, v in samples.items()}
    to_class = {k: mmd(v, ref_class) for k, v in samples.items()}
    return GuidanceResult(s, grid, samples, to_target, to_class)
