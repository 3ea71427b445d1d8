"""The words-to-pictures networks: loading from a pipeline folder, shapes, the tokenizer, the attention recorder, one
recorded run, the command line, and the category judge. Networks here are randomly initialised (no training)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from model.cli import generate_emoji
from model.emoji.nets import TextEncoder, make_unet, make_vae
from model.emoji.pipeline import (
    ModelNotTrained,
    load_pipeline,
    make_emoji_schedule,
    save_part,
    save_schedule,
    write_index,
)
from model.emoji.sample import (
    MAX_PROMPT_CHARS,
    Settings,
    check_settings,
    generate,
    install_recorders,
    recording,
)
from model.emoji.tokenizer import MAX_LEN, PAD, START, UNK, Tokenizer
from model.evaluation.emoji_judge import load_judge, save_judge, train_judge

VOCAB = ["smiling", "face", "cat", "red", "heart"]


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    torch.manual_seed(0)
    out = tmp_path_factory.mktemp("emoji-sd")
    tok = Tokenizer.from_words(VOCAB)
    tok.save(out / "tokenizer")
    save_part(TextEncoder(len(tok.vocab)), out / "text_encoder")
    vae = make_vae()
    vae.register_to_config(scaling_factor=0.5)
    save_part(vae, out / "vae")
    save_part(make_unet(), out / "unet")
    save_schedule(out, make_emoji_schedule())
    write_index(out, {"training": {}})
    return out


@pytest.fixture(scope="module")
def pipe(folder):
    p = load_pipeline(folder)
    assert install_recorders(p.unet) == 7  # attn2: 1 per down block (2), 2 per up block (4), 1 in the middle
    return p


def test_tokenizer_reads_words_and_marks_unknown_ones():
    tok = Tokenizer.from_words(VOCAB)
    ids = tok.encode(["Smiling FACE!", "", "dragon cat"])
    assert ids.shape == (3, MAX_LEN)
    assert ids[0, :3].tolist() == [START, tok.index["smiling"], tok.index["face"]] and (ids[0, 3:] == PAD).all()
    assert ids[1, 0] == START and (ids[1, 1:] == PAD).all()
    assert ids[2, 1] == UNK and tok.unknown("dragon cat") == ["dragon"]
    assert tok.encode(["cat " * 40])[0, -1] == tok.index["cat"]  # cut to MAX_LEN - 1 words


def test_missing_folder_says_it_is_not_trained(tmp_path):
    with pytest.raises(ModelNotTrained, match="not trained yet"):
        load_pipeline(tmp_path)


def test_each_part_loads_with_its_shapes(pipe):
    ids = pipe.tokenizer.encode(["red heart", "cat"])
    h = pipe.text_encoder(ids)
    assert h.shape == (2, MAX_LEN, 128) and h.dtype == torch.float32
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    z = pipe.vae.encode(x).latent_dist.mean
    assert z.shape == (2, 4, 8, 8)
    assert pipe.vae.decode(z).sample.shape == (2, 3, 32, 32)
    out = pipe.unet(z, torch.tensor([10, 900]), encoder_hidden_states=h).sample
    assert out.shape == (2, 4, 8, 8)
    assert pipe.scaling_factor == 0.5 and pipe.schedule.T == 1000


def test_recorder_computes_the_same_attention_and_keeps_probabilities(folder, pipe):
    plain = load_pipeline(folder).unet  # diffusers' own processors
    torch.manual_seed(1)
    z, h, t = torch.randn(2, 4, 8, 8), torch.randn(2, MAX_LEN, 128), torch.tensor([5, 500])
    with recording() as store:
        got = pipe.unet(z, t, encoder_hidden_states=h).sample
    torch.testing.assert_close(got, plain(z, t, encoder_hidden_states=h).sample, atol=1e-5, rtol=1e-4)
    assert len(store) == 7
    for p in store:
        assert p.shape[0] == 2 and p.shape[2] == MAX_LEN and p.shape[1] in (64, 16)
        torch.testing.assert_close(p.sum(-1), torch.ones(p.shape[:2]))
    with recording() as empty:
        pass
    assert empty == []


def test_a_run_records_every_step(pipe):
    s = Settings("smiling dragon", w=2.0, steps=3, batch=2, seed=4)
    run = generate(pipe, s)
    assert run.tokens == ["[START]", "smiling", "[UNK] (dragon)"]
    assert run.x_t.shape == (3, 2, 4, 8, 8) and run.x0_pictures.shape == (3, 2, 3, 32, 32)
    assert run.final.shape == (2, 3, 32, 32) and run.final.abs().max() <= 1
    assert run.attention.shape == (3, 2, 3, 8, 8)
    assert run.timesteps == [999, 500, 0]
    torch.testing.assert_close(run.eps_hat, run.eps_cond + 2.0 * (run.eps_cond - run.eps_uncond))
    again = generate(pipe, s)
    torch.testing.assert_close(again.final, run.final)  # seeded: the same picture
    plain = generate(pipe, Settings("smiling dragon", w=0.0, steps=3, batch=2, seed=4))
    torch.testing.assert_close(plain.eps_hat, plain.eps_cond)


@pytest.mark.parametrize(
    ("settings", "match"),
    [
        (Settings("x" * (MAX_PROMPT_CHARS + 1)), "characters long"),
        (Settings("cat", negative="y" * 500), "negative prompt"),
        (Settings("cat", steps=0), "steps"),
        (Settings("cat", w=-1), "guidance"),
        (Settings("cat", batch=10_000), "pictures"),
    ],
)
def test_bad_settings_get_a_sentence(settings, match):
    with pytest.raises(ValueError, match=match):
        check_settings(settings)


def test_command_line_writes_samples_and_the_step_figure(folder, tmp_path, capsys):
    rc = generate_emoji.main(
        ["--prompt", "red heart", "--steps", "2", "--batch", "2", "--model", str(folder), "--out", str(tmp_path)]
    )
    assert rc == 0
    assert {p.name for p in tmp_path.iterdir()} == {"samples.png", "steps.png", "tokens.txt"}
    assert (tmp_path / "tokens.txt").read_text().split() == ["[START]", "red", "heart"]
    assert generate_emoji.main(["--prompt", "cat", "--model", str(tmp_path / "none"), "--out", str(tmp_path)]) == 2
    assert "not trained yet" in capsys.readouterr().err


def test_judge_trains_saves_and_loads(tmp_path):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (20, 32, 32, 3), dtype=np.uint8)
    labels = rng.integers(0, 9, 20)
    judge = train_judge(images, labels, steps=2, batch=8)
    save_judge(judge, tmp_path, {"held_out_accuracy": 0.0})
    again = load_judge(tmp_path)
    pred = again.predict(images)
    assert pred.shape == (20,) and pred.min() >= 0 and pred.max() < 9
    assert (pred == judge.predict(images)).all()


def test_model_card_reports_each_phase_of_the_record():
    from model.emoji.card import card_text

    record = {
        "config": {"ae_batch": 32, "unet_batch": 48, "unet_steps": 40000},
        "phases": {
            "autoencoder": {"done": True, "step": 1500, "seconds": 1770.0, "held_out_psnr_db": 24.68},
            "judge": {"done": True, "step": 300, "seconds": 60.0, "held_out_accuracy": 0.635},
            "unet": {"done": False, "step": 563, "seconds": 360.0},
        },
    }
    text = card_text(record)
    assert "| autoencoder | 1500 | 32 | 29.5 min | held-out PSNR 24.68 dB |" in text
    assert "held-out accuracy 63.5 %" in text
    assert "| text encoder + U-Net | 563 | 48 | 6.0 min | stopped early" in text
    assert "CC-BY-4.0" in text and "Apache-2.0" in text


def _stand_in_data(tr, monkeypatch):
    """24 random 32-px pictures over the 9 categories, every fourth held out, as the trainer's data."""
    rng = np.random.default_rng(0)
    n = 24
    data = tr.EmojiData(
        rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8),
        [{"label": i % 9} for i in range(n)],
        np.arange(n) % 4 == 0,
        np.arange(n) % 9,
    )
    monkeypatch.setattr(tr, "load_emoji", lambda folder: data)
    return data


def test_retrain_trains_the_judge_again_and_refuses_the_other_phases(tmp_path, monkeypatch):
    """``--retrain judge`` trains the category judge afresh (its steps may change) although the record says it is
    done, and nothing else: the autoencoder and the U-Net (here unfinished, as the bundled one is) are left as they are;
    asking to retrain them is refused with a sentence."""
    import dataclasses
    import json

    from model.emoji import train as tr

    _stand_in_data(tr, monkeypatch)
    monkeypatch.setattr(tr, "vocabulary", lambda rows: VOCAB)
    monkeypatch.setattr(tr, "save_schedule", lambda *a: None)
    out, judge_out = tmp_path / "sd", tmp_path / "judge"
    done = {"done": True, "seconds": 1.0, "step": 9}
    (out / "train_state").mkdir(parents=True)
    unfinished = {"done": False, "seconds": 1.0, "step": 5}
    record = {"config": {}, "phases": {"autoencoder": dict(done), "judge": dict(done), "unet": dict(unfinished)}}
    (out / "train_state" / "record.json").write_text(json.dumps(record))
    exported = json.loads(json.dumps(record))  # the exported networks are behind the training state: step 3 of 5
    exported["phases"]["unet"]["step"] = 3
    exported["config"]["judge_steps"] = 9
    write_index(out, {"training": exported})
    for part in ("autoencoder", "unet"):  # trained again, these would fail: there is no data for them
        monkeypatch.setattr(tr.Trainer, f"train_{part}", lambda self, *a: pytest.fail("trained again"))

    cfg = tr.EmojiTrainConfig(out=str(out), judge_out=str(judge_out), judge_steps=3, retrain="judge")
    tr.Trainer(cfg, lambda msg: None).run()
    saved = json.loads((out / "train_state" / "record.json").read_text())["phases"]
    assert saved["judge"]["done"] and saved["judge"]["step"] == 3  # trained again, with the new step count
    assert saved["autoencoder"] == done and saved["unet"] == unfinished
    assert json.loads((judge_out / "judge.json").read_text())["steps"] == 3
    index = json.loads((out / "model_index.json").read_text())["training"]  # the export's record: only the judge moved
    assert index["phases"]["judge"]["step"] == 3 and index["config"]["judge_steps"] == 3
    assert index["phases"]["unet"]["step"] == 3 and "retrain" not in index["config"]
    assert "| category judge | 3 |" in (out / "README.md").read_text()

    with pytest.raises(ValueError, match="--retrain takes judge, decoder"):
        tr.Trainer(dataclasses.replace(cfg, retrain="unet"), lambda msg: None).run()


def test_retrain_decoder_tunes_the_decoder_alone_and_keeps_the_latent_space(tmp_path, monkeypatch):
    """``--retrain decoder`` fine-tunes the exported autoencoder's decoder on the frozen encoder's latents: the encoder,
    quant_conv and scaling_factor (so the latent space the U-Net was trained on) stay bit-identical, the decoder moves
    and lowers the reconstruction loss, the record gains a "decoder" row (card included) and no other phase moves; a
    second run with more steps goes on from train_state/decoder.pt."""
    import dataclasses
    import json

    from model.emoji import train as tr
    from model.emoji.pipeline import load_vae

    data = _stand_in_data(tr, monkeypatch)
    out = tmp_path / "sd"
    torch.manual_seed(0)
    vae = make_vae()
    vae.register_to_config(scaling_factor=0.5)
    save_part(vae, out / "vae")
    done = {"done": True, "seconds": 1.0, "step": 9}
    record = {"config": {}, "phases": {"autoencoder": dict(done), "judge": dict(done), "unet": dict(done)}}
    write_index(out, {"training": record})
    for part in ("autoencoder", "unet", "category_judge"):
        monkeypatch.setattr(tr.Trainer, f"train_{part}", lambda self, *a: pytest.fail("trained again"))
    before = load_vae(out)
    x = tr.to_model(data.images)
    loss_before = torch.nn.functional.mse_loss(tr.reconstruct(before, x), x).item()

    cfg = tr.EmojiTrainConfig(out=str(out), retrain="decoder", decoder_steps=40, decoder_batch=8, decoder_lr=1e-3)
    tr.Trainer(cfg, lambda msg: None).run()
    after = load_vae(out)
    assert after.config.scaling_factor == 0.5
    assert "_name_or_path" not in json.loads((out / "vae" / "config.json").read_text())  # no machine's path
    a, b = before.state_dict(), after.state_dict()
    for name in a:
        same = torch.equal(a[name], b[name])
        assert same == (not name.startswith(("decoder.", "post_quant_conv."))), name
    assert torch.nn.functional.mse_loss(tr.reconstruct(after, x), x).item() < loss_before
    index = json.loads((out / "model_index.json").read_text())["training"]
    assert index["phases"]["decoder"]["step"] == 40 and index["phases"]["decoder"]["done"]
    assert "held_out_psnr_db" in index["phases"]["decoder"] and index["config"]["decoder_batch"] == 8
    assert all(index["phases"][p] == done for p in ("autoencoder", "judge", "unet"))
    assert "| decoder fine-tuned, encoder frozen | 40 | 8 |" in (out / "README.md").read_text()

    logs: list[str] = []
    tr.Trainer(dataclasses.replace(cfg, decoder_steps=50), logs.append).run()
    assert any("resumed decoder.pt at step 40" in m for m in logs)
    assert json.loads((out / "model_index.json").read_text())["training"]["phases"]["decoder"]["step"] == 50
