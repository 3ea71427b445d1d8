"""Fast checks of the training pipeline (model/training/train.py), the crop sampler (model/training/data.py)
and the evaluation metrics (model/evaluation/evaluate.py). A tiny UNet, a few steps, a few images."""

from __future__ import annotations

import json
import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image

from model.diffusion.schedule import gather, make_schedule
from model.evaluation.evaluate import blur_oracle, gaussian_blur, make_noisy, predict_eps, psnr
from model.training.crops import CropSampler, center_square, load_images, random_crop


def _write_images(folder, n=3, seed=0):
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        h, w = 48 + 16 * i, 80 - 8 * i
        yy, xx = np.mgrid[0:h, 0:w]
        base = np.stack([xx / w, yy / h, (xx + yy) / (w + h)], -1) * 255
        img = np.clip(base + rng.normal(0, 20, base.shape), 0, 255).astype(np.uint8)
        Image.fromarray(img).save(folder / f"img{i}.png")
    return folder


# --------------------------------------------------------------------------- training
def test_train_writes_checkpoint_and_resumes(tmp_path):
    from diffusers import UNet2DModel

    from model.training.train import train

    data = _write_images(tmp_path / "imgs")
    out = tmp_path / "ckpt"
    common = [
        "--data",
        str(data),
        "--out",
        str(out),
        "--arch",
        "tiny",
        "--batch",
        "2",
        "--res",
        "32",
        "--no-progress",
        "--threads",
        "1",
        "--prediction",
        "v_prediction",
        "--loss-weight",
        "v",
    ]
    r1 = train(common + ["--steps", "2"])
    assert r1["step"] == 2
    for f in ("config.json", "diffusion_pytorch_model.safetensors", "scheduler_config.json"):
        assert (out / f).is_file(), f
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["_class_name"] == "UNet2DModel" and cfg["in_channels"] == 3 and cfg["out_channels"] == 3
    sc = json.loads((out / "scheduler_config.json").read_text())
    assert sc["prediction_type"] == "v_prediction" and sc["num_train_timesteps"] == 1000
    assert sc["beta_schedule"] == "linear"
    assert (out / "train_state" / "loss.csv").is_file()

    unet = UNet2DModel.from_pretrained(str(out), torch_dtype=torch.float32)
    with torch.inference_mode():
        y = unet(torch.zeros(1, 3, 48, 48), torch.tensor([10])).sample
    assert y.shape == (1, 3, 48, 48)  # fully convolutional: runs at a size it was not trained at

    before = (out / "diffusion_pytorch_model.safetensors").read_bytes()
    r2 = train(common + ["--steps", "3"])  # same command with a bigger step budget: resumes at step 2
    assert r2["step"] == 3
    assert json.loads((out / "train_state" / "last_save.json").read_text())["step"] == 3
    assert (out / "diffusion_pytorch_model.safetensors").read_bytes() != before


def test_init_from_warm_starts_from_a_saved_folder(tmp_path):
    """A later session without train_state/ continues from the committed weights, not from scratch."""
    from diffusers import UNet2DModel

    from model.training.train import train

    data = _write_images(tmp_path / "imgs")
    common = ["--data", str(data), "--arch", "tiny", "--batch", "2", "--res", "32", "--no-progress", "--threads", "1"]
    first = tmp_path / "first"
    # lr 0: the saved weights are the init; a different seed from the runs below, so that ignoring
    # --init-from (a fresh seed-0 init) could not produce the same weights by accident
    train(common + ["--out", str(first), "--steps", "2", "--lr", "0", "--seed", "3"])
    second = tmp_path / "second"
    r = train(common + ["--out", str(second), "--steps", "1", "--lr", "0", "--init-from", str(first)])
    assert r["step"] == 1  # a fresh run (step count starts afresh)
    a = UNet2DModel.from_pretrained(str(first), torch_dtype=torch.float32).state_dict()
    b = UNet2DModel.from_pretrained(str(second), torch_dtype=torch.float32).state_dict()
    assert a.keys() == b.keys()
    assert all(torch.allclose(a[k], b[k], atol=1e-3) for k in a)  # fp16 storage; lr 0 keeps the weights
    fresh = tmp_path / "fresh"
    train(common + ["--out", str(fresh), "--steps", "1", "--lr", "0"])
    c = UNet2DModel.from_pretrained(str(fresh), torch_dtype=torch.float32).state_dict()
    assert not all(torch.allclose(a[k], c[k], atol=1e-3) for k in a)  # without --init-from: a new init


def test_loss_weights():
    from model.training.train_lib import loss_weight

    snr = torch.tensor([100.0, 1.0, 0.01])
    assert torch.allclose(loss_weight("eps", snr), torch.ones(3))
    assert torch.allclose(loss_weight("v", snr), torch.tensor([1.01, 2.0, 101.0]))
    assert torch.allclose(loss_weight("trunc:5", snr), torch.tensor([1.01, 2.0, 6.0]))
    with pytest.raises(ValueError):
        loss_weight("bogus", snr)


@pytest.mark.parametrize("arch", ["photo", "photo-wide"])
def test_photo_presets_fit_the_parameter_budget(arch):
    from model.training.train_lib import build_unet

    m = build_unet(arch, 64)
    n = sum(p.numel() for p in m.parameters())
    assert 5e6 < n <= 8_000_000  # issue 3: at most 8M parameters
    x = torch.zeros(1, 3, 48, 80)  # any multiple of 16
    with torch.no_grad():
        assert m(x, torch.tensor([10])).sample.shape == x.shape


def test_t_focus_shifts_mass_to_low_t():
    import argparse

    from model.training.train_lib import parse_t_focus, sample_t

    g = torch.Generator().manual_seed(0)
    uni = sample_t(40_000, 1000, None, generator=g)
    foc = sample_t(40_000, 1000, parse_t_focus("0.5:250"), generator=g)
    for t in (uni, foc):
        assert t.dtype == torch.int64 and int(t.min()) >= 0 and int(t.max()) <= 999
    # uniform: 25 % below 250; mixture: 0.5 + 0.5 * 0.25 = 62.5 %
    assert abs(float((uni < 250).float().mean()) - 0.25) < 0.01
    assert abs(float((foc < 250).float().mean()) - 0.625) < 0.01
    assert int(foc.max()) > 900  # the high steps are still trained
    for bad in ("1.5:250", "0.5", "half:250", "0.5:0"):
        with pytest.raises(argparse.ArgumentTypeError):
            parse_t_focus(bad)
    with pytest.raises(ValueError):
        sample_t(4, 1000, parse_t_focus("0.5:2000"))


# --------------------------------------------------------------------------- data
def test_crop_sampler_shape_and_range(tmp_path):
    ims = load_images(_write_images(tmp_path / "imgs", n=3))
    ims.append(torch.randint(0, 256, (3, 20, 30), dtype=torch.uint8))  # smaller than the crop: upsampled
    s = CropSampler(ims, res=32, seed=1)
    b = s.batch(16)
    assert b.shape == (16, 3, 32, 32) and b.dtype == torch.float32
    assert b.min() >= -1 and b.max() <= 1
    assert b.std() > 0.05  # not a constant image
    # seeded: the same seed gives the same batch, another seed another batch
    assert torch.equal(CropSampler(ims, 32, seed=1).batch(4), CropSampler(ims, 32, seed=1).batch(4))
    assert not torch.equal(CropSampler(ims, 32, seed=1).batch(4), CropSampler(ims, 32, seed=2).batch(4))


def test_random_crop_whole_picture_and_flip():
    img = torch.zeros(3, 40, 64, dtype=torch.uint8)
    img[:, :, 32:] = 255  # right half white
    g = torch.Generator().manual_seed(0)
    crops = [random_crop(img, 16, g, p_whole=1.0) for _ in range(20)]
    # whole short side (40 px) crops: both colours visible; flips put white on either side
    lefts = {bool(c[:, :, :4].mean() > 0) for c in crops}
    assert all(c.min() == -1 and c.max() == 1 for c in crops)
    assert lefts == {True, False}
    sq = center_square(img, 32)
    assert sq.shape == (3, 32, 32) and sq.min() >= -1 and sq.max() <= 1


def test_random_crop_dihedral_reaches_all_eight_symmetries():
    """With dihedral=True a crop comes out in each of the 8 orientations of the square; without it,
    only the 2 of a horizontal flip."""
    img = torch.zeros(3, 16, 16, dtype=torch.uint8)
    img[:, :4, :8] = 255  # a bright bar in the top-left: every symmetry moves it somewhere else
    img[:, 4:8, :4] = 128

    def orientations(dihedral: bool) -> set:
        g = torch.Generator().manual_seed(0)
        return {
            tuple(random_crop(img, 16, g, p_whole=1.0, dihedral=dihedral)[0].flatten().tolist()) for _ in range(200)
        }

    assert len(orientations(True)) == 8
    assert len(orientations(False)) == 2


def test_training_photo_allow_list_is_well_formed():
    """Every curated training photo comes from a fetched package, has an author and a licence, and
    the lomiri photographs carry one of their copyright file's licences."""
    from model.training.data import DEB_PACKAGES, WALLPAPER_PHOTOS

    assert len(WALLPAPER_PHOTOS) == len({rel for _, rel, _, _ in WALLPAPER_PHOTOS}) == 41
    for pkg, rel, author, lic in WALLPAPER_PHOTOS:
        assert pkg in DEB_PACKAGES and rel.startswith("/usr/share/") and author and lic
        if pkg.startswith("lomiri"):
            assert lic in {"CC-BY-4.0", "CC-BY-SA-4.0", "CC-BY-SA-3.0", "CC0-1.0"}
        if pkg == "palapeli-data":  # its two GFDL puzzles stay out
            assert lic == "public-domain" and "maintenon" not in rel and "chameleon" not in rel


# --------------------------------------------------------------------------- evaluation metrics
def test_psnr_known_values():
    x = torch.rand(2, 3, 8, 8) * 2 - 1
    assert torch.isinf(psnr(x, x)).all()
    a, b = torch.zeros(3, 8, 8), torch.full((3, 8, 8), 0.2)
    assert math.isclose(psnr(a, b).item(), 20.0, abs_tol=1e-5)  # MSE 0.04 on a range of 2 -> 10 log10(4 / 0.04)
    # clipping: values outside [-1, 1] count as the boundary
    assert torch.isinf(psnr(torch.full((3, 4, 4), 3.0), torch.ones(3, 4, 4)))


def test_blur_oracle_picks_zero_on_clean_and_blur_on_noise():
    g = torch.Generator().manual_seed(0)
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, 32), torch.linspace(-1, 1, 32), indexing="ij")
    clean = torch.stack([xx, yy, xx * yy]).unsqueeze(0).repeat(2, 1, 1, 1) * 0.8
    s, p, _ = blur_oracle(clean.clone(), clean)
    assert s == 0.0 and math.isinf(p)
    noisy = clean + 0.5 * torch.randn(clean.shape, generator=g)
    s, p, _ = blur_oracle(noisy, clean)
    assert s > 0.5 and p > psnr(noisy, clean).mean().item()
    const = torch.full((1, 3, 16, 16), 0.3)
    assert torch.allclose(gaussian_blur(const, 40.0), const, atol=1e-6)  # wider than the image: still a constant


def test_predict_eps_converts_each_prediction_type():
    x0 = torch.rand(2, 3, 8, 8) * 2 - 1
    t = 700
    for kind in ("epsilon", "v_prediction", "sample"):
        s = make_schedule("linear", prediction_type=kind)
        _, eps, xt = make_noisy(x0, s, t, seeds=1)
        a, b = gather(s.sqrt_alpha_bar, t), gather(s.sqrt_one_minus_alpha_bar, t)
        target = {"epsilon": eps, "v_prediction": a * eps - b * x0, "sample": x0}[kind]

        def oracle(x, tt, target=target):
            return SimpleNamespace(sample=target)

        assert torch.allclose(predict_eps(oracle, s, xt, t), eps, atol=1e-4), kind


def test_ema_update_is_the_moving_average_of_the_float_weights():
    """EMA.update: shadow <- d * shadow + (1 - d) * live for every float tensor (d warms up as
    (1 + n) / (10 + n)); integer buffers are copied."""
    from model.training.train_lib import EMA

    m = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.BatchNorm1d(2))
    ema = EMA(m, decay=0.9)
    start = {k: v.clone().float() for k, v in m.state_dict().items()}
    with torch.no_grad():
        for p in m.parameters():
            p.add_(1.0)
    m[1].num_batches_tracked += 5
    ema.update(m)
    d = min(0.9, 2 / 11)
    for k, v in m.state_dict().items():
        if v.dtype.is_floating_point:
            torch.testing.assert_close(ema.shadow[k], d * start[k] + (1 - d) * v.float())
        else:
            assert ema.shadow[k].item() == v.item() == 5
    assert not torch.equal(ema.shadow["0.weight"], start["0.weight"])


def test_warm_start_keeps_the_prediction_type_of_its_weights(tmp_path):
    """--init-from a v-predicting folder trains v (and its loss weight) unless told otherwise, and an
    explicit contradiction is refused: training v weights as an ε-predictor silently unlearns them."""
    from model.training.train import parse_args

    init = tmp_path / "vmodel"
    init.mkdir()
    (init / "scheduler_config.json").write_text(json.dumps({"prediction_type": "v_prediction"}))
    base = ["--data", str(tmp_path), "--out", str(tmp_path / "run")]

    a = parse_args(base + ["--init-from", str(init)])
    assert (a.prediction, a.loss_weight) == ("v_prediction", "v")
    a = parse_args(base + ["--init-from", str(init), "--prediction", "v_prediction", "--loss-weight", "eps"])
    assert (a.prediction, a.loss_weight) == ("v_prediction", "eps")
    with pytest.raises(SystemExit):
        parse_args(base + ["--init-from", str(init), "--prediction", "epsilon"])

    a = parse_args(base)  # from scratch: the ε-predictor of the notes
    assert (a.prediction, a.loss_weight) == ("epsilon", "trunc:1000")

    state = tmp_path / "run" / "train_state"  # a resumed run keeps what it was trained with
    state.mkdir(parents=True)
    (state / "run.json").write_text(json.dumps({"prediction": "v_prediction"}))
    assert parse_args(base).prediction == "v_prediction"
    with pytest.raises(SystemExit):
        parse_args(base + ["--prediction", "epsilon"])


@pytest.fixture
def fresh_accelerator_state():
    """accelerate keeps one AcceleratorState per process and refuses to change its mixed precision;
    a command-line run starts one process per training, so give each test the same start."""
    from accelerate.state import AcceleratorState

    AcceleratorState._reset_state()
    yield
    AcceleratorState._reset_state()


@pytest.mark.parametrize("mode,dtype", [("no", torch.float32), ("bf16", torch.bfloat16)])
def test_mixed_precision_autocasts_the_forward_pass_only(tmp_path, monkeypatch, fresh_accelerator_state, mode, dtype):
    """--mixed-precision bf16 runs the UNet's convolutions in bfloat16 (1.9x per step on this AMX CPU);
    the weights, and so the saved checkpoint, stay float32 and finite."""
    import model.training.train as mt

    seen = []

    def build_and_watch(arch, res):
        unet = build_unet_orig(arch, res)
        unet.conv_out.register_forward_hook(lambda mod, inp, out: seen.append((out.dtype, mod.weight.dtype)))
        return unet

    build_unet_orig = mt.build_unet
    monkeypatch.setattr(mt, "build_unet", build_and_watch)
    data = _write_images(tmp_path / "imgs")
    argv = ["--data", str(data), "--out", str(tmp_path / "run"), "--arch", "tiny", "--batch", "2"]
    argv += ["--res", "32", "--no-progress", "--threads", "1", "--steps", "2", "--mixed-precision", mode]
    r = mt.train(argv)
    assert r["step"] == 2
    assert seen and all(out == dtype and w == torch.float32 for out, w in seen)
    run = json.loads((tmp_path / "run" / "train_state" / "run.json").read_text())
    assert run["mixed_precision"] == mode
    from diffusers import UNet2DModel

    sd = UNet2DModel.from_pretrained(str(tmp_path / "run"), torch_dtype=torch.float32).state_dict()
    assert all(torch.isfinite(v).all() for v in sd.values())


def test_evaluation_table_prints_a_dash_where_bm3d_was_skipped():
    from model.evaluation.evaluate import format_table

    row = dict(t=25, sigma=0.0955, eps_mse=0.24, model=32.61, rescaled=26.76, blur=28.94, blur_sigma=0.6)
    ran, skipped = format_table([{**row, "bm3d": 32.77}]), format_table([{**row, "bm3d": float("nan")}])
    assert "| 32.77 | -0.16 | +3.67 |" in ran
    assert "nan" not in skipped and "| – | – | +3.67 |" in skipped


@pytest.mark.skipif(torch.cuda.is_available(), reason="fp16 is allowed where there is a GPU")
def test_fp16_without_a_gpu_is_refused_with_a_clear_message(tmp_path, capsys):
    from model.training.train import parse_args

    with pytest.raises(SystemExit):
        parse_args(["--data", str(tmp_path), "--out", str(tmp_path / "run"), "--mixed-precision", "fp16"])
    assert "fp16 needs a CUDA GPU" in capsys.readouterr().err


@pytest.mark.slow
def test_evaluation_reports_each_photos_paired_margin_against_bm3d():
    """Per-photo model − BM3D margins (to check a small mean margin photo by photo) are in photo order."""
    from model.evaluation.evaluate import evaluate, format_per_photo, per_photo

    assert per_photo(torch.tensor([1.0, 2.0, 3.0, 10.0, 20.0, 30.0]), 3) == [2.0, 20.0]
    s = make_schedule("linear", prediction_type="epsilon")

    def no_denoising(x, tt):  # ε̂ = 0: the model's x̂_0 is x_t/√ᾱ_t itself
        return SimpleNamespace(sample=torch.zeros_like(x))

    no_denoising.eval = lambda: None
    flat = torch.zeros(3, 32, 32)  # BM3D removes nearly all of the noise of a flat grey photo
    texture = torch.rand(3, 32, 32, generator=torch.Generator().manual_seed(0)) * 2 - 1  # and little of a white one
    rows, _ = evaluate(no_denoising, s, torch.stack([flat, texture]), ts=(200,), seeds=3, progress=False)
    r = rows[0]
    assert len(r["model_per_photo"]) == len(r["bm3d_per_photo"]) == 2
    assert math.isclose(sum(r["model_per_photo"]) / 2, r["model"], rel_tol=1e-9)
    assert math.isclose(sum(r["bm3d_per_photo"]) / 2, r["bm3d"], rel_tol=1e-9)
    gain = [b - m for m, b in zip(r["model_per_photo"], r["bm3d_per_photo"], strict=True)]
    assert gain[0] > gain[1] + 3  # the flat photo gains far more from BM3D than the texture
    line = format_per_photo(rows, ["flat.png", "texture.png"])
    assert line.startswith("t=200: model − BM3D per photo: flat.png -") and "texture.png -" in line
    skipped, _ = evaluate(
        no_denoising, s, torch.stack([flat, texture]), ts=(200,), seeds=1, use_bm3d=False, progress=False
    )
    assert skipped[0]["bm3d_per_photo"] is None and format_per_photo(skipped, ["a", "b"]) == ""
