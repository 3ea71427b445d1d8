"""Training-set sources: the Qt resource reader, the GCompris credits, the curated allow-list."""

from __future__ import annotations

import io
import struct
import zlib

import pytest
from PIL import Image

from model.training.gcompris import activity_photos, normalise_license, parse_credits
from model.training.qt_rcc import RccError, iter_rcc


def make_rcc(tree: dict, version: int = 2, compressed: frozenset = frozenset()) -> bytes:
    """A Qt resource archive as ``rcc -binary`` lays it out: header, data, names, then the tree
    (nodes in breadth-first order, each directory's children contiguous)."""
    names, data, nodes = bytearray(), bytearray(), []
    order = [("", tree)]
    i = 0
    while i < len(order):
        name, content = order[i]
        name_off = len(names)
        names += struct.pack(">HI", len(name), 0) + name.encode("utf-16-be")
        if isinstance(content, dict):
            node = struct.pack(">IHII", name_off, 2, len(content), len(order))
            order += sorted(content.items())
        else:
            payload, flags = content, 0
            if name in compressed:
                payload, flags = struct.pack(">I", len(content)) + zlib.compress(content), 1
            node = struct.pack(">IHHHI", name_off, flags, 0, 0, len(data))
            data += struct.pack(">I", len(payload)) + payload
        nodes.append(node + (b"\0" * 8 if version >= 2 else b""))
        i += 1
    header = 24 if version >= 3 else 20
    data_off, names_off = header, header + len(data)
    tree_off = names_off + len(names)
    head = b"qres" + struct.pack(">4I", version, tree_off, data_off, names_off)
    head += struct.pack(">I", 0) if version >= 3 else b""
    return head + bytes(data) + bytes(names) + b"".join(nodes)


def webp(size, colour=(200, 120, 40)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, colour).save(buf, "WEBP", quality=90)
    return buf.getvalue()


@pytest.mark.parametrize("version", [1, 2, 3])
def test_rcc_reader_walks_nested_folders_and_inflates_zlib_entries(version):
    text = b"hello " * 200
    blob = make_rcc(
        {"a": {"b": {"x.txt": text, "y.bin": b"\x00\x01\x02"}, "top.txt": b"top"}},
        version=version,
        compressed=frozenset({"x.txt"}),
    )
    got = dict(iter_rcc(blob))
    assert got == {"a/b/x.txt": text, "a/b/y.bin": b"\x00\x01\x02", "a/top.txt": b"top"}


def test_rcc_reader_refuses_other_files(tmp_path):
    with pytest.raises(RccError, match="qres"):
        list(iter_rcc(b"PK\x03\x04" + b"\0" * 40))
    bad_version = b"qres" + struct.pack(">4I", 9, 0, 0, 0)
    with pytest.raises(RccError, match="version 9"):
        list(iter_rcc(bad_version))
    zstd = bytearray(make_rcc({"z.png": b"12345678"}))
    flags_at = len(zstd) - 2 * 22 + 22 + 4  # the second node (the file) holds its flags at byte 4
    zstd[flags_at : flags_at + 2] = struct.pack(">H", 4)
    with pytest.raises(RccError, match="zstd"):
        list(iter_rcc(bytes(zstd)))


README = """Copyright: Timothee Giet, 2018
License: CC-BY-SA 4.0
Files:
key.svg
egypt/egypt.svg

Copyright: Nicolas Perrault III
License: CC0-1.0
Source: https://commons.wikimedia.org/wiki/File:Great_Wall.JPG
Files:
wonders/greatWall.webp

Copyright: Someone
License: CC-BY-NC-2.0
Files: a.webp b.webp

Copyright: Berthold Werner
License: Public Domain
Source: https://commons.wikimedia.org/wiki/File:Trier_Konstantinbasilika_BW_1.JPG
Files:
germany/audaPalatina.webp
"""


def test_parse_credits_reads_every_block_and_keys_files_by_base_name():
    c = parse_credits(README)
    assert c["greatWall.webp"] == dict(
        author="Nicolas Perrault III",
        license="CC0-1.0",
        source="https://commons.wikimedia.org/wiki/File:Great_Wall.JPG",
    )
    assert c["egypt.svg"]["license"] == "CC-BY-SA 4.0" and c["key.svg"]["author"] == "Timothee Giet, 2018"
    assert c["a.webp"]["license"] == c["b.webp"]["license"] == "CC-BY-NC-2.0"
    assert c["aulaPalatina.webp"]["author"] == "Berthold Werner"  # the README misspells it "auda"


@pytest.mark.parametrize(
    "text, want",
    [
        ("CC-BY-SA 4.0", "CC-BY-SA-4.0"),
        ("CC-BY-SA-4.0", "CC-BY-SA-4.0"),
        ("Public Domain", "public-domain"),
        ("Public domain", "public-domain"),
        ("CC0-1.0", "CC0-1.0"),
        (" CC-BY-2.0 ", "CC-BY-2.0"),
        ("CC-BY-NC-2.0", None),
        ("GFDL-NIV-1.2", None),
        ("", None),
    ],
)
def test_only_allowed_licences_are_kept(text, want):
    assert normalise_license(text) == want


def test_activity_photos_keeps_credited_free_photos_and_reports_the_rest(tmp_path):
    readme = (README + "\nCopyright: Ann\nLicense: CC-BY-3.0\nFiles: icon.webp\n").encode()
    rcc = tmp_path / "explore.rcc"
    rcc.write_bytes(
        make_rcc(
            {
                "gcompris": {
                    "resource": {
                        "README": readme,
                        "wonders": {"greatWall.webp": webp((640, 420))},
                        "a.webp": webp((500, 500)),  # CC-BY-NC: not allowed
                        "uncredited.webp": webp((480, 400)),
                        "icon.webp": webp((64, 64)),  # a thumbnail: not a training photo
                    }
                }
            }
        )
    )
    kept, skipped = activity_photos(rcc)
    assert [(name, img.size, credit["license"]) for name, img, credit in kept] == [
        ("greatWall.webp", (640, 420), "CC0-1.0")
    ]
    assert kept[0][2]["author"] == "Nicolas Perrault III"
    assert skipped == ["explore.rcc:a.webp (CC-BY-NC-2.0)", "explore.rcc:uncredited.webp (no credit)"]


def test_importing_model_data_leaves_pils_pixel_limit_alone():
    """The decompression-bomb limit is lifted only while model.training.data reads its own files, never on import."""
    import subprocess
    import sys

    code = (
        "from PIL import Image; before = Image.MAX_IMAGE_PIXELS; import model.training.data; "
        "assert Image.MAX_IMAGE_PIXELS == before, Image.MAX_IMAGE_PIXELS; print(before)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() not in ("", "None")


def test_the_pixel_limit_is_lifted_while_reading_a_training_folder_and_restored(tmp_path, monkeypatch):
    from model.training import crops

    seen = []
    monkeypatch.setattr(crops, "list_images", lambda folder: seen.append(Image.MAX_IMAGE_PIXELS) or [])
    before = Image.MAX_IMAGE_PIXELS
    with pytest.raises(FileNotFoundError):
        crops.load_images(tmp_path)  # an empty folder: raises, and the limit still comes back
    assert seen == [None]
    assert Image.MAX_IMAGE_PIXELS == before
