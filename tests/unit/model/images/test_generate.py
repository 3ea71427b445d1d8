"""Math and command line of generation: classifier-free guidance, labels, model.images.generate, class-conditional
training on tiny IDX files the test writes itself, and grey / conditional models through LoadedModel."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from model.cli.generate import main
from model.diffusion.guidance import cfg_combine, check_guidance, guided_eps, guided_eps_model
from model.diffusion.reverse import predict_x0
from model.images.generate import default_guidance, label_list, resolve_label
from model.nets import network
from model.training.fashion import CLASSES, NULL_LABEL, read_idx, write_idx

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_cfg_at_scale_zero_is_the_conditional_prediction():
    g = torch.Generator().manual_seed(0)
    cond, uncond = torch.randn(2, 1, 4, 4, generator=g), torch.randn(2, 1, 4, 4, generator=g)
    assert torch.equal(cfg_combine(cond, uncond, 0.0), cond)


def test_cfg_matches_a_hand_computation():
    cond, uncond = torch.tensor([1.0, -2.0, 0.5]), torch.tensor([0.5, 1.0, 0.5])
    # (1 + w) cond - w uncond with w = 2: 3*1 - 2*0.5 = 2; 3*(-2) - 2*1 = -8; 3*0.5 - 2*0.5 = 0.5
    assert cfg_combine(cond, uncond, 2.0).tolist() == [2.0, -8.0, 0.5]


def test_guided_eps_batches_cond_and_uncond_in_one_pass(tiny_cond_model_dir):
    m = network.load_model(str(tiny_cond_model_dir))
    assert m.channels == 1 and m.conditional and m.guidable and m.classes == CLASSES and m.null_label == NULL_LABEL
    x = torch.randn(3, 1, 32, 32, generator=torch.Generator().manual_seed(1))
    y = torch.tensor([7, 0, 3])
    calls = []
    hook = m.unet.register_forward_hook(lambda mod, args, out: calls.append(args[0].shape[0]))
    try:
        g = guided_eps(m, x, 500, y, 2.5)
    finally:
        hook.remove()
    assert calls == [6]  # one forward pass on the doubled batch
    cond, uncond = m.eps(x, 500, y), m.eps(x, 500, NULL_LABEL)
    torch.testing.assert_close(g.eps_cond, cond, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(g.eps_uncond, uncond, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(g.eps_hat, cond + 2.5 * (cond - uncond), atol=1e-4, rtol=1e-4)
    assert not torch.allclose(cond, uncond)  # the label changes the prediction
    # no label means the "no label" index
    torch.testing.assert_close(m.eps(x, 500), uncond)
    # guided_eps_model is what the trajectory generator calls
    eps_tilde, x0_tilde = guided_eps_model(m, y, 2.5)(x, torch.full((3,), 500))
    torch.testing.assert_close(eps_tilde, g.eps_hat)
    # x0_hat of the guided prediction: eq. 15 applied to eps_tilde (the Fashion model predicts eps)
    torch.testing.assert_close(x0_tilde, predict_x0(m.schedule, x, eps_tilde, 500), atol=1e-4, rtol=1e-4)


def test_guidance_errors_are_one_clear_sentence(tiny_model_dir, tiny_cond_model_dir):
    rgb = network.load_model(str(tiny_model_dir))
    with pytest.raises(ValueError, match="unconditional"):
        check_guidance(rgb, None, 2.0)
    with pytest.raises(ValueError, match="takes no class label"):
        check_guidance(rgb, 3, 0.0)
    cond = network.load_model(str(tiny_cond_model_dir))
    with pytest.raises(ValueError, match="choose a class"):
        check_guidance(cond, None, 2.0)
    with pytest.raises(ValueError, match=">= 0"):
        check_guidance(cond, 1, -1.0)
    from model.images.generate import DEFAULT_GUIDANCE

    assert default_guidance(rgb) == 0.0 and default_guidance(cond) == DEFAULT_GUIDANCE


def test_resolve_label_names_indices_and_bad_names():
    assert resolve_label(CLASSES, "sneaker") == 7
    assert resolve_label(CLASSES, "Ankle boot") == 9 and resolve_label(CLASSES, "ankle-boot") == 9
    assert resolve_label(CLASSES, "t-shirt") == 0 and resolve_label(CLASSES, "T-shirt/top") == 0
    assert resolve_label(CLASSES, "3") == 3 and resolve_label(CLASSES, "all") is None
    with pytest.raises(ValueError, match="unknown class 'socks'.*sneaker"):
        resolve_label(CLASSES, "socks")
    with pytest.raises(ValueError, match="out of range"):
        resolve_label(CLASSES, "12")
    with pytest.raises(ValueError, match="unconditional"):
        resolve_label(None, "sneaker")


def test_cli_writes_npz_and_grid_for_a_conditional_model(tiny_cond_model_dir, tmp_path, capsys):
    out = tmp_path / "gen"
    rc = main(
        [
            "--model",
            str(tiny_cond_model_dir),
            "--label",
            "all",
            "--per-class",
            "2",
            "--steps",
            "3",
            "--guidance",
            "1",
            "--out",
            str(out),
        ]
    )
    assert rc == 0
    d = np.load(out / "samples.npz")
    assert d["images"].dtype == np.uint8 and d["images"].shape == (20, 32, 32)
    assert d["labels"].tolist() == [c for c in range(10) for _ in range(2)]
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 2 and "samples.npz" in lines[0] and "grid.png" in lines[1]
    assert (out / "grid.png").stat().st_size > 0
    # one class by name; same seed and batch -> same pictures as the first class of "all"? no: different labels,
    # but the same command twice is reproducible
    main(
        [
            "--model",
            str(tiny_cond_model_dir),
            "--label",
            "sneaker",
            "--per-class",
            "3",
            "--steps",
            "3",
            "--out",
            str(out / "a"),
        ]
    )
    main(
        [
            "--model",
            str(tiny_cond_model_dir),
            "--label",
            "7",
            "--per-class",
            "3",
            "--steps",
            "3",
            "--out",
            str(out / "b"),
        ]
    )
    a, b = np.load(out / "a" / "samples.npz"), np.load(out / "b" / "samples.npz")
    assert a["labels"].tolist() == [7, 7, 7] and np.array_equal(a["images"], b["images"])


def test_cli_unconditional_model_gives_labels_minus_one(tiny_model_dir, tmp_path):
    out = tmp_path / "u"
    assert main(["--model", str(tiny_model_dir), "--per-class", "3", "--steps", "2", "--out", str(out)]) == 0
    d = np.load(out / "samples.npz")
    assert d["images"].shape == (3, 32, 32, 3) and d["labels"].tolist() == [-1, -1, -1]


def test_cli_bad_input_is_one_error_line(tiny_model_dir, tiny_cond_model_dir, tmp_path, capsys):
    assert main(["--model", str(tiny_cond_model_dir), "--label", "socks", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: unknown class 'socks'")
    assert main(["--model", str(tiny_model_dir), "--guidance", "3", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("error: guidance needs a class-conditional model")
    assert main(["--model", str(tmp_path / "nope"), "--out", str(tmp_path)]) == 2
    assert not (tmp_path / "samples.npz").exists()


def test_label_list():
    class M:
        conditional, classes = True, CLASSES

    assert label_list(M, 4, 2) == [4, 4] and len(label_list(M, None, 3)) == 30
    M.conditional = False
    assert label_list(M, None, 2) == [-1, -1]


def _tiny_fashion(folder, n=64, seed=0):
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for split, m in (("train", n), ("t10k", 16)):
        write_idx(folder / f"{split}-images-idx3-ubyte.gz", rng.integers(0, 256, (m, 28, 28), dtype=np.uint8))
        write_idx(folder / f"{split}-labels-idx1-ubyte.gz", rng.integers(0, 10, (m,), dtype=np.uint8))
    return folder


def test_idx_round_trip_and_bad_files(tmp_path):
    a = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    write_idx(tmp_path / "a.gz", a)
    assert np.array_equal(read_idx(tmp_path / "a.gz"), a)
    (tmp_path / "bad").write_bytes(b"\x00\x00\x0d\x01\x00\x00\x00\x05")
    with pytest.raises(ValueError, match="not an unsigned-byte IDX"):
        read_idx(tmp_path / "bad")


@pytest.mark.slow
def test_training_smoke_run_class_conditional(tmp_path):
    from model.training.train import train

    data = _tiny_fashion(tmp_path / "fashion")
    out = tmp_path / "ckpt"
    common = ["--data", str(data), "--arch", "tiny-cond", "--out", str(out), "--res", "32", "--batch", "4"]
    r = train([*common, "--steps", "3", "--no-progress", "--warmup", "1", "--label-dropout", "0.5"])
    assert r["step"] == 3
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["in_channels"] == 1 and cfg["num_class_embeds"] == 11
    assert json.loads((out / "classes.json").read_text()) == {"names": list(CLASSES), "null_label": NULL_LABEL}
    m = network.load_model(str(out))
    assert m.guidable and m.channels == 1
    # resumable: two more steps continue from step 3
    r = train([*common, "--steps", "5", "--no-progress"])
    assert r["step"] == 5


def test_training_refuses_a_conditional_model_on_photos(tmp_path):
    from PIL import Image

    from model.training.train import train

    photos = tmp_path / "photos"
    photos.mkdir()
    Image.new("RGB", (40, 40), "red").save(photos / "a.png")
    with pytest.raises(SystemExit, match="labelled data"):
        train(
            [
                "--data",
                str(photos),
                "--arch",
                "tiny-cond",
                "--out",
                str(tmp_path / "o"),
                "--steps",
                "1",
                "--no-progress",
            ]
        )
    with pytest.raises(SystemExit):
        train(["--data", str(photos), "--out", str(tmp_path / "o2"), "--label-dropout", "2", "--no-progress"])


def test_build_fashion_copies_the_idx_files_and_writes_a_manifest(tmp_path, monkeypatch):
    """model.training.data --fashion-out on a local stand-in of the Debian package (no download)."""
    import model.training.data
    from model.training.fashion import PACKAGE, PKG_DIR, build_fashion, load_split

    root = tmp_path / "cache" / PACKAGE
    _tiny_fashion(root / PKG_DIR, n=20)
    (tmp_path / "cache" / "debs").mkdir(parents=True)
    (tmp_path / "cache" / "debs" / f"{PACKAGE}_0.0~git20200523.55506a9-1_all.deb").write_bytes(b"")
    calls = []

    def fake_fetch(cache, packages):
        calls.append(tuple(packages))
        return {PACKAGE: root}

    monkeypatch.setattr(model.training.data, "fetch_debs", fake_fetch)
    out = tmp_path / "fashion"
    m = build_fashion(out, tmp_path / "cache")
    assert calls == [(PACKAGE,)]
    assert m["counts"] == {"train": 20, "test": 16} and m["classes"][7] == "Sneaker" and "Expat" in m["licence"]
    assert {r["file"] for r in m["files"]} == {p.name for p in out.glob("*.gz")} and len(m["files"]) == 4
    assert all(len(r["sha256"]) == 64 and r["package_version"].startswith("0.0~git") for r in m["files"])
    x, y = load_split(out, "train")
    assert x.shape == (20, 28, 28) and y.dtype == np.int64


@pytest.mark.parametrize(("value", "want"), [(None, 0.0), (2.0, 2.0), (1, 1.0)])
def test_the_default_guidance_is_the_one_the_models_card_recommends(tiny_cond_model_dir, tmp_path, value, want):
    """Issue 36: the default was w = 0 whatever the card said; a newcomer should see the model at its best."""
    import shutil

    folder = tmp_path / "m"
    shutil.copytree(tiny_cond_model_dir, folder)
    info = json.loads((folder / "classes.json").read_text())
    extra = {} if value is None else {"recommended_guidance": value}
    (folder / "classes.json").write_text(json.dumps({**info, **extra}))
    model = network.load_model(str(folder))
    assert model.recommended_guidance == (None if value is None else want) and default_guidance(model) == want


@pytest.mark.parametrize("bad", [-1, "2", True, 50])
def test_a_bad_recommended_guidance_is_one_sentence(tiny_cond_model_dir, tmp_path, bad):
    import shutil

    from model.nets.checkpoint_io import ModelLoadError

    folder = tmp_path / "m"
    shutil.copytree(tiny_cond_model_dir, folder)
    info = json.loads((folder / "classes.json").read_text())
    (folder / "classes.json").write_text(json.dumps({**info, "recommended_guidance": bad}))
    with pytest.raises(ModelLoadError, match="bad recommended_guidance") as exc:
        network.load_model(str(folder))
    assert "\n" not in str(exc.value)
