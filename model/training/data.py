"""Training and evaluation photographs for the bundled ε-predictor.

Build the default training set (needs ``apt-get`` to reach a Debian mirror; nothing is installed)::

    python -m model.cli.data --out data/train

Gather the held-out evaluation photos (the sample images that scikit-learn and
matplotlib bundle; never used for training)::

    python -m model.cli.data --eval-out data/eval

Sources of the training set
---------------------------
* Debian wallpaper packages ``mate-backgrounds``, ``plasma-workspace-wallpapers``,
  ``gnome-backgrounds``, ``ukui-wallpapers`` and ``lomiri-wallpapers-{16,20}.04``, fetched with ``apt-get download`` and
  unpacked with ``dpkg -x`` into a cache directory. Only the files on the curated
  allow-list below are kept: each was looked at and is a photograph. Abstract renders,
  gradients, illustrations, logos and SVGs are left out (every gnome-backgrounds 43 and
  ukui-wallpapers file is a render, so those two packages contribute nothing, but they
  are still fetched and listed as checked in the manifest).
* KDE's jigsaw game ``palapeli-data``: three public-domain puzzle photographs.
* GCompris (``gcompris-qt-data``): the 105 photographs of four of its activities, unpacked
  from their Qt resource archives, each with the author, licence and source that the
  activity's README gives (see :mod:`model.training.gcompris`).
* Photographs bundled inside scikit-image (``skimage/data``), minus ``astronaut``,
  ``coffee``, ``chelsea`` and ``rocket`` (the app ships those as its sample photos).

Every kept file is re-encoded as PNG (longest side at most ``--max-side`` px; GCompris's WebP
pictures at most :data:`model.training.gcompris.MAX_SIDE`) into the
output folder, and ``manifest.json`` / ``manifest.csv`` record the source package,
original path, author/copyright and licence of each file.

The training photos are read back, and cropped into training samples, by :mod:`model.training.crops`.
"""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from PIL import Image

from model.training import gcompris
from model.training.crops import no_pixel_limit

DEB_PACKAGES = (
    "mate-backgrounds",
    "plasma-workspace-wallpapers",
    "gnome-backgrounds",
    "ukui-wallpapers",
    "lomiri-wallpapers-16.04",
    "lomiri-wallpapers-20.04",
    "palapeli-data",
)

# Curated allow-list: (package, path inside the package, author / copyright, licence).
# Checked by eye on a contact sheet of every raster image in the six packages.
# Authors and licences from /usr/share/doc/<pkg>/copyright and, for the KDE
# wallpapers, each wallpaper's metadata.json.
_MATE = "/usr/share/backgrounds/mate/nature/"
_KDE = "/usr/share/wallpapers/"
_LOMIRI = "/usr/share/backgrounds/"
_L16, _L20 = "lomiri-wallpapers-16.04", "lomiri-wallpapers-20.04"
_PALAPELI = "/usr/share/palapeli/collection/"
WALLPAPER_PHOTOS = [
    ("mate-backgrounds", _MATE + "Aqua.jpg", "2008 Charles Barbin", "GPL-2+"),
    ("mate-backgrounds", _MATE + "Blinds.jpg", "2008 Lennart Poettering, Andrea Cimitan", "GPL-2+"),
    ("mate-backgrounds", _MATE + "Dune.jpg", "2007 Marco Cogoni, 2008 Hylke Bons", "GPL-2+"),
    ("mate-backgrounds", _MATE + "FreshFlower.jpg", "2005 Jens Ansorg", "GPL-2+"),
    ("mate-backgrounds", _MATE + "Garden.jpg", "2008 Charles Barbin", "GPL-2+"),
    ("mate-backgrounds", _MATE + "GreenMeadow.jpg", "2005 Timothy Schellhase, 2008 Lapo Calamandrei", "GPL-2+"),
    ("mate-backgrounds", _MATE + "LadyBird.jpg", "2008 Charles Barbin", "GPL-2+"),
    ("mate-backgrounds", _MATE + "RainDrops.jpg", "2008 blackcombwhistler07", "GPL-2+"),
    ("mate-backgrounds", _MATE + "Storm.jpg", "2008 Sergey Nazarov", "GPL-2+"),
    ("mate-backgrounds", _MATE + "TwoWings.jpg", "2008 Charles Barbin, Hylke Bons", "GPL-2+"),
    ("mate-backgrounds", _MATE + "Wood.jpg", "2008 Jean-François Fortin Tam", "GPL-2+"),
    ("mate-backgrounds", _MATE + "YellowFlower.jpg", "2008 Charles Barbin", "GPL-2+"),
    ("plasma-workspace-wallpapers", _KDE + "BytheWater/contents/images/2560x1600.jpg", "Maciej Wiklo", "LGPL-3"),
    ("plasma-workspace-wallpapers", _KDE + "ColdRipple/contents/images/2560x1600.jpg", "Risto Saukonpää", "LGPL-3"),
    ("plasma-workspace-wallpapers", _KDE + "ColorfulCups/contents/images/2560x1600.jpg", "Dmitri Popov", "LGPL-3"),
    ("plasma-workspace-wallpapers", _KDE + "DarkestHour/contents/images/2560x1600.jpg", "Risto Saukonpää", "LGPL-3"),
    ("plasma-workspace-wallpapers", _KDE + "EveningGlow/contents/images/2560x1600.jpg", "Ian Hex", "LGPL-3"),
    ("plasma-workspace-wallpapers", _KDE + "FallenLeaf/contents/images/2560x1600.jpg", "Martin Klapetek", "LGPL-3"),
    ("plasma-workspace-wallpapers", _KDE + "Grey/contents/images/2560x1600.jpg", "Sigi Sagi", "LGPL-3"),
    ("plasma-workspace-wallpapers", _KDE + "Kite/contents/images/2560x1600.jpg", "Risto Saukonpää", "LGPL-3"),
    ("plasma-workspace-wallpapers", _KDE + "OneStandsOut/contents/images/2560x1600.jpg", "Risto Saukonpää", "LGPL-3"),
    ("plasma-workspace-wallpapers", _KDE + "Path/contents/images/2560x1600.jpg", "Risto Saukonpää", "LGPL-3"),
    ("plasma-workspace-wallpapers", _KDE + "summer_1am/contents/images/2560x1600.jpg", "Risto Saukonpää", "LGPL-3"),
    # Ubuntu Touch community wallpapers (Debian's lomiri-wallpapers-*; copyright file lists each author)
    (_L16, _LOMIRI + "Bridge_by_Sander_Klootwijk.jpg", "2018 Sander Klootwijk", "CC-BY-SA-4.0"),
    (_L16, _LOMIRI + "Dragonfly_by_Bolly.jpg", '2018 "Bolly"', "CC-BY-SA-4.0"),
    (_L16, _LOMIRI + "Picture_0B_by_freespace.jpg", '2018 Trevor "Freespace"', "CC-BY-4.0"),
    (_L16, _LOMIRI + "Picture_1A_by_freespace.jpg", '2018 Trevor "Freespace"', "CC-BY-4.0"),
    (_L16, _LOMIRI + "Wine_by_Jakkub_Mede.jpg", "2018 Jakub Mede", "CC-BY-4.0"),
    (_L16, _LOMIRI + "aitzgorri_by_Aitzol_Berasategi.jpg", "2018 Aitzol Berasategi", "CC-BY-4.0"),
    (_L16, _LOMIRI + "analogpattern_by_Peter_Nerlich.jpg", "2018 Peter Nerlich", "CC-BY-SA-4.0"),
    (_L16, _LOMIRI + "free_by_Peter_Nerlich.jpg", "2018 Peter Nerlich", "CC-BY-SA-4.0"),
    (_L16, _LOMIRI + "friends_by_Aitzol_Berasategi.jpg", "2018 Aitzol Berasategi", "CC-BY-4.0"),
    (_L16, _LOMIRI + "greentock_by_Peter_Nerlich.jpg", "2018 Peter Nerlich", "CC-BY-SA-4.0"),
    (_L16, _LOMIRI + "life_by_Aitzol_Berasategi.jpg", "2018 Aitzol Berasategi", "CC-BY-4.0"),
    (_L16, _LOMIRI + "picosdeeuropa_by_Aitzol_Berasategi.jpg", "2018 Aitzol Berasategi", "CC-BY-4.0"),
    (_L16, _LOMIRI + "seeding_by_Clements_Engelhardt.jpg", "2018 Clemens Engelhardt", "CC0-1.0"),
    (_L16, _LOMIRI + "sunset_by_Aitzol_Berasategi.jpg", "2018 Aitzol Berasategi", "CC-BY-4.0"),
    (_L20, _LOMIRI + "Kleiber_by_Lukas_Baubkus.jpg", "2021 Lukas Baubkus", "CC-BY-SA-3.0"),
    # KDE's jigsaw game: the public-domain three of its five puzzle photos (each .desktop file
    # beside the picture names author, licence and Wikimedia Commons page; the other two are GFDL).
    ("palapeli-data", _PALAPELI + "cincinnati-bridge.jpg", "Derek Jensen", "public-domain"),
    ("palapeli-data", _PALAPELI + "citrus-fruits.jpg", "US Department of Agriculture", "public-domain"),
    ("palapeli-data", _PALAPELI + "european-honey-bee.jpg", "John Severns", "public-domain"),
]
# Looked at and rejected (renders, gradients, illustrations, logos, SVGs): everything else,
# e.g. mate abstract/* and desktop/*, KDE Altai, Autumn (painting), Canopee, Cascade, Cluster,
# Elarun, Flow, FlyingKonqui, Honeywave, IceCold, Kay, Kokkini, MilkyWay, Opal, PastelHills,
# Patak, SafeLanding, Shell, Volna; all of gnome-backgrounds 43 and ukui-wallpapers; lomiri's
# umang, Fossa, Infinite-Sea, Painting-Colors and warty-final-ubuntu (renders); the lomiri-wallpapers
# package itself holds only warty-final-ubuntu.png and is not fetched.

# scikit-image's bundled photographs (file, licence note from the skimage.data docstrings).
SKIMAGE_PHOTOS = [
    ("camera.png", "CC0 (photographer Lav Varshney)"),
    ("brick.png", "CC0 (CC0Textures)"),
    ("grass.png", "CC0 (DeviantArt linolafett)"),
    ("gravel.png", "CC0 (CC0Textures)"),
    ("coins.png", "No known copyright restrictions (Brooklyn Museum)"),
    ("moon.png", "scikit-image sample data, no licence stated (package BSD-3-Clause)"),
    ("hubble_deep_field.jpg", "Public domain (NASA)"),
    ("retina.jpg", "CC0 1.0 (Mikael Häggström)"),
    ("ihc.png", "No known copyright restrictions (CMMI; skimage.data.immunohistochemistry)"),
    (
        "motorcycle_left.png",
        "Middlebury 2014 stereo benchmark, via skimage.data.stereo_motorcycle (package BSD-3-Clause)",
    ),
]
# Shipped by the app as its sample photos, so never trained on.
SKIMAGE_EXCLUDED = ("astronaut.png", "coffee.png", "chelsea.png", "rocket.jpg")


# --------------------------------------------------------------------------- fetching
def fetch_debs(cache: Path, packages=DEB_PACKAGES) -> dict[str, Path]:
    """``apt-get download`` + ``dpkg -x`` each package into ``cache/<pkg>``; returns the roots."""
    cache.mkdir(parents=True, exist_ok=True)
    debdir = cache / "debs"
    debdir.mkdir(exist_ok=True)
    roots = {}
    for pkg in packages:
        root = cache / pkg
        if (root / "usr").is_dir():
            roots[pkg] = root
            continue
        debs = list(debdir.glob(f"{pkg}_*.deb"))
        if not debs:
            cmd = ["apt-get", "download", pkg]
            r = subprocess.run(cmd, cwd=debdir, capture_output=True, text=True)
            if r.returncode != 0:  # the package lists may be missing: refresh and retry once
                subprocess.run(["apt-get", "update"], capture_output=True, text=True)
                r = subprocess.run(cmd, cwd=debdir, capture_output=True, text=True)
            if r.returncode != 0:
                raise RuntimeError(f"apt-get download {pkg} failed:\n{r.stderr}")
            debs = list(debdir.glob(f"{pkg}_*.deb"))
        root.mkdir(parents=True, exist_ok=True)
        subprocess.run(["dpkg", "-x", str(debs[0]), str(root)], check=True)
        roots[pkg] = root
    return roots


def _save_png(img: Image.Image, dst: Path, max_side: int) -> tuple[int, int]:
    img = img.convert("RGB")
    if max(img.size) > max_side:
        img.thumbnail((max_side, max_side), Image.LANCZOS)
    img.save(dst, optimize=False)
    return img.size


@no_pixel_limit()
def build_train(out: Path, cache: Path | None = None, max_side: int = 1024) -> list[dict]:
    """Assemble the training set in ``out`` and write its manifest. Returns the manifest rows."""
    import skimage

    out.mkdir(parents=True, exist_ok=True)
    cache = Path(cache) if cache else Path(tempfile.gettempdir()) / "diffusion-lens-debs"
    roots = fetch_debs(cache, DEB_PACKAGES + (gcompris.PACKAGE,))
    rows = []
    for pkg, rel, author, lic in WALLPAPER_PHOTOS:
        src = roots[pkg] / rel.lstrip("/")
        name = f"{pkg.split('-')[0]}_{Path(rel).parts[4] if pkg.startswith('plasma') else Path(rel).stem}.png"
        w, h = _save_png(Image.open(src), out / name, max_side)
        rows.append(
            dict(
                file=name,
                source=f"debian:{pkg}",
                original_path=rel,
                author=author,
                license=lic,
                license_file=f"/usr/share/doc/{pkg}/copyright",
                width=w,
                height=h,
            )
        )
    skipped = []
    for activity in gcompris.ACTIVITIES:
        rcc = roots[gcompris.PACKAGE] / "usr/share/gcompris-qt/rcc" / f"{activity}.rcc"
        kept, skipped_here = gcompris.activity_photos(rcc)
        skipped += skipped_here
        for fname, img, credit in kept:
            name = f"gcompris_{activity}_{Path(fname).stem}.png"
            w, h = _save_png(img, out / name, min(max_side, gcompris.MAX_SIDE))
            rows.append(
                dict(
                    file=name,
                    source=f"debian:{gcompris.PACKAGE}",
                    original_path=f"/usr/share/gcompris-qt/rcc/{activity}.rcc:{fname}",
                    author=f"{credit['author']} ({credit['source']})" if credit["source"] else credit["author"],
                    license=credit["license"],
                    license_file=f"{activity}.rcc: resource/README",
                    width=w,
                    height=h,
                )
            )
    for s in skipped:
        print(f"skipping {s}: no allowed licence in its README", file=sys.stderr)
    skdir = Path(skimage.__file__).parent / "data"
    for fname, lic in SKIMAGE_PHOTOS:
        assert fname not in SKIMAGE_EXCLUDED
        src = skdir / fname
        if not src.exists():
            print(f"skipping missing scikit-image file {fname}", file=sys.stderr)
            continue
        name = f"skimage_{Path(fname).stem}.png"
        w, h = _save_png(Image.open(src), out / name, max_side)
        rows.append(
            dict(
                file=name,
                source=f"pypi:scikit-image=={skimage.__version__}",
                original_path=f"skimage/data/{fname}",
                author="see skimage.data docstring",
                license=lic,
                license_file="skimage.data docstrings",
                width=w,
                height=h,
            )
        )
    write_manifest(
        out,
        rows,
        extra={
            "checked_and_rejected": "all other raster/SVG files of "
            + ", ".join(DEB_PACKAGES)
            + " (renders, not photos; palapeli's castle-maintenon and panther-chameleon-female are GFDL)",
            "skipped_gcompris": skipped,
            "excluded_skimage": list(SKIMAGE_EXCLUDED),
            "excluded_eval": "scikit-learn and matplotlib sample images (held out for evaluation)",
        },
    )
    return rows


@no_pixel_limit()
def build_eval(out: Path) -> list[dict]:
    """Copy the held-out evaluation photos (scikit-learn + matplotlib sample photos) into ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    try:
        import sklearn

        d = Path(sklearn.__file__).parent / "datasets" / "images"
        for f in ("china.jpg", "flower.jpg"):
            shutil.copy(d / f, out / f"sklearn_{f}")
            rows.append(
                dict(
                    file=f"sklearn_{f}",
                    source=f"pypi:scikit-learn=={sklearn.__version__}",
                    original_path=f"sklearn/datasets/images/{f}",
                    author="see sklearn/datasets/images/README.txt",
                    license="CC BY 2.0 (Flickr danielbuechele / vultilion; see README.txt beside the image)",
                )
            )
    except ImportError:
        print("scikit-learn not installed: pip install scikit-learn to get china.jpg/flower.jpg", file=sys.stderr)
    try:
        import matplotlib

        d = Path(matplotlib.get_data_path()) / "sample_data"
        # Minduka_Present_Blue_Pack.png is a rendered icon, not a photograph: left out.
        for f in ("grace_hopper.jpg",):
            if (d / f).exists():
                name = f"mpl_{Path(f).stem}.png"
                Image.open(d / f).convert("RGB").save(out / name)
                rows.append(
                    dict(
                        file=name,
                        source=f"pypi:matplotlib=={matplotlib.__version__}",
                        original_path=f"mpl-data/sample_data/{f}",
                        author="see matplotlib sample_data README",
                        license="matplotlib sample data",
                    )
                )
    except ImportError:
        print("matplotlib not installed: pip install matplotlib to get its sample photos", file=sys.stderr)
    write_manifest(out, rows, extra={"purpose": "held-out evaluation photos; never used for training"})
    return rows


def write_manifest(out: Path, rows: list[dict], extra: dict | None = None) -> None:
    (out / "manifest.json").write_text(json.dumps({"files": rows, **(extra or {})}, indent=2, ensure_ascii=False))
    keys = sorted({k for r in rows for k in r}, key=lambda k: list(rows[0]).index(k) if k in rows[0] else 99)
    with open(out / "manifest.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=keys)
        w.writeheader()
        w.writerows(rows)
