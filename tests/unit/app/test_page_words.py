"""AppTest: the words-to-pictures page (issue 37) on a tiny randomly initialised emoji model, and without one."""

from __future__ import annotations

import torch
from conftest import assert_ok, words_page

from model.emoji.sample import MAX_PROMPT_CHARS

torch.set_num_threads(1)  # the machine is shared; one thread is much faster under contention


def test_without_a_trained_model_the_page_says_so(tmp_path):
    at = words_page(tmp_path, steps=4)
    assert_ok(at)
    assert len(at.info) == 1 and "not trained yet" in at.info[0].value


def test_the_page_shows_tokens_steps_attention_and_guidance(emoji_dir):
    at = words_page(emoji_dir, steps=4, emoji_prompt="smiling cat")
    assert_ok(at)
    assert "[START]  smiling  cat" in [t.value for t in at.text]
    captions = [c for img in at.image for c in img.captions]
    assert "smiling" in captions and "cat" in captions  # one attention map per word
    assert "x̂₀ of the negative prompt alone" in captions and "the finished picture" in captions
    assert at.slider(key="emoji_step").max == 4
    at.slider(key="emoji_step").set_value(2).run()
    assert_ok(at)
    assert "x̂₀ at step 2 of 4" in [c for img in at.image for c in img.captions]


def test_unknown_words_and_a_too_long_prompt_get_a_sentence(emoji_dir):
    at = words_page(emoji_dir, steps=4, emoji_prompt="smiling dragon")
    assert_ok(at)
    assert any("Not in the vocabulary: dragon" in c.value for c in at.caption)
    at = words_page(emoji_dir, steps=4, emoji_prompt="cat " * (MAX_PROMPT_CHARS // 4 + 1))
    assert_ok(at)
    assert len(at.warning) == 1 and f"keep it under {MAX_PROMPT_CHARS}" in at.warning[0].value


def test_adding_a_word_from_the_vocabulary_extends_the_prompt(emoji_dir):
    at = words_page(emoji_dir, steps=4, emoji_prompt="red")
    at.selectbox(key="emoji_add").set_value("heart").run()
    assert_ok(at)
    assert at.text_input(key="emoji_prompt").value == "red heart"
