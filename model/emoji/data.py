"""The emoji data set of the words-to-pictures model: 32×32 colour emoji and the words that name them.

Build it (needs ``npm`` and the npm registry; nothing is installed)::

    python -m model.cli.data emoji            # writes data/emoji/{emoji.npz,manifest.json}

Sources, fetched with ``npm pack`` into a cache and checked against the SHA-256 pinned in :data:`PINS`:

* ``emoji-datasource`` 16.0.0 (MIT, by iamcal): ``emoji.json`` (names, short names, category, subcategory, sheet
  position) and the 32-px sprite sheets (34-px cells: a 1-px border round each 32-px picture). Only two art sets
  are used, the ones whose licences allow training and redistribution: **google** (Noto Emoji, Apache-2.0) and
  **twitter** (Twemoji, CC-BY-4.0: © Twitter, Inc. and other contributors). The apple and facebook sheets are
  never read.
* ``emojilib`` 4.0.3 (MIT, by Mu-An Chiou): extra keywords for each emoji.

Each emoji (skin-tone variants and the 5 "Component" swatches left out) gives one picture per art set that has it,
alpha composited on white, stored as uint8 (N, 32, 32, 3). Its words: the name, the short names, the category, the
subcategory and the emojilib keywords, lower-cased and split into words. The model convention is
(B, 3, 32, 32) float32 in [-1, 1] (:func:`to_model`). About 5 % of emoji (both art sets of each) are held out,
chosen by a hash of the code point, for the autoencoder's PSNR and the near-copy check.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import subprocess
import tarfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

DATASOURCE = "emoji-datasource@16.0.0"
EMOJILIB = "emojilib@4.0.3"
PINS = {  # npm package spec -> (tarball name that npm pack writes, its SHA-256)
    DATASOURCE: ("emoji-datasource-16.0.0.tgz", "2006725061dc0098daa832d65f854a7bec0740af2eb47cb5b23d89f7e2c849f9"),
    EMOJILIB: ("emojilib-4.0.3.tgz", "7f9a6b43cff31d18985b7d65d11faba5bd971cbcc60020cf6d09322fbaaaf303"),
}
SETS = ("google", "twitter")  # never apple or facebook: their art may not be redistributed
LICENCES = {
    "emoji-datasource": "MIT (github.com/iamcal/emoji-data)",
    "google": "Apache-2.0 (Noto Emoji, github.com/googlefonts/noto-emoji)",
    "twitter": "CC-BY-4.0 (Twemoji, © Twitter, Inc. and other contributors, github.com/twitter/twemoji)",
    "emojilib": "MIT (github.com/muan/emojilib)",
}
CATEGORIES = (
    "Smileys & Emotion",
    "People & Body",
    "Animals & Nature",
    "Food & Drink",
    "Travel & Places",
    "Activities",
    "Objects",
    "Symbols",
    "Flags",
)
CELL = 34  # sprite sheet cell: 1-px border + 32-px picture + 1-px border
RES = 32
HELD_OUT_PERCENT = 5
_WORD = re.compile(r"[a-z0-9]+")


def words(text: str) -> list[str]:
    """Lower-case words of ``text``: runs of a-z and 0-9 (``"Face-Smiling"`` -> ``["face", "smiling"]``)."""
    return _WORD.findall(text.lower())


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def fetch(spec: str, cache: Path, pins: dict = PINS) -> Path:
    """The tarball of npm package ``spec`` in ``cache`` (``npm pack`` once), checked against its pinned SHA-256."""
    name, digest = pins[spec]
    cache.mkdir(parents=True, exist_ok=True)
    path = cache / name
    if not path.exists():
        subprocess.run(["npm", "pack", spec, "--pack-destination", str(cache)], check=True, capture_output=True)
    got = sha256(path)
    if got != digest:
        raise ValueError(f"{path} has SHA-256 {got}, expected {digest}: delete it and fetch again")
    return path


def _member(tar: tarfile.TarFile, name: str) -> bytes:
    f = tar.extractfile(f"package/{name}")
    if f is None:
        raise ValueError(f"package/{name} is not a file")
    return f.read()


def emoji_char(unified: str) -> str:
    """``"1F600"`` -> ``"😀"``; ``"0023-FE0F-20E3"`` -> the keycap."""
    return "".join(chr(int(h, 16)) for h in unified.split("-"))


def keywords_for(item: dict, lib: dict) -> list[str]:
    """emojilib's keywords of ``item`` (looked up by its fully qualified or non-qualified form), as words."""
    for key in (item.get("unified"), item.get("non_qualified")):
        if key and emoji_char(key) in lib:
            return [w for k in lib[emoji_char(key)] for w in words(k)]
    return []


def text_parts(item: dict, lib: dict) -> dict:
    """The word groups of one emoji: name, short names, category, subcategory, keywords (each a list of words)."""
    name = item.get("name") or item.get("short_name", "")
    return {
        "name": words(name),
        "short_names": [words(s) for s in item.get("short_names", [])],
        "category": words(item["category"]),
        "subcategory": words(item.get("subcategory", "")),
        "keywords": keywords_for(item, lib),
    }


def held_out(unified: str) -> bool:
    """Whether an emoji is in the held-out 5 % (a stable hash of its code point, so every run agrees)."""
    return int(hashlib.sha256(unified.encode()).hexdigest(), 16) % 100 < HELD_OUT_PERCENT


def cut(sheet: np.ndarray, x: int, y: int) -> np.ndarray:
    """Cell (x, y) of an RGBA sprite sheet as a (32, 32, 3) uint8 picture, alpha composited on white."""
    cell = sheet[y * CELL + 1 : y * CELL + 1 + RES, x * CELL + 1 : x * CELL + 1 + RES].astype(np.float32)
    if cell.shape[:2] != (RES, RES):
        raise ValueError(f"sheet cell ({x}, {y}) lies outside the sheet")
    a = cell[..., 3:4] / 255.0
    rgb = cell[..., :3] * a + 255.0 * (1.0 - a)
    return np.clip(np.round(rgb), 0, 255).astype(np.uint8)


def build_emoji(out: Path, cache: Path | None = None, pins: dict = PINS) -> dict:
    """Fetch, check and cut the emoji; write ``out/emoji.npz`` and ``out/manifest.json``; return the manifest."""
    from PIL import Image

    out = Path(out)
    cache = Path(cache) if cache else out / "cache"
    ds_path = fetch(DATASOURCE, cache, pins)
    lib_path = fetch(EMOJILIB, cache, pins)
    with tarfile.open(lib_path) as tar:
        lib = json.loads(_member(tar, "dist/emoji-en-US.json"))
    with tarfile.open(ds_path) as tar:
        table = json.loads(_member(tar, "emoji.json"))
        sheets = {
            s: np.asarray(Image.open(io.BytesIO(_member(tar, f"img/{s}/sheets/32.png"))).convert("RGBA")) for s in SETS
        }
    images, rows = [], []
    for item in sorted(table, key=lambda e: e.get("sort_order", 0)):
        if item["category"] not in CATEGORIES:
            continue
        parts = text_parts(item, lib)
        for s in SETS:
            if not item.get(f"has_img_{s}"):
                continue
            images.append(cut(sheets[s], item["sheet_x"], item["sheet_y"]))
            rows.append({"unified": item["unified"], "set": s, "label": CATEGORIES.index(item["category"]), **parts})
    if not images:
        raise ValueError("no emoji pictures found in the sheets")
    out.mkdir(parents=True, exist_ok=True)
    held = np.array([held_out(r["unified"]) for r in rows])
    np.savez_compressed(out / "emoji.npz", images=np.stack(images), held_out=held)
    manifest = {
        "sources": {spec: {"tarball": n, "sha256": d} for spec, (n, d) in pins.items()},
        "licences": LICENCES,
        "sets": list(SETS),
        "categories": list(CATEGORIES),
        "counts": {"pictures": len(rows), "held_out": int(held.sum()), "emoji": len({r["unified"] for r in rows})},
        "rows": rows,
    }
    (out / "manifest.json").write_text(json.dumps(manifest))
    return manifest


@dataclass(frozen=True)
class EmojiData:
    """The built data set in memory: ``images`` (N, 32, 32, 3) uint8, ``rows`` (N dicts of word groups),
    ``held_out`` (N,) bool, ``categories`` (N,) int64 indices into :data:`CATEGORIES`."""

    images: np.ndarray
    rows: list
    held_out: np.ndarray
    categories: np.ndarray


def load_emoji(folder: Path) -> EmojiData:
    folder = Path(folder)
    if not (folder / "emoji.npz").exists():
        raise FileNotFoundError(f"no emoji data in {folder}: run python -m model.cli.data emoji --out {folder}")
    z = np.load(folder / "emoji.npz")
    rows = json.loads((folder / "manifest.json").read_text())["rows"]
    cats = np.array([r["label"] for r in rows], dtype=np.int64)
    return EmojiData(z["images"], rows, z["held_out"].astype(bool), cats)


def to_model(images: np.ndarray) -> torch.Tensor:
    """(N, 32, 32, 3) uint8 -> (N, 3, 32, 32) float32 in [-1, 1]."""
    return torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float() / 127.5 - 1.0


def to_uint8(x: torch.Tensor) -> np.ndarray:
    """(N, 3, H, W) in about [-1, 1] -> (N, H, W, 3) uint8."""
    return ((x.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
