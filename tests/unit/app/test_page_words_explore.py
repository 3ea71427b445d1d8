"""AppTest: the words-to-pictures page's two rows (issue 37), the prompt revealed word by word and the interpolation
between two prompts, each behind its button, on a tiny randomly initialised emoji model."""

from __future__ import annotations

import torch
from conftest import assert_ok, image_captions, words_page

from model.emoji.sample import MAX_PROMPT_CHARS

torch.set_num_threads(1)  # the machine is shared; one thread is much faster under contention


def test_the_reveal_row_appears_after_its_button_one_picture_per_word(emoji_dir):
    at = words_page(emoji_dir, emoji_prompt="red heart")
    assert_ok(at)
    assert "red heart" not in image_captions(at)  # behind the button: nothing sampled yet
    at.button(key="emoji_reveal_go").click().run()
    assert_ok(at)
    caps = image_captions(at)
    assert caps.count("red") >= 1 and "red heart" in caps  # ("red" is also the first word's attention map)
    assert any("The same noise in every picture: seed 0, 3 steps" in c.value for c in at.caption)
    at.slider(key="emoji_step").set_value(1).run()  # the row stays on a later rerun
    assert_ok(at)
    assert "red heart" in image_captions(at)


def test_the_reveal_of_a_long_prompt_stops_at_six_words(emoji_dir):
    at = words_page(emoji_dir, emoji_prompt="red heart cat face smiling red heart cat")
    at.button(key="emoji_reveal_go").click().run()
    assert_ok(at)
    caps = image_captions(at)
    assert "red heart cat face smiling red" in caps and "red heart cat face smiling red heart" not in caps
    assert any("Only the first 6 words" in c.value for c in at.caption)


def test_the_interpolation_row_has_five_pictures_from_one_prompt_to_the_other(emoji_dir):
    at = words_page(emoji_dir, emoji_prompt="smiling face", emoji_second="Red heart!")
    assert not [c for c in image_captions(at) if c.startswith("λ =")]
    at.button(key="emoji_mix_go").click().run()
    assert_ok(at)
    lam = [c for c in image_captions(at) if c.startswith("λ =")]
    assert lam == ["λ = 0: smiling face", "λ = 0.25", "λ = 0.5", "λ = 0.75", "λ = 1: red heart"]


def test_bad_second_prompts_get_a_sentence(emoji_dir):
    at = words_page(emoji_dir, emoji_prompt="cat", emoji_second="  ")
    at.button(key="emoji_mix_go").click().run()
    assert_ok(at)
    assert [w.value for w in at.warning] == ["the second prompt is empty; type the words to move towards."]
    assert not [c for c in image_captions(at) if c.startswith("λ =")]
    assert at.text_input(key="emoji_second").max_chars == MAX_PROMPT_CHARS  # the same cap as the prompt's


def test_an_empty_prompt_has_nothing_to_reveal(emoji_dir):
    at = words_page(emoji_dir, emoji_prompt="")
    at.button(key="emoji_reveal_go").click().run()
    assert_ok(at)
    assert [w.value for w in at.warning] == ["the prompt has no words to reveal; type one or more words."]
