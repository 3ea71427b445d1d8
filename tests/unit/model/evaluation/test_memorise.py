"""Does it just copy? model/evaluation/memorise.py (the exact denoiser of Fashion images) and model/particles/memorise.py."""

from __future__ import annotations

import pytest
import torch

from model.diffusion.schedule import make_schedule
from model.evaluation import memorise
from model.particles import memorise as points

SCHEDULE = make_schedule("linear")


def _images(n: int, seed: int = 0) -> torch.Tensor:
    return torch.rand(n, 1, 32, 32, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def test_one_training_image_the_exact_denoiser_returns_it():
    img = _images(1)
    data = memorise.TrainingSet.of(img)
    x_T = torch.randn(3, 1, 32, 32, generator=torch.Generator().manual_seed(1))
    run = memorise.copy_test(SCHEDULE, data, {"exact": memorise.empirical_eps_model(SCHEDULE, data)}, x_T, 10)
    assert torch.allclose(run.final["exact"], img.expand(3, -1, -1, -1), atol=1e-5)
    assert all(torch.allclose(x, img.expand(3, -1, -1, -1), atol=1e-5) for x in run.x0_hat["exact"])
    assert run.nearest_distance["exact"].max() < 1e-3


def test_chunked_softmax_is_the_plain_softmax():
    data = memorise.TrainingSet.of(_images(50))
    x = _images(4, seed=2) * 0.5
    ab = 0.3
    d2 = torch.cdist(x.reshape(4, -1).double(), ab**0.5 * data.flat).pow(2)
    w = torch.softmax(-d2 / (2 * (1 - ab)), dim=1)
    want = (w @ data.flat).reshape(x.shape).float()
    assert torch.allclose(memorise.empirical_x0_hat(data, x, ab, chunk=7), want, atol=1e-5)


def test_many_images_from_noise_every_sample_is_a_training_image():
    data = memorise.TrainingSet.of(_images(40))
    x_T = torch.randn(6, 1, 32, 32, generator=torch.Generator().manual_seed(3))
    run = memorise.copy_test(SCHEDULE, data, {"exact": memorise.empirical_eps_model(SCHEDULE, data)}, x_T, 20)
    assert memorise.near_copy_share(data, run.final["exact"], 0.01) == 1.0
    idx, dist = memorise.nearest(data, data.x[[5, 17]])
    assert idx.tolist() == [5, 17] and float(dist.max()) < 1e-6


def test_the_bundled_subset_loads_and_test_images_are_not_near_copies():
    data = memorise.load_subset()
    assert len(data) == memorise.N_TRAIN and len(data.test) == memorise.N_TEST
    assert data.x.shape[1:] == (1, 32, 32) and float(data.x.min()) >= -1 and float(data.x.max()) <= 1
    threshold = memorise.near_copy_threshold(data)
    assert memorise.near_copy_share(data, data.test[:200], threshold) == 0.0
    with pytest.raises(FileNotFoundError, match="model.cli.fashion_subset"):
        memorise.load_subset(memorise.SUBSET_FILE.with_name("missing.npz"))


def test_points_the_exact_denoiser_copies_and_the_share_is_measured():
    s = points.CopySettings(n=8, particles=100, steps=100)
    p, out = points.measure(SCHEDULE, s, train=False)
    assert p.exact >= 0.95 and p.network is None
    assert points.near_copy_share(out["points"], out["points"]) == 1.0
    assert p.chance < 0.2
    with pytest.raises(ValueError, match="training points"):
        points.training_points(points.CopySettings(n=0))
