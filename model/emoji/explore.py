"""Two ways to see what the words do, each a row of pictures from the same noise (the same seed):

* **the prompt revealed word by word**: its first word, then its first two, ... up to the whole prompt (at most
  :data:`MAX_REVEAL_WORDS`), so each picture differs from the one before by one word;
* **interpolation between two prompts**: the text encoder's outputs for prompts a and b mixed,

      c(λ) = (1 − λ) · c_a + λ · c_b,   λ in :data:`LAMBDAS`,

  token by token over the whole padded sequence (both are (1, 12, 128): the tokenizer pads every prompt to 12
  tokens), and the U-Net reads c(λ) in place of a prompt's output. λ = 0 is prompt a's picture exactly, λ = 1 prompt
  b's.

Every picture is one run of :func:`model.emoji.sample.generate` (guidance, negative prompt and steps as in
``Settings``), one picture at a time so that a caller can show progress. Pictures are (3, 32, 32) in [-1, 1].
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace

import torch

from model.emoji.data import words
from model.emoji.pipeline import EmojiPipeline
from model.emoji.sample import MAX_PROMPT_CHARS, Settings, check_settings, embed, generate

MAX_REVEAL_WORDS = 6
LAMBDAS = (0.0, 0.25, 0.5, 0.75, 1.0)


def reveal_prompts(prompt: str, max_words: int = MAX_REVEAL_WORDS) -> list[str]:
    """The prompt's first word, first two words, ... (as the tokenizer reads them: lower case, punctuation dropped),
    at most ``max_words`` prompts: ``"Red heart!"`` -> ``["red", "red heart"]``."""
    ws = words(prompt)[:max_words]
    return [" ".join(ws[: k + 1]) for k in range(len(ws))]


def check_reveal(prompt: str) -> None:
    """Raise ``ValueError`` with one sentence if there is nothing to reveal."""
    check_settings(Settings(prompt))
    if not reveal_prompts(prompt):
        raise ValueError("the prompt has no words to reveal; type one or more words")


def check_pair(a: str, b: str) -> None:
    """Raise ``ValueError`` with one sentence if the two prompts cannot be mixed."""
    check_settings(Settings(a))
    if len(b) > MAX_PROMPT_CHARS:
        raise ValueError(f"the second prompt is {len(b)} characters long; keep it under {MAX_PROMPT_CHARS}")
    if not b.strip():
        raise ValueError("the second prompt is empty; type the words to move towards")


def mix(c_a: torch.Tensor, c_b: torch.Tensor, lam: float) -> torch.Tensor:
    """(1 − λ) · c_a + λ · c_b, elementwise (both (1, 12, 128)); exactly c_a at λ = 0 and c_b at λ = 1."""
    if c_a.shape != c_b.shape:
        raise ValueError(f"the two prompts' encodings differ in shape: {tuple(c_a.shape)} and {tuple(c_b.shape)}")
    return (1.0 - lam) * c_a + lam * c_b


@torch.no_grad()
def picture(pipe: EmojiPipeline, s: Settings, cond: torch.Tensor | None = None) -> torch.Tensor:
    """The finished picture (3, 32, 32) of one run of ``s`` (its first picture), steps not decoded."""
    return generate(pipe, replace(s, batch=1), record_attention=False, decode_steps=False, cond=cond).final[0]


@torch.no_grad()
def mixed_picture(pipe: EmojiPipeline, s: Settings, second: str, lam: float) -> torch.Tensor:
    """The picture for the mix at ``lam`` of ``s.prompt`` (λ = 0) and ``second`` (λ = 1), from ``s``'s noise."""
    check_pair(s.prompt, second)
    _, c_a = embed(pipe, [s.prompt])  # (1, 12, 128), each alone: as generate() encodes a prompt
    _, c_b = embed(pipe, [second])
    return picture(pipe, s, cond=mix(c_a, c_b, float(lam)))


def reveal_row(pipe: EmojiPipeline, s: Settings) -> Iterator[tuple[str, torch.Tensor]]:
    """(prompt, picture) for each prompt of :func:`reveal_prompts` of ``s.prompt``, one at a time, same noise."""
    check_reveal(s.prompt)
    for p in reveal_prompts(s.prompt):
        yield p, picture(pipe, replace(s, prompt=p))


def interpolation_row(
    pipe: EmojiPipeline, s: Settings, second: str, lambdas: tuple[float, ...] = LAMBDAS
) -> Iterator[tuple[float, torch.Tensor]]:
    """(λ, picture) for each λ, one at a time: from ``s.prompt`` (λ = 0) to ``second`` (λ = 1), same noise."""
    check_pair(s.prompt, second)
    for lam in lambdas:
        yield lam, mixed_picture(pipe, s, second, lam)
