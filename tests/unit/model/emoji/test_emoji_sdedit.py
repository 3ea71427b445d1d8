"""SDEdit on the words-to-pictures model (issue 37 item 4): a photo's latent, noised to strength · (T - 1) with the
closed form and denoised with the words; and generate() unchanged by the refactor that lets a run start there.
Networks are the randomly initialised stand-in of :func:`fakes.tiny_emoji_folder` (no training)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from fakes import tiny_emoji_folder
from PIL import Image

from model.cli import generate_emoji
from model.diffusion.forward import q_sample
from model.diffusion.trajectory import make_timesteps
from model.emoji import sdedit
from model.emoji.pipeline import load_pipeline
from model.emoji.sample import Settings, generate, install_recorders, reverse_from

torch.set_num_threads(1)  # the machine is shared; one thread is much faster under contention


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return tiny_emoji_folder(tmp_path_factory.mktemp("emoji-sd"))


@pytest.fixture(scope="module")
def pipe(folder):
    p = load_pipeline(folder)
    install_recorders(p.unet)
    return p


def photo_image(side: int = 48) -> Image.Image:
    """A picture with structure: a red disc on a blue-to-yellow gradient, not square-on (48×40) to test the crop."""
    yy, xx = np.mgrid[0:40, 0:side]
    arr = np.stack([xx * 255 // side, xx * 255 // side, 255 - xx * 255 // side], -1).astype(np.uint8)
    arr[(yy - 20) ** 2 + (xx - side // 2) ** 2 < 100] = (220, 30, 30)
    return Image.fromarray(arr)


@pytest.fixture(scope="module")
def photo():
    return sdedit.photo_pixels(photo_image())


def test_the_photo_becomes_32_pixels_and_an_8_by_8_latent(pipe, photo):
    assert photo.shape == (1, 3, 32, 32) and photo.dtype == torch.float32
    assert photo.min() >= -1 and photo.max() <= 1
    torch.testing.assert_close(sdedit.photo_pixels(photo), photo, atol=2 / 255, rtol=0)  # a tensor goes in too
    z0 = sdedit.photo_to_latent(pipe, photo)
    assert z0.shape == (1, 4, 8, 8)
    unscaled = pipe.vae.encode(photo).latent_dist.mode()
    torch.testing.assert_close(z0, unscaled * pipe.scaling_factor)
    assert sdedit.reconstruct(pipe, photo).shape == (1, 3, 32, 32)
    with pytest.raises(ValueError, match="32, 32"):
        sdedit.photo_to_latent(pipe, torch.zeros(1, 3, 64, 64))


def test_an_edit_starts_from_the_photo_noised_with_the_closed_form(pipe, photo):
    s = Settings("smiling cat", steps=4, seed=5, batch=2)
    run = sdedit.edit(pipe, s, photo, 0.6)
    assert run.timesteps == make_timesteps(599, 4) and run.timesteps[0] == 599  # round(0.6 · 999) = 599
    assert run.x_t.shape == (4, 2, 4, 8, 8) and run.final.shape == (2, 3, 32, 32)
    assert run.attention.shape == (4, 2, 3, 8, 8) and run.final.abs().max() <= 1
    z0 = sdedit.photo_to_latent(pipe, photo).expand(2, -1, -1, -1)
    x_start, _ = q_sample(pipe.schedule, z0, 599, generator=torch.Generator().manual_seed(5))
    torch.testing.assert_close(run.x_t[0], x_start)
    assert not torch.equal(run.x_t[0, 0], run.x_t[0, 1])  # each picture its own noise
    torch.testing.assert_close(sdedit.edit(pipe, s, photo, 0.6).final, run.final)  # seeded: the same pictures


def test_strength_one_starts_at_the_last_timestep(pipe, photo):
    run = sdedit.edit(pipe, Settings("red heart", steps=3), photo, 1.0)
    assert run.timesteps == [999, 500, 0]
    assert sdedit.start_step(pipe, 1.0) == pipe.schedule.T - 1
    assert sdedit.edit(pipe, Settings("red heart", steps=50), photo, 0.002).timesteps == [2, 1, 0]


@pytest.mark.parametrize("strength", [0, -0.5, 1.01, float("nan")])
def test_a_strength_outside_zero_to_one_gets_a_sentence(pipe, photo, strength):
    with pytest.raises(ValueError, match=r"strength must lie in \(0, 1\]"):
        sdedit.edit(pipe, Settings("cat", steps=2), photo, strength)


def test_less_strength_keeps_the_result_closer_to_the_photos_reconstruction(pipe, photo):
    """On the untrained stand-in its U-Net's eps_hat is noise-like, so whatever the steps undo is random: the less
    noise the edit starts from (the smaller the strength), the closer it ends to the autoencoder's reconstruction."""
    kept = sdedit.reconstruct(pipe, photo)
    s = Settings("smiling face", steps=5, seed=0, batch=4)

    def distance(strength: float) -> float:
        final = sdedit.edit(pipe, s, photo, strength, record_attention=False, decode_steps=False).final
        return float((final - kept).pow(2).mean())

    # measured: 0.118, 0.153, ~0.2, 0.232 (the random decoder magnifies even t = 2's little noise); a strength that was
    # ignored would give one distance, and one read backwards the reverse order
    assert distance(0.002) < distance(0.02) < distance(0.3) < distance(1.0)


def test_generate_is_unchanged_by_the_refactor(pipe):
    """generate() = reverse_from() from seeded noise at T - 1, and the same numbers as before the refactor (sums of
    the run's tensors printed by the pre-refactor generate() on this stand-in, float32 CPU)."""
    s = Settings("smiling cat", steps=4, seed=3, batch=2)
    run = generate(pipe, s)
    g = torch.Generator().manual_seed(3)
    x_T = torch.randn((2, 4, 8, 8), generator=g)
    again = reverse_from(pipe, s, x_T, pipe.schedule.T - 1, g)
    torch.testing.assert_close(again.final, run.final)
    torch.testing.assert_close(again.x_t, run.x_t)
    assert run.timesteps == [999, 666, 333, 0]


# The refactor that made reverse_from was checked once against the generate() before it, on this stand-in, for
# Settings("smiling cat", steps=4, seed=3, batch=2) and Settings("red heart", "cat", w=2.0, steps=3, seed=1, eta=0.5):
# every recorded tensor bit-identical (torch.equal), the tokens and timesteps the same.


def test_the_command_line_edits_a_photo(folder, tmp_path, capsys):
    path = tmp_path / "photo.png"
    photo_image().save(path)
    out = tmp_path / "out"
    args = ["--prompt", "red heart", "--steps", "2", "--batch", "2", "--model", str(folder), "--out", str(out)]
    assert generate_emoji.main([*args, "--init-image", str(path), "--strength", "0.5"]) == 0
    assert {p.name for p in out.iterdir()} == {"samples.png", "steps.png", "tokens.txt"}
    assert (out / "tokens.txt").read_text().split() == ["[START]", "red", "heart"]
    assert "from photo.png at strength 0.5" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda p: p / "missing.png", "missing.png: cannot read the file"),
        (lambda p: (p / "junk.png").write_bytes(b"not a picture at all") and p / "junk.png", ""),
    ],
)
def test_a_missing_or_undecodable_photo_gets_one_sentence_and_exit_code_2(folder, tmp_path, capsys, make, match):
    args = ["--prompt", "cat", "--model", str(folder), "--out", str(tmp_path / "out"), "--init-image"]
    assert generate_emoji.main([*args, str(make(tmp_path))]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and match in err and "\n" not in err and "Traceback" not in err
    assert not (tmp_path / "out").exists()


def test_a_bad_strength_on_the_command_line_gets_exit_code_2(folder, tmp_path, capsys):
    path = tmp_path / "photo.png"
    photo_image().save(path)
    args = ["--prompt", "cat", "--model", str(folder), "--out", str(tmp_path), "--init-image", str(path)]
    assert generate_emoji.main([*args, "--strength", "0"]) == 2
    assert "strength must lie in (0, 1]" in capsys.readouterr().err
