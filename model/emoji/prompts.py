"""The prompts the U-Net is trained on: short word groups drawn from an emoji's words, so that it learns to answer
the short prompts people type ("cat", "red heart") as well as long ones.

Each training step draws, per picture, one of: its name, a short name, its name with its category, a few of its
keywords, its category and subcategory, or its name with a few keywords; and with probability ``p_empty`` the
empty prompt (classifier-free guidance's unconditional case, Ho & Salimans 2021).
"""

from __future__ import annotations

import random

from model.emoji.tokenizer import MAX_LEN

P_EMPTY = 0.1


def all_words(row: dict) -> list[str]:
    return (
        row["name"]
        + [w for s in row["short_names"] for w in s]
        + row["category"]
        + row["subcategory"]
        + row["keywords"]
    )


def _dedupe(ws: list[str]) -> list[str]:
    seen: set[str] = set()
    return [w for w in ws if not (w in seen or seen.add(w))]


def draw_prompt(row: dict, rng: random.Random, p_empty: float = P_EMPTY) -> list[str]:
    """One training prompt (a list of words, at most MAX_LEN - 1) for a data row (:mod:`model.emoji.data`)."""
    if rng.random() < p_empty:
        return []
    kw = row["keywords"] or row["name"]
    some = rng.sample(kw, min(len(kw), rng.randint(1, 3)))
    choices = [
        row["name"],
        row["name"],
        rng.choice(row["short_names"]) if row["short_names"] else row["name"],
        row["name"] + row["category"],
        some,
        row["category"] + row["subcategory"],
        row["name"] + some,
    ]
    return _dedupe(rng.choice(choices))[: MAX_LEN - 1]


def vocabulary(rows: list[dict]) -> set[str]:
    return {w for r in rows for w in all_words(r)}
