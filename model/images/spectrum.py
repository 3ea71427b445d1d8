"""The forward process seen frequency by frequency: noise drowns the fine detail first.

A photo's power falls steeply with spatial frequency (roughly as 1/f^2), while Gaussian noise is white: the same
power at every frequency. The forward process x_t = sqrt(alpha_bar_t) x_0 + sqrt(1 - alpha_bar_t) eps (Ho et al.
2020, eq. 4; :func:`model.diffusion.forward.q_sample`) scales the photo's power by alpha_bar_t and adds a flat
noise floor of height 1 - alpha_bar_t. The floor rises with t and swallows the photo's spectrum from the top
(the finest detail) down; the reverse process fills the spectrum back in from the bottom: coarse to fine
(Dieleman 2024, "Diffusion is spectral autoregression").

Conventions used by every function here:

* Images are numpy arrays (or anything ``np.asarray`` takes, a CPU torch tensor included) shaped ``(..., H, W)``
  with ``H == W >= 4``, values in about [-1, 1] (the project's image range). Leading axes (batch, channels) are
  averaged over: ``(3, 64, 64)`` gives the spectrum of one colour photo, ``(8, 3, 64, 64)`` the average over 8.
* The Fourier transform is orthonormal (``np.fft.fft2(..., norm="ortho")``), so the power |X_k|^2 of white noise
  of variance s^2 is s^2 at every frequency k, whatever the image size, and Parseval holds: the powers sum to
  the sum of squared pixels.
* Frequencies are radii r = sqrt(k_x^2 + k_y^2) in **cycles per image**, binned to the nearest integer; the bins
  are r = 1 .. H // 2 (the corners beyond the Nyquist radius H / 2 are left out, their rings being incomplete).
  The DC term (r = 0, the image's mean) is dropped.
* Timestep indices follow :mod:`model.diffusion.schedule` (0 .. T-1, index 0 is the first noising step), and
  alpha_bar_t is always read from the schedule, never recomputed here.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from model.diffusion.schedule import Schedule, alpha_bar_at

MIN_SIDE = 4  # the smallest image with at least two frequency bins (r = 1, 2)
FLAT_POWER = 1e-12  # total power (per pixel) below this: a flat image, with no detail at any frequency


class SpectrumError(ValueError):
    """An image whose spectrum cannot be taken; the message is one sentence a person can act on."""


@lru_cache(maxsize=16)
def _rings(side: int) -> tuple[np.ndarray, np.ndarray]:
    """For a ``side`` x ``side`` FFT: each coefficient's bin (0 = left out), flattened, and the count per bin."""
    k = np.fft.fftfreq(side) * side  # integer frequencies, cycles per image
    r = np.rint(np.hypot(k[:, None], k[None, :])).astype(np.int64).ravel()
    r[r > side // 2] = 0  # outside the Nyquist circle, and DC: both go to bin 0, which is dropped
    counts = np.bincount(r, minlength=side // 2 + 1)
    return r, counts


def radii(side: int) -> np.ndarray:
    """The frequency bins of a ``side`` px image: ``1 .. side // 2`` cycles per image, int64, shape (side // 2,)."""
    return np.arange(1, side // 2 + 1)


def check_image(x) -> np.ndarray:
    """``x`` as a float64 array shaped ``(..., H, W)``, or a :class:`SpectrumError` saying what is wrong."""
    a = np.asarray(x, dtype=np.float64)
    if a.ndim < 2:
        raise SpectrumError("The spectrum needs a 2-D image; this input has fewer than two axes.")
    h, w = a.shape[-2:]
    if h != w:
        raise SpectrumError(f"The spectrum needs a square image; this one is {w}×{h} px: crop it to a square.")
    if h < MIN_SIDE:
        raise SpectrumError(
            f"The image is only {w}×{h} px: the spectrum needs at least {MIN_SIDE}×{MIN_SIDE} px to show any "
            "frequency; choose a larger resolution."
        )
    if a.size == 0 or not np.isfinite(a).all():
        raise SpectrumError("The image holds missing or infinite values (NaN or inf), so it has no spectrum.")
    return a


def radial_power_spectrum(x) -> tuple[np.ndarray, np.ndarray]:
    """The radially averaged power spectrum of an image (or the average over a batch of them).

    :param x: ``(..., H, W)`` with ``H == W >= 4``, values in about [-1, 1]; leading axes are averaged over.
    :returns: ``(radius, power)``, both shaped ``(H // 2,)``: ``radius`` = 1 .. H // 2 in cycles per image (int64),
        ``power[i]`` = the mean of |X_k|^2 over the frequencies k whose radius rounds to ``radius[i]``
        (orthonormal FFT; float64, >= 0). Unit white noise gives about 1 in every bin; DC is dropped.
    :raises SpectrumError: for a non-square, too small or non-finite image (a flat image is fine: all zeros).
    """
    a = check_image(x)
    side = a.shape[-1]
    power = np.abs(np.fft.fft2(a.reshape(-1, side, side), norm="ortho")) ** 2  # (N, H, W)
    bins, counts = _rings(side)
    sums = np.bincount(bins, weights=power.sum(axis=0).ravel(), minlength=side // 2 + 1)
    return radii(side), sums[1:] / (counts[1:] * power.shape[0])


def is_flat(power: np.ndarray) -> bool:
    """True when a spectrum holds (almost) no power at any frequency: a one-colour image."""
    return float(np.max(power, initial=0.0)) < FLAT_POWER


def noise_floor(schedule: Schedule, t) -> np.ndarray:
    """The power of the noise in x_t at every frequency: 1 - alpha_bar_t (white noise of that variance).

    :param t: an int (a 0-d array comes back) or a sequence of K timestep indices (shape (K,)).
    """
    return 1.0 - alpha_bar_at(schedule, t).numpy()


def expected_xt_spectrum(schedule: Schedule, t: int, power0: np.ndarray) -> np.ndarray:
    """E[power of x_t] at each frequency bin: alpha_bar_t * R_0 + (1 - alpha_bar_t).

    The orthonormal FFT is linear, so X_t = sqrt(alpha_bar_t) X_0 + sqrt(1 - alpha_bar_t) E with E white of unit
    power; the cross term has mean zero. :param power0: R_0, the photo's spectrum from :func:`radial_power_spectrum`
    (any shape). :returns: the same shape as ``power0``.
    """
    ab = alpha_bar_at(schedule, t).numpy()
    return ab * np.asarray(power0, dtype=np.float64) + (1.0 - ab)


def f_max(schedule: Schedule, t, radius: np.ndarray, power0: np.ndarray) -> np.ndarray:
    """The highest detectable frequency at t: the largest radius r with alpha_bar_t R_0(r) >= 1 - alpha_bar_t.

    In words: the highest frequency bin where the photo's scaled power still reaches the noise floor (equivalently
    R_0(r) >= 1 / SNR_t). Every bin above it is drowned: there the noise holds more power than the photo. A photo's
    spectrum is not exactly monotone, so a bin below f_max may dip under the floor too; f_max is the edge above
    which *nothing* of the photo stands out. Since alpha_bar_t falls as t grows, the floor rises and f_max never
    rises with t.

    :param t: an int or a sequence of K timestep indices.
    :param radius: ``(B,)`` frequency bins, increasing (from :func:`radial_power_spectrum`).
    :param power0: ``(B,)`` the photo's power R_0 at those bins.
    :returns: int64, a 0-d array for an int t or shape (K,): the radius in cycles per image; 0 when every bin is
        drowned (the floor is above the photo everywhere), ``radius[-1]`` when none is.
    """
    ab = np.atleast_1d(alpha_bar_at(schedule, t).numpy())  # (K,)
    above = ab[:, None] * np.asarray(power0, dtype=np.float64)[None, :] >= (1.0 - ab)[:, None]  # (K, B)
    r = np.asarray(radius, dtype=np.int64)
    # the last bin above the floor: argmax over the reversed bins finds it; rows with none give 0
    last = np.where(above.any(axis=1), r[::-1][np.argmax(above[:, ::-1], axis=1)], 0)
    return last.reshape(np.shape(t))


def spectral_slope(radius: np.ndarray, power: np.ndarray) -> float:
    """The exponent a of a power law P(r) ~ r^(-a) fitted by least squares on log P against log r.

    Natural photos give a near 2 (power ~ 1/f^2); white noise gives 0. Bins with zero power are left out.
    :raises SpectrumError: when fewer than two bins hold power (a flat image).
    """
    r, p = np.asarray(radius, dtype=np.float64), np.asarray(power, dtype=np.float64)
    keep = p > 0
    if keep.sum() < 2:
        raise SpectrumError("The image is flat (one colour): it has no detail at any frequency to measure.")
    slope, _ = np.polyfit(np.log(r[keep]), np.log(p[keep]), 1)
    return float(-slope)


def picture_power_spectrum(picture: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """:func:`radial_power_spectrum` of a stored uint8 panel: ``(H, W, 3)`` uint8 with [-1, 1] mapped to 0 .. 255
    (:func:`model.images.tensors.tensor_to_uint8`, a grey image as three equal channels). The rounding to 256
    levels adds white noise of power (2/255)^2 / 12, about 5e-6, to every bin."""
    a = np.asarray(picture)
    if a.ndim != 3:
        raise SpectrumError(f"A stored picture is (H, W, 3) uint8; this one has shape {a.shape}.")
    return radial_power_spectrum(np.moveaxis(a, -1, 0).astype(np.float64) / 127.5 - 1.0)


@dataclass(frozen=True, eq=False)
class SpectrumAtT:
    """What the frequency view draws at one timestep t. Arrays are float64, shaped (B,) like ``radius``.

    ``power0``: R_0, the reference spectrum (the photo x_0, or the finished sample when there is none);
    ``measured``: the spectrum of the image being looked at (x_t on the Forward page, x0_hat during a reverse
    run), or None; ``f_max``: :func:`f_max` at t, in cycles per image.
    """

    t: int
    radius: np.ndarray
    power0: np.ndarray
    alpha_bar: float
    f_max: int
    measured: np.ndarray | None = None

    @property
    def side(self) -> int:
        """The image's side in px (the last bin is the Nyquist radius, side / 2)."""
        return 2 * int(self.radius[-1])

    @property
    def floor(self) -> float:
        """The noise floor 1 - alpha_bar_t: the noise's power at every frequency."""
        return 1.0 - self.alpha_bar

    @property
    def signal(self) -> np.ndarray:
        """The photo's share of x_t's power, alpha_bar_t R_0 (B,)."""
        return self.alpha_bar * self.power0

    @property
    def expected(self) -> np.ndarray:
        """E[power of x_t] = alpha_bar_t R_0 + (1 - alpha_bar_t) (B,) (:func:`expected_xt_spectrum`)."""
        return self.signal + self.floor


def spectrum_at(
    schedule: Schedule, t: int, radius: np.ndarray, power0: np.ndarray, measured: np.ndarray | None = None
) -> SpectrumAtT:
    """Everything the frequency view needs at timestep ``t`` (an int in 0 .. T-1), from the reference spectrum
    ``(radius, power0)`` and optionally the spectrum ``measured`` of the image looked at (all (B,))."""
    return SpectrumAtT(
        t=int(t),
        radius=np.asarray(radius),
        power0=np.asarray(power0, dtype=np.float64),
        alpha_bar=float(alpha_bar_at(schedule, int(t))),
        f_max=int(f_max(schedule, int(t), radius, power0)),
        measured=None if measured is None else np.asarray(measured, dtype=np.float64),
    )
