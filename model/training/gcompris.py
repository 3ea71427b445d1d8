"""Photographs from GCompris (Debian's ``gcompris-qt-data``) for the training set.

GCompris, the educational suite, packs each activity's pictures into a Qt resource archive
(``/usr/share/gcompris-qt/rcc/<activity>.rcc``, read by :mod:`model.training.qt_rcc`). Four activities
hold photographs: ``erase`` (33 animal photos, 1920×1080), ``explore_monuments`` (48 monuments
and landscapes), ``explore_world_animals`` (15) and ``explore_farm_animals`` (9), all WebP.
Every one of their 105 raster pictures of at least 400 px was looked at on a contact sheet
(package 3.1-2, Debian bookworm): all are photographs, none a drawing or render.

Each activity's ``resource/README`` (inside the same archive) credits every file in blocks of
``Copyright:`` / ``Source:`` / ``License:`` / ``Files:`` lines. :func:`parse_credits` reads them,
and a picture is kept only if it has a credit whose licence is in :data:`ALLOWED_LICENSES`
(CC0, public domain, CC-BY, CC-BY-SA: the Wikimedia Commons originals are linked from the
manifest). Anything else — a new, uncredited or differently licensed file in a later package —
is skipped and reported.
"""

from __future__ import annotations

import io
import re
from pathlib import Path

from PIL import Image

from model.training.qt_rcc import iter_rcc

PACKAGE = "gcompris-qt-data"
ACTIVITIES = ("erase", "explore_monuments", "explore_world_animals", "explore_farm_animals")
MIN_SIDE = 400  # the activities' icons and thumbnails are smaller
# The pictures are WebP at 0.2–1.2 bits per pixel: stored at half their size or less, as a precaution
# (not measured) so that even the smallest training crop (64 source px) sees few of the codec's blocks.
MAX_SIDE = 512

# README licence spellings, normalised to SPDX-style ids; only these are kept.
ALLOWED_LICENSES = {
    "cc0-1.0": "CC0-1.0",
    "public domain": "public-domain",
    "cc-by-2.0": "CC-BY-2.0",
    "cc-by-3.0": "CC-BY-3.0",
    "cc-by-4.0": "CC-BY-4.0",
    "cc-by-sa-3.0": "CC-BY-SA-3.0",
    "cc-by-sa-4.0": "CC-BY-SA-4.0",
}
_KEYS = ("Copyright", "Source", "License", "Comments", "Files")
# Misspelt file names in the READMEs of package 3.1-2 (credit name → file name in the archive).
README_TYPOS = {"audaPalatina.webp": "aulaPalatina.webp"}  # explore_monuments, Trier's Aula Palatina


def normalise_license(text: str) -> str | None:
    """``"CC-BY-SA 4.0"`` → ``"CC-BY-SA-4.0"``; ``None`` for a licence not on the allow-list."""
    key = re.sub(r"\s+", "-", text.strip().lower()).replace("public-domain", "public domain")
    return ALLOWED_LICENSES.get(key)


def parse_credits(readme: str) -> dict[str, dict]:
    """File name → ``{"author", "license", "source"}`` from a GCompris resource README.

    Blocks are separated by blank lines; a ``Files:`` value may list several names (spaces or
    continuation lines), keyed here by their base name (``wonders/petra.webp`` → ``petra.webp``).
    Licences are returned as written (see :func:`normalise_license`).
    """
    credits: dict[str, dict] = {}
    for block in re.split(r"\n\s*\n", readme):
        fields: dict[str, str] = {}
        key = None
        for line in block.splitlines():
            m = re.match(r"\s*(\w+):\s*(.*)$", line)
            if m and m.group(1) in _KEYS:
                key = m.group(1)
                fields[key] = m.group(2).strip()
            elif key and line.strip():
                fields[key] = f"{fields[key]} {line.strip()}".strip()
        for name in fields.get("Files", "").replace(",", " ").split():
            base = name.rsplit("/", 1)[-1]
            credits[README_TYPOS.get(base, base)] = dict(
                author=fields.get("Copyright", ""),
                license=fields.get("License", ""),
                source=fields.get("Source", ""),
            )
    return credits


def activity_photos(rcc: Path) -> tuple[list[tuple[str, Image.Image, dict]], list[str]]:
    """The kept photos of one activity archive as ``(file name, image, credit)``, plus the skipped."""
    files = dict(iter_rcc(Path(rcc).read_bytes()))
    readmes = [data for path, data in files.items() if "/resource/" in path and path.endswith("/README")]
    credits = parse_credits("\n\n".join(r.decode("utf-8", errors="replace") for r in readmes))
    kept, skipped = [], []
    for path, data in sorted(files.items()):
        name = path.rsplit("/", 1)[-1]
        if not name.lower().endswith((".webp", ".jpg", ".jpeg", ".png")):
            continue
        img = Image.open(io.BytesIO(data))
        if min(img.size) < MIN_SIDE:
            continue
        credit = credits.get(name)
        lic = normalise_license(credit["license"]) if credit else None
        if lic is None:
            skipped.append(f"{rcc.name}:{name} ({'no credit' if credit is None else credit['license']})")
            continue
        kept.append((name, img, {**credit, "license": lic}))
    return kept, skipped
