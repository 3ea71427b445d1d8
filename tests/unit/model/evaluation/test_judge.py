"""The Fashion-MNIST judge and its four numbers (model.evaluation.judge) and the evaluate_gen command line, on tiny
synthetic IDX data written here (no dependency on data/fashion)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from model.cli import evaluate_gen
from model.evaluation.gen_metrics import (
    agreement,
    calibrate_copy_threshold,
    diversity,
    diversity_per_class,
    fid,
    near_copy_rate,
    nearest_train_distance,
)
from model.evaluation.judge import (
    JudgeLoadError,
    build_reference,
    evaluate_samples,
    gaussian_blur,
    load_judge,
    reference_rows,
)
from model.evaluation.judge_train import train_judge
from model.training.fashion import FILES, to_model, write_idx

ROOT = Path(__file__).resolve().parents[4]
PER_CLASS = 5  # reference images per class on the tiny data (test[:100] has 10 per class)


def _tiny_split(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """n images (n, 28, 28) uint8 of 10 easy classes: dim noise plus a bright bar at a class-given row."""
    y = (np.arange(n) % 10).astype(np.uint8)
    x = rng.integers(0, 40, (n, 28, 28)).astype(np.uint8)
    for i, k in enumerate(y):
        x[i, 2 * k + 3 : 2 * k + 6, 4:24] = 220
    return x, y


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("tiny-fashion")
    rng = np.random.default_rng(0)
    for split, n in (("train", 300), ("test", 200)):
        x, y = _tiny_split(n, rng)
        write_idx(folder / FILES[split][0], x)
        write_idx(folder / FILES[split][1], y)
    return folder


@pytest.fixture(scope="module")
def tiny_judge(tiny_data, tmp_path_factory, one_torch_thread) -> Path:
    out = tmp_path_factory.mktemp("tiny-judge")
    train_judge(tiny_data, out, epochs=3, seed=0, batch_size=32)
    return out


def _npz(path: Path, **arrays) -> Path:
    np.savez(path, **arrays)
    return path


def _test_images(folder: Path) -> tuple[np.ndarray, np.ndarray]:
    from model.training.fashion import load_split

    return load_split(folder, "test")


# ---------------------------------------------------------------------------------
# Metrics
# ---------------------------------------------------------------------------------


def test_fid_is_zero_for_a_set_against_itself_and_grows_with_a_shift():
    f = np.random.default_rng(1).normal(size=(400, 6))
    assert abs(fid(f, f)) < 1e-8
    # Same covariance, means 1 apart in each of 6 dims: FID = ||Δμ||² = 6 exactly.
    assert fid(f, f + 1.0) == pytest.approx(6.0, abs=1e-6)
    assert fid(f, f + 2.0) == pytest.approx(24.0, abs=1e-6)
    # Doubling: means differ by μ, covariances S and 4S, so FID = ||μ||² + Tr(S + 4S - 2·2S) = ||μ||² + Tr(S).
    mu = f.mean(0)
    assert fid(f, 2 * f) == pytest.approx(mu @ mu + np.trace(np.cov(f, rowvar=False)), rel=1e-6)


def test_fid_matches_the_scipy_sqrtm_formula():
    linalg = pytest.importorskip("scipy.linalg")
    rng = np.random.default_rng(2)
    a = rng.normal(size=(300, 5)) @ rng.normal(size=(5, 5))
    b = rng.normal(size=(200, 5)) * 1.5 + 0.3
    sa, sb = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    covmean = linalg.sqrtm(sa @ sb).real
    want = ((a.mean(0) - b.mean(0)) ** 2).sum() + np.trace(sa + sb - 2 * covmean)
    assert fid(a, b) == pytest.approx(want, rel=1e-8)


def test_agreement():
    assert agreement([0, 1, 2, 3], [0, 1, 0, 3]) == 0.75
    assert agreement(np.arange(10), np.arange(10)) == 1.0
    with pytest.raises(ValueError):
        agreement([0, 1], [0, 1, 2])


def test_diversity_by_hand_and_as_a_ratio():
    # class 0: two points 5 apart; class 1: three points on a line at 0, 1, 2 -> pairs 1, 2, 1.
    feats = np.array([[0, 0], [3, 4], [0, 0], [1, 0], [2, 0], [9, 9]], dtype=float)
    labels = np.array([0, 0, 1, 1, 1, 2])  # class 2 has one image: left out
    per = diversity_per_class(feats, labels)
    assert per == pytest.approx({0: 5.0, 1: 4 / 3})
    assert diversity(feats, labels) == pytest.approx((5 + 4 / 3) / 2)
    assert diversity(0.5 * feats, labels) / diversity(feats, labels) == pytest.approx(0.5)
    assert diversity(np.zeros((4, 3)), [0, 0, 1, 1]) == 0.0  # a collapsed generator


def test_nearest_train_distance_matches_brute_force_across_chunks():
    rng = np.random.default_rng(3)
    a = rng.integers(0, 256, (9, 28, 28), dtype=np.uint8)
    b = rng.integers(0, 256, (50, 28, 28), dtype=np.uint8)
    b[17] = a[4]  # an exact copy
    af, bf = a.reshape(9, -1) / 255.0, b.reshape(50, -1) / 255.0
    want = np.sqrt(((af[:, None] - bf[None]) ** 2).sum(-1)).min(1)
    got = nearest_train_distance(a, b, chunk=7)
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-9)
    assert got[4] == 0.0


def test_near_copy_rate_is_one_for_copies_and_zero_for_noise(tiny_data):
    from model.training.fashion import load_split

    train, _ = load_split(tiny_data, "train")
    test, _ = load_split(tiny_data, "test")
    threshold = calibrate_copy_threshold(test, train)
    assert threshold > 0
    assert near_copy_rate(train[:20], train, threshold) == 1.0
    noise = np.random.default_rng(4).integers(0, 256, (20, 28, 28), dtype=np.uint8)
    assert near_copy_rate(noise, train, threshold) == 0.0
    # By construction, the calibration set scores about the quantile.
    q10 = calibrate_copy_threshold(test, train, quantile=0.1)
    assert 0.05 <= near_copy_rate(test, train, q10) <= 0.1


def test_gaussian_blur_keeps_flat_images_and_spreads_a_point():
    flat = np.full((2, 28, 28), 77, np.uint8)
    np.testing.assert_array_equal(gaussian_blur(flat), flat)
    dot = np.zeros((1, 28, 28), np.uint8)
    dot[0, 14, 14] = 255
    out = gaussian_blur(dot).astype(int)
    assert 0 < out[0, 14, 14] < 255 and out[0, 14, 15] > 0 and out[0, 14, 17] == 0
    assert out[0, 14, 13] == out[0, 14, 15] == out[0, 13, 14]  # symmetric


# ---------------------------------------------------------------------------------
# Training, loading, evaluating
# ---------------------------------------------------------------------------------


def test_train_judge_smoke_saves_a_loadable_judge(tiny_data, tiny_judge, tmp_path, one_torch_thread):
    meta = json.loads((tiny_judge / "judge.json").read_text())
    assert meta["arch"] == "judge-cnn" and meta["epochs"] == 3 and meta["seed"] == 0 and meta["steps"] == 30
    assert meta["test_accuracy"] >= 0.8  # the tiny classes are easy: a broken training loop would not learn them
    assert meta["near_copy"]["threshold"] > 0 and meta["near_copy"]["calibrated_on"] == "test[100:]"
    assert (tiny_judge / "judge.safetensors").stat().st_size < 2_000_000
    judge = load_judge(tiny_judge)
    assert not judge.training
    x, y = _test_images(tiny_data)
    logits, feats = judge.logits(x[:7]), judge.features(x[:7])
    assert logits.shape == (7, 10) and feats.shape == (7, 128) and (feats >= 0).all()
    np.testing.assert_array_equal(judge.predict(x[:7]), logits.argmax(1))
    with pytest.raises(ValueError, match="uint8"):
        judge.logits(x[:3].astype(np.float32))
    # Same seed, same weights; the global RNG is left alone.
    state = torch.random.get_rng_state()
    train_judge(tiny_data, tmp_path / "a", epochs=1, seed=5, batch_size=32, max_steps=3)
    train_judge(tiny_data, tmp_path / "b", epochs=1, seed=5, batch_size=32, max_steps=3)
    assert torch.equal(state, torch.random.get_rng_state())
    assert (tmp_path / "a" / "judge.safetensors").read_bytes() == (tmp_path / "b" / "judge.safetensors").read_bytes()


def test_load_judge_says_what_to_do(tmp_path):
    with pytest.raises(JudgeLoadError, match="python -m model.cli.judge"):
        load_judge(tmp_path)


def test_reference_rows_order_and_sizes(tiny_data, tiny_judge, one_torch_thread):
    judge = load_judge(tiny_judge)
    ref = build_reference(judge, tiny_data, PER_CLASS, seed=0)
    rows = reference_rows(judge, reference=ref)
    assert list(rows) == ["real", "blur", "half_noise", "noise"]
    assert all(r["n"] == 10 * PER_CLASS for r in rows.values())
    assert rows["real"]["agreement"] >= 0.8
    assert rows["real"]["fid"] < rows["half_noise"]["fid"] < rows["noise"]["fid"]
    assert rows["noise"]["near_copy_rate"] == 0.0
    assert 0.5 < rows["real"]["diversity_ratio"] < 2.0
    # A "generator" that returns one image per class: diversity collapses, agreement stays.
    x, y = _test_images(tiny_data)
    firsts = np.stack([x[np.flatnonzero(y == k)[0]] for k in range(10)])
    collapsed = np.repeat(firsts, 4, axis=0)
    r = evaluate_samples(collapsed, np.repeat(np.arange(10), 4), judge, reference=ref)
    assert r["diversity_ratio"] == pytest.approx(0.0, abs=1e-6)
    assert r["agreement"] >= 0.8


# ---------------------------------------------------------------------------------
# The command line
# ---------------------------------------------------------------------------------


@pytest.mark.slow
def test_evaluate_gen_cli_prints_the_table_and_writes_eval_json(tiny_data, tiny_judge, tmp_path, capsys):
    x, y = _test_images(tiny_data)
    idx = np.concatenate([np.flatnonzero(y[100:] == k)[:PER_CLASS] + 100 for k in range(10)])
    x32 = ((to_model(x[idx]) + 1) * 127.5).round().byte().numpy()[:, 0, :, :, None]  # (N, 32, 32, 1), padded
    npz = _npz(tmp_path / "s.npz", images=x32, labels=y[idx].astype(np.int32))
    rc = evaluate_gen.main([str(npz), "--data", str(tiny_data), "--judge", str(tiny_judge), "--out", str(tmp_path)])
    out = capsys.readouterr().out
    assert rc == 0
    assert "| set | n | judge agreement % | FID (judge features, vs test) | diversity / real | near-copies % |" in out
    table = [line for line in out.splitlines() if line.startswith("| ")]
    assert len(table) == 6 and table[1].startswith("| model (s.npz) | 50 |")
    assert sum(line.startswith(("- PASS", "- FAIL")) for line in out.splitlines()) == 4
    report = json.loads((tmp_path / "eval.json").read_text())
    assert list(report["rows"]) == ["model", "real", "blur", "half_noise", "noise"]
    assert report["per_class"] == PER_CLASS and len(report["bar"]) == 4
    assert report["rows"]["model"]["agreement"] >= 0.8  # the crop of the 32-px images found the garments


@pytest.mark.parametrize(
    "arrays, message",
    [
        ({"images": np.zeros((20, 28, 28), np.uint8)}, "no 'labels'"),
        ({"images": np.zeros((20, 28, 28), np.uint8), "labels": np.full(20, 10)}, "0..9"),
        ({"images": np.zeros((20, 28, 28), np.float32), "labels": np.zeros(20, int)}, "uint8"),
        ({"images": np.zeros((20, 30, 30), np.uint8), "labels": np.zeros(20, int)}, "(N, 28, 28)"),
        ({"images": np.zeros((20, 28, 28), np.uint8), "labels": np.zeros(19, int)}, "shape (20,)"),
    ],
)
def test_evaluate_gen_cli_refuses_bad_npz(arrays, message, tiny_data, tiny_judge, tmp_path, capsys):
    npz = _npz(tmp_path / "bad.npz", **arrays)
    rc = evaluate_gen.main([str(npz), "--data", str(tiny_data), "--judge", str(tiny_judge)])
    err = capsys.readouterr().err.strip()
    assert rc == 2
    assert err.startswith("error:") and "\n" not in err and message in err


@pytest.mark.slow
def test_evaluate_gen_module_exits_2_on_a_missing_file_and_imports_no_ui(tmp_path):
    code = (
        "import runpy, sys\n"
        f"sys.argv = ['x', {str(tmp_path / 'missing.npz')!r}]\n"
        "try:\n"
        "    runpy.run_module('model.cli.evaluate_gen', run_name='__main__')\n"
        "finally:\n"
        "    assert not {'streamlit', 'plotly'} & set(sys.modules), 'model imported a UI library'\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip().startswith("error:") and "does not exist" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_bar_checks_pass_and_fail_at_the_limits():
    rows = {"half_noise": {"fid": 10.0}}
    good = {"agreement": 0.85, "fid": 4.99, "diversity_ratio": 0.7, "near_copy_rate": 0.05}
    bad = {"agreement": 0.849, "fid": 5.0, "diversity_ratio": 0.69, "near_copy_rate": 0.051}
    assert [c["pass"] for c in evaluate_gen.bar_checks(good, rows)] == [True] * 4
    assert [c["pass"] for c in evaluate_gen.bar_checks(bad, rows)] == [False] * 4
    assert evaluate_gen.bar_checks(good, rows)[1]["limit"] == 5.0
