"""The prompt revealed word by word and the interpolation between two prompts (model/emoji/explore.py), on a tiny
randomly initialised emoji model."""

from __future__ import annotations

import pytest
import torch
from fakes import tiny_emoji_folder

from model.emoji import explore
from model.emoji.pipeline import load_pipeline
from model.emoji.sample import MAX_PROMPT_CHARS, Settings, embed, install_recorders

torch.set_num_threads(1)  # the machine is shared
VOCAB = ["smiling", "face", "cat", "red", "heart"]


@pytest.fixture(scope="module")
def pipe(tmp_path_factory):
    p = load_pipeline(tiny_emoji_folder(tmp_path_factory.mktemp("emoji-sd")))
    install_recorders(p.unet)
    return p


def test_reveal_prompts_grow_one_word_at_a_time():
    assert explore.reveal_prompts("red heart") == ["red", "red heart"]
    assert explore.reveal_prompts("  Red, HEART! ") == ["red", "red heart"]  # read as the tokenizer reads it
    assert explore.reveal_prompts("") == [] and explore.reveal_prompts("?!") == []
    long = explore.reveal_prompts("a b c d e f g h")
    assert len(long) == explore.MAX_REVEAL_WORDS and long[-1] == "a b c d e f"


def test_bad_input_gets_one_sentence():
    with pytest.raises(ValueError, match="no words to reveal"):
        explore.check_reveal("  ")
    with pytest.raises(ValueError, match=f"keep it under {MAX_PROMPT_CHARS}"):
        explore.check_reveal("cat " * 40)
    with pytest.raises(ValueError, match="second prompt is empty"):
        explore.check_pair("cat", " ")
    with pytest.raises(ValueError, match=f"second prompt is {MAX_PROMPT_CHARS + 1} characters"):
        explore.check_pair("cat", "c" * (MAX_PROMPT_CHARS + 1))
    explore.check_pair("", "cat")  # the empty first prompt is the unconditional picture: allowed


def test_mix_is_linear_and_exact_at_the_ends():
    g = torch.Generator().manual_seed(1)
    a, b = torch.randn(1, 12, 128, generator=g), torch.randn(1, 12, 128, generator=g)
    assert torch.equal(explore.mix(a, b, 0.0), a) and torch.equal(explore.mix(a, b, 1.0), b)
    torch.testing.assert_close(explore.mix(a, b, 0.25), 0.75 * a + 0.25 * b)
    with pytest.raises(ValueError, match="differ in shape"):
        explore.mix(a, b[:, :5], 0.5)


def test_the_reveal_row_is_one_picture_per_prefix_from_the_same_noise(pipe):
    s = Settings("red heart", steps=3, seed=5)
    row = list(explore.reveal_row(pipe, s))
    assert [p for p, _ in row] == ["red", "red heart"]
    assert all(pic.shape == (3, 32, 32) for _, pic in row)
    assert torch.equal(row[0][1], explore.picture(pipe, Settings("red", steps=3, seed=5)))
    assert torch.equal(row[1][1], explore.picture(pipe, s))
    assert not torch.equal(row[0][1], row[1][1])  # the second word changed the picture


def test_interpolation_ends_are_exactly_the_two_prompts_pictures(pipe):
    s = Settings("smiling face", steps=3, seed=7)
    row = list(explore.interpolation_row(pipe, s, "red heart"))
    assert [lam for lam, _ in row] == list(explore.LAMBDAS)
    assert torch.equal(row[0][1], explore.picture(pipe, s))
    assert torch.equal(row[-1][1], explore.picture(pipe, Settings("red heart", steps=3, seed=7)))
    assert not torch.equal(row[0][1], row[2][1]) and not torch.equal(row[2][1], row[-1][1])


def test_the_midpoint_reads_the_mixed_encoding(pipe):
    """λ = 0.5 is the U-Net reading the average of the two encodings, not either prompt."""
    s = Settings("cat", steps=3, seed=2)
    _, c_a = embed(pipe, ["cat"])
    _, c_b = embed(pipe, ["red heart"])
    expected = explore.picture(pipe, s, cond=(c_a + c_b) / 2)
    torch.testing.assert_close(explore.mixed_picture(pipe, s, "red heart", 0.5), expected)
