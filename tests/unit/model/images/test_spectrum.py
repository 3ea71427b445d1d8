"""Math layer: the radially averaged power spectrum, the noise floor and f_max (model/images/spectrum.py)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from model.diffusion.forward import q_sample
from model.diffusion.schedule import make_schedule
from model.images import spectrum
from model.images.tensors import load_image


def _photo(res: int = 64) -> torch.Tensor:
    """The bundled sample photo (1, 3, res, res) in [-1, 1]."""
    from pathlib import Path

    root = Path(__file__).resolve().parents[4]
    return load_image((root / "assets" / "astronaut.jpg").read_bytes(), res)


def _power_law_image(side: int, exponent: float, seed: int = 0, batch: int = 1) -> np.ndarray:
    """White noise filtered so that its power falls as 1/r^exponent: (batch, side, side)."""
    rng = np.random.default_rng(seed)
    k = np.fft.fftfreq(side) * side
    r = np.hypot(k[:, None], k[None, :])
    gain = np.zeros_like(r)
    gain[r > 0] = r[r > 0] ** (-exponent / 2)  # amplitude ~ r^(-a/2), power ~ r^(-a)
    white = rng.standard_normal((batch, side, side))
    return np.real(np.fft.ifft2(np.fft.fft2(white) * gain))


def test_white_noise_has_unit_power_in_every_bin_within_5_percent():
    # 1024 x 3 images: the r = 1 ring holds only 4 independent coefficients per image, so it needs the average
    x = np.random.default_rng(0).standard_normal((1024, 3, 32, 32))
    radius, power = spectrum.radial_power_spectrum(x)
    assert radius.tolist() == list(range(1, 17))
    assert np.all(np.abs(power - 1.0) < 0.05), power


def test_white_noise_of_variance_s2_has_power_s2_at_any_size():
    """The orthonormal FFT: the level does not depend on the image size (a plain FFT would scale it by H * W)."""
    for side in (16, 64):
        x = 0.5 * np.random.default_rng(side).standard_normal((64, side, side))
        _, power = spectrum.radial_power_spectrum(x)
        assert abs(power.mean() - 0.25) < 0.01


def test_dc_is_dropped_and_parseval_holds_for_the_rest():
    x = np.random.default_rng(1).standard_normal((8, 8)) + 5.0  # a large mean lives only in the DC term
    _, power = spectrum.radial_power_spectrum(x)
    _, power_centred = spectrum.radial_power_spectrum(x - x.mean())
    np.testing.assert_allclose(power, power_centred, rtol=1e-12)
    bins, counts = spectrum._rings(8)
    inside = (power * counts[1:]).sum()
    outside = np.sum(np.abs(np.fft.fft2(x, norm="ortho")).ravel()[bins == 0] ** 2) - np.abs(x.sum() / 8) ** 2
    assert inside + outside == pytest.approx(((x - x.mean()) ** 2).sum())


@pytest.mark.parametrize("schedule_name", ["linear", "cosine"])
@pytest.mark.parametrize("t", [50, 200, 400, 700])
def test_xt_spectrum_is_within_20_percent_of_the_expectation_above_radius_8(schedule_name, t):
    schedule = make_schedule(schedule_name)
    x0 = _photo(64)  # (1, 3, 64, 64)
    radius, power0 = spectrum.radial_power_spectrum(x0)
    g = torch.Generator().manual_seed(t)
    x_t, _ = q_sample(schedule, x0.expand(8, -1, -1, -1), t, generator=g)  # 8 noise draws of the same photo
    _, power_t = spectrum.radial_power_spectrum(x_t)
    expected = spectrum.expected_xt_spectrum(schedule, t, power0)
    far = radius >= 8
    assert np.all(np.abs(power_t[far] / expected[far] - 1.0) < 0.2), (power_t[far] / expected[far]).round(3)


def test_expected_xt_spectrum_reads_alpha_bar_from_the_schedule():
    schedule = make_schedule("linear")
    ab = float(schedule.alpha_bar[300])
    got = spectrum.expected_xt_spectrum(schedule, 300, np.array([2.0, 0.0]))
    np.testing.assert_allclose(got, [ab * 2.0 + 1.0 - ab, 1.0 - ab])
    assert float(spectrum.noise_floor(schedule, 300)) == pytest.approx(1.0 - ab)
    np.testing.assert_allclose(spectrum.noise_floor(schedule, [0, 999]), 1.0 - schedule.alpha_bar[[0, 999]].numpy())
    with pytest.raises(ValueError, match="0..999"):
        spectrum.noise_floor(schedule, 1000)


@pytest.mark.parametrize("schedule_name", ["linear", "cosine"])
def test_f_max_never_rises_with_t_and_spans_the_whole_range(schedule_name):
    schedule = make_schedule(schedule_name)
    radius, power0 = spectrum.radial_power_spectrum(_photo(64))
    ts = np.arange(schedule.T)
    fm = spectrum.f_max(schedule, ts, radius, power0)
    assert fm.shape == (schedule.T,)
    assert np.all(np.diff(fm) <= 0)
    assert fm[0] == 32 and fm[-1] == 0  # nothing drowned at the first step, everything at the last
    assert len(np.unique(fm)) > 10  # it walks down through many frequencies, not in one jump
    assert int(spectrum.f_max(schedule, 400, radius, power0)) == fm[400]


def test_f_max_is_the_last_bin_where_the_signal_reaches_the_floor():
    schedule = make_schedule("linear")
    t = 500
    ab = float(schedule.alpha_bar[t])
    floor = 1.0 - ab
    radius = np.arange(1, 7)
    # above, above, below, above (an isolated bump), below, below
    power0 = np.array([10.0, 5.0, 0.5, 2.0, 0.1, 0.1]) * floor / ab
    assert int(spectrum.f_max(schedule, t, radius, power0)) == 4
    assert int(spectrum.f_max(schedule, t, radius, np.zeros(6))) == 0  # a flat photo: everything drowned
    assert int(spectrum.f_max(schedule, t, radius, np.full(6, 1e9))) == 6


def test_a_synthetic_one_over_f_squared_image_has_slope_2():
    radius, power = spectrum.radial_power_spectrum(_power_law_image(64, 2.0))
    assert spectrum.spectral_slope(radius, power) == pytest.approx(2.0, abs=0.2)
    radius, power = spectrum.radial_power_spectrum(np.random.default_rng(0).standard_normal((64, 64)))
    assert spectrum.spectral_slope(radius, power) == pytest.approx(0.0, abs=0.2)  # white noise: flat


def test_torch_tensors_are_accepted():
    x = torch.randn(1, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    r1, p1 = spectrum.radial_power_spectrum(x)
    r2, p2 = spectrum.radial_power_spectrum(x.numpy())
    np.testing.assert_array_equal(r1, r2)
    np.testing.assert_allclose(p1, p2)


@pytest.mark.parametrize(
    ("x", "words"),
    [
        (np.zeros((3, 64, 1)), "square"),
        (np.zeros((3, 1, 1)), "only 1×1 px"),
        (np.zeros(16), "2-D"),
        (np.full((8, 8), np.nan), "NaN"),
    ],
)
def test_bad_input_raises_one_sentence(x, words):
    with pytest.raises(spectrum.SpectrumError, match=words) as info:
        spectrum.radial_power_spectrum(x)
    message = str(info.value)
    assert message.endswith(".") and message.count(". ") == 0 and "\n" not in message


def test_a_flat_image_has_zero_power_and_no_slope():
    radius, power = spectrum.radial_power_spectrum(np.full((3, 32, 32), 0.3))
    assert spectrum.is_flat(power) and not spectrum.is_flat(power + 1e-3)
    with pytest.raises(spectrum.SpectrumError, match="flat"):
        spectrum.spectral_slope(radius, power)
