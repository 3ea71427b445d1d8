"""A word-level tokenizer over the emoji vocabulary: one id per word the data set uses.

A prompt is lower-cased and split into words (runs of a-z and 0-9, :func:`model.emoji.data.words`); each word
becomes its id, and a word the emoji never use becomes ``[UNK]`` (id 1), which the model learned nothing about, so
it steers the picture no more than an empty prompt would. The sequence starts with ``[START]`` (id 2) and is
padded with ``[PAD]`` (id 0) to :data:`MAX_LEN` tokens; words past ``MAX_LEN - 1`` are cut off. The empty prompt,
``[START]`` and padding, is what classifier-free guidance's unconditional prediction reads.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import torch

from model.emoji.data import words

PAD, UNK, START = 0, 1, 2
SPECIALS = ("[PAD]", "[UNK]", "[START]")
MAX_LEN = 12  # tokens, [START] included


@dataclass(frozen=True)
class Tokenizer:
    vocab: tuple[str, ...]  # id -> word; the first three are SPECIALS
    index: dict[str, int] = field(init=False, repr=False, compare=False)  # word -> id

    def __post_init__(self) -> None:
        if self.vocab[: len(SPECIALS)] != SPECIALS:
            raise ValueError(f"a vocabulary starts with {SPECIALS}")
        object.__setattr__(self, "index", {w: i for i, w in enumerate(self.vocab)})

    @classmethod
    def from_words(cls, all_words: Iterable[str]) -> Tokenizer:
        return cls(SPECIALS + tuple(sorted(set(all_words) - set(SPECIALS))))

    @classmethod
    def load(cls, folder: Path) -> Tokenizer:
        return cls(tuple(json.loads((Path(folder) / "vocab.json").read_text())["vocab"]))

    def save(self, folder: Path) -> None:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        doc = {"vocab": list(self.vocab), "max_len": MAX_LEN, "specials": list(SPECIALS)}
        (folder / "vocab.json").write_text(json.dumps(doc))

    def split(self, prompt: str) -> list[str]:
        """The words of ``prompt`` that become tokens (at most MAX_LEN - 1)."""
        return words(prompt)[: MAX_LEN - 1]

    def encode_words(self, ws: list[str]) -> list[int]:
        idx = self.index
        ids = [START] + [idx.get(w, UNK) for w in ws[: MAX_LEN - 1]]
        return ids + [PAD] * (MAX_LEN - len(ids))

    def encode(self, prompts: list[str]) -> torch.Tensor:
        """(B,) prompts -> (B, MAX_LEN) int64 ids."""
        return torch.tensor([self.encode_words(self.split(p)) for p in prompts], dtype=torch.long)

    def unknown(self, prompt: str) -> list[str]:
        """The words of ``prompt`` that are not in the vocabulary (they become [UNK])."""
        idx = self.index
        return [w for w in self.split(prompt) if w not in idx]
