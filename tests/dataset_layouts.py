"""Tiny datasets in the published layouts (/work/shared/DATASETS.md), traps included.

Each builder writes through lxn.storage, so the same layout can be made in tmp_path or in a
bucket on the S3 test endpoint. Images are real (2x2 JPEG/PNG from PIL), a few hundred bytes.
"""

from __future__ import annotations

import functools
import io

from PIL import Image

from lxn import storage


@functools.cache
def image_bytes(fmt: str = "JPEG") -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (2, 2), (200, 30, 30)).save(buffer, fmt)
    return buffer.getvalue()


def _write(root: str, files: dict[str, bytes | str]) -> None:
    for rel, content in files.items():
        data = content.encode("utf-8") if isinstance(content, str) else content
        storage.write_bytes(storage.join(root, rel), data)


def make_imagefolder(root: str) -> None:
    jpg, png = image_bytes(), image_bytes("PNG")
    _write(
        root,
        {
            "cocacola/a.jpg": jpg,
            "cocacola/night/b.PNG": png,  # nested: still the first-level class
            "pepsi/c.jpeg": jpg,
            "pepsi/notes.txt": "not an image",
            "pepsi/.hidden.jpg": jpg,  # hidden file
            "pepsi/._c.jpeg": b"\x00\x05\x16\x07",  # macOS resource fork
            ".cache/x.jpg": jpg,  # hidden folder
            "stray.jpg": jpg,  # no class folder
        },
    )


def make_weblogo2m(base: str) -> list[str]:
    """Two parts; `adidas` appears in both; .xml annotations beside images. Returns part roots."""
    jpg = image_bytes()
    _write(
        base,
        {
            "part_1/3m/0001.jpg": jpg,
            "part_1/adidas/0001.jpg": jpg,
            "part_1/adidas/0001.xml": "<annotation/>",
            "part_2/adidas/more/0002.JPG": jpg,
            "part_2/adidas/more/0002.xml": "<annotation/>",
            "part_2/zara/z.jpg": jpg,
            "part_2/zara/Thumbs.db": b"\x00",
        },
    )
    return [storage.join(base, "part_1"), storage.join(base, "part_2")]


# FlickrLogos-32: HP upper-case under jpg/ and in the lists, hp under masks/; a BOM; three
# separators; CRLF lines; a no-logo class; a duplicated line.
FLICKR_TRAIN = "\ufeffadidas,1001.jpg\r\nHP,2001.jpg\r\n"
FLICKR_VAL = "adidas;1002.jpg\nno-logo;9001.jpg\n\n"
FLICKR_TEST = "HP\t2002.jpg\nno-logo\t9002.jpg\n"
FLICKR_ALL = (
    "\ufeffadidas,1001.jpg\nadidas,1002.jpg\nHP;2001.jpg\nHP\t2002.jpg\n"
    "no-logo,9001.jpg\nno-logo,9002.jpg\nadidas,1001.jpg\n"  # the last line repeats the first
)


def make_flickrlogos32(root: str) -> None:
    jpg = image_bytes()
    files: dict[str, bytes | str] = {
        "all.txt": FLICKR_ALL,
        "trainset.txt": FLICKR_TRAIN,
        "valset.txt": FLICKR_VAL,
        "testset.txt": FLICKR_TEST,
        "trainvalset.txt": FLICKR_TRAIN + FLICKR_VAL.lstrip("\ufeff"),
        "trainset.relpaths.txt": "classes/jpg/adidas/1001.jpg\nclasses/jpg/HP/2001.jpg\n",
    }
    for brand, ids in {"adidas": ["1001", "1002"], "HP": ["2001", "2002"], "no-logo": ["9001", "9002"]}.items():
        for i in ids:
            files[f"classes/jpg/{brand}/{i}.jpg"] = jpg
            if brand != "no-logo":
                mask = f"classes/masks/{brand.lower()}/{i}.jpg"
                files[mask + ".bboxes.txt"] = "x y width height\n1 1 1 1\n"
                files[mask + ".mask.0.png"] = image_bytes("PNG")
    _write(root, files)


# BelgaLogos box ground truth: tabs and runs of spaces; junk boxes; a multi-logo image where the
# larger total area (Nike: 2 boxes, 40+40) beats the single larger-looking box (Adidas: 60); an
# annotated image that is not in images/.
BELGA_GT = (
    "1\tAdidas\tsolo.jpg\tlogo\t1\t0\t0\t10\t10\n"
    "2\tNike\tmulti.jpg\tlogo\t1\t0\t0\t4\t10\n"
    "3   Nike   multi.jpg   logo   1   10 10 14 20\n"
    "4\tAdidas\tmulti.jpg\tlogo\t1\t0\t0\t6\t10\n"
    "5\tPuma\tmulti.jpg\tlogo\t0\t0\t0\t50\t50\n"
    "6\tShell\tjunk.jpg\tlogo\t0\t1\t1\t5\t5\n"
    "7\tTotal\ttie.jpg\tlogo\t1\t0\t0\t5\t5\n"
    "8\tBase\ttie.jpg\tlogo\t1\t5\t5\t0\t0\n"  # corners given swapped: same area
    "9\tKia\tgone.jpg\tlogo\t1\t0\t0\t5\t5\n"
    "\n"
)


def make_belgalogos(root: str) -> None:
    jpg = image_bytes()
    files: dict[str, bytes | str] = {BELGA_GT_NAME: BELGA_GT, "qset1_internal.qry": "Addidas solo.jpg 0 0 10 10\n"}
    for name in ["solo.jpg", "multi.jpg", "junk.jpg", "tie.jpg", "plain.jpg"]:
        files[f"images/{name}"] = jpg
    files["images/readme.txt"] = "not an image"
    _write(root, files)


BELGA_GT_NAME = "qset3_internal_and_local.gt"
