"""Dataset readers: a dataset root (local path or s3:// URI) -> a stream of labelled samples.

One reader per published layout (see /work/shared/DATASETS.md for the layouts and their traps):

    imagefolder    root/<class>/**/<image>
    weblogo2m      part_1/ ... part_8/, each root/<class>/**/<image> (+ .xml beside some images)
    flickrlogos32  FlickrLogos-v2/ with official split lists and classes/jpg/<Brand>/<image>
    belgalogos     images/*.jpg + box ground truth qset3_internal_and_local.gt
    coco           images/ + annotations.json (COCO instances, what labelling tools export; lxn.data.coco)

Readers do I/O only through `lxn.storage` and stream: object listings are consumed as they are
paged in, never collected; only small index files (split lists, the Belga .gt) are read whole.
They do not open images: decoding, and reporting files that are missing or undecodable, is the
job of the pipeline that fetches them.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterator
from typing import Any

from lxn import storage
from lxn.data.coco import read_coco
from lxn.data.sample import NO_LOGO, Sample
from lxn.images import FILE_EXTENSIONS

__all__ = [
    "Sample",
    "IMAGE_EXTENSIONS",
    "NO_LOGO",
    "FLICKRLOGOS32_SPLITS",
    "read_imagefolder",
    "read_weblogo2m",
    "read_flickrlogos32",
    "read_belgalogos",
    "READERS",
    "BOX_FORMATS",
    "iter_samples",
]

log = logging.getLogger(__name__)

IMAGE_EXTENSIONS = tuple(f".{extension}" for extension in FILE_EXTENSIONS)  # what lxn.images decodes

def _hidden(parts: list[str]) -> bool:
    # ".DS_Store", "._x.jpg" (macOS resource forks), ".ipynb_checkpoints/", ".git/" ...
    return any(p.startswith(".") for p in parts)


def _class_folder_images(root: str) -> Iterator[tuple[str, str]]:
    """(uri, first-level folder) for every non-hidden image below `root/<folder>/`."""
    unclassed = 0
    for info in storage.iter_objects(root, extensions=IMAGE_EXTENSIONS):
        parts = storage.relpath(info.uri, root).split("/")
        if _hidden(parts):
            continue
        if len(parts) < 2 or not parts[0]:
            unclassed += 1
            continue
        yield info.uri, parts[0]
    if unclassed:
        log.warning("%s: skipped %d images that are not inside a class folder", root, unclassed)


def read_imagefolder(root: str) -> Iterator[Sample]:
    """`root/<class>/**/<image>`: the class is the first-level folder name, kept as written.

    Images are recognised by extension (IMAGE_EXTENSIONS, any case); other files, hidden files
    and hidden folders are skipped, and so are images lying directly in `root`. Order: by key.
    """
    for uri, folder in _class_folder_images(storage.normalize_uri(root)):
        yield Sample(uri, folder)


def read_weblogo2m(roots: str | list[str]) -> Iterator[Sample]:
    """WebLogo-2M: one or more extracted parts (`part_1` ... `part_8`), each holding one folder per
    class. Labels are the folder names lower-cased (the published names already are), so a class
    split across parts merges into one label. Folders are walked recursively; `.xml` annotations
    and other non-images are skipped. Order: parts as given, keys in order within each part.
    """
    roots = [roots] if isinstance(roots, str) else list(roots)
    if not roots:
        raise ValueError("weblogo2m needs at least one part root (e.g. .../part_1)")
    normalised = [storage.normalize_uri(r) for r in roots]
    duplicates = sorted({r for r in normalised if normalised.count(r) > 1})
    if duplicates:
        raise ValueError(f"weblogo2m part roots given more than once (samples would repeat): {duplicates}")
    for root in normalised:
        for uri, folder in _class_folder_images(root):
            yield Sample(uri, folder.lower())


# ---------------------------------------------------------------------------------------------
# FlickrLogos-32

# split name -> official list file. "all" is the union of the train, val and test lists.
FLICKRLOGOS32_SPLITS = {
    "all": "all.txt",
    "train": "trainset.txt",
    "val": "valset.txt",
    "test": "testset.txt",
    "trainval": "trainvalset.txt",
}
_PARTITION = ("train", "val", "test")
_SPLIT_SEPARATORS = re.compile(r"[,;\t]")


def _flickr_split_name(split: str) -> str:
    name = split.removesuffix(".txt")
    name = name.removesuffix("set") if name.endswith("set") else name  # "trainset" -> "train"
    if name not in FLICKRLOGOS32_SPLITS:
        raise ValueError(f"unknown FlickrLogos-32 split {split!r}: choose one of {sorted(FLICKRLOGOS32_SPLITS)}")
    return name


def _read_flickr_list(uri: str) -> list[tuple[str, str]]:
    """(brand as written, file name) per line of an official list, in order, duplicates dropped.

    Like the official readers: fields split on ',', ';' or tab; a UTF-8 BOM is dropped; blank
    lines are skipped; surrounding whitespace (and a '\\r' from CRLF files) is ignored.
    """
    entries: list[tuple[str, str]] = []
    seen: set[tuple[str, str]] = set()  # a line repeated in a list must not double the sample
    for number, line in enumerate(storage.read_text(uri).splitlines(), start=1):
        line = line.strip()
        if not line:
            continue
        fields = [f.strip() for f in _SPLIT_SEPARATORS.split(line)]
        if len(fields) != 2 or not all(fields):
            raise ValueError(f"{uri}:{number}: expected 'brand,filename', got {line!r}")
        brand, filename = fields
        if "/" in filename or filename in (".", ".."):
            raise ValueError(f"{uri}:{number}: {filename!r} is not a plain file name")
        key = (brand.lower(), filename)
        if key in seen:
            continue
        seen.add(key)
        entries.append((brand, filename))
    return entries


def read_flickrlogos32(root: str, split: str = "all") -> Iterator[Sample]:
    """FlickrLogos-32 (`FlickrLogos-v2/`) from its official split lists.

    `split` is "all" (default), "train", "val", "test" or "trainval" (the list file names,
    `trainset` or `trainset.txt`, are accepted too). Labels are brand names lower-cased, as the
    official readers do; images without logos have the label "no-logo".

    `official_split`: for "all", the partition list that holds the image ("train", "val" or
    "test"; None if it is in all.txt but in none of them, or the lists are absent); otherwise the
    requested split.

    Trap handled: HP is `HP` under classes/jpg and in the lists but `hp` under classes/masks.
    Image folders are looked up case-insensitively (a listing of the 33 folders of classes/jpg),
    mask files by the lower-case label: `extra["bboxes_uri"]` points to the image's
    `classes/masks/<label>/<file>.bboxes.txt` (logo images only). Files named by the lists are
    not checked for existence here (that would be one request each); fetching reports them.
    """
    root = storage.normalize_uri(root)
    name = _flickr_split_name(split)
    list_uri = storage.join(root, FLICKRLOGOS32_SPLITS[name])
    if not storage.exists(list_uri):
        raise FileNotFoundError(
            f"FlickrLogos-32 list {list_uri} not found: `root` must be the FlickrLogos-v2 folder "
            f"holding {', '.join(FLICKRLOGOS32_SPLITS.values())} and classes/"
        )
    folders = _flickr_brand_folders(root)
    entries = _read_flickr_list(list_uri)

    membership: dict[tuple[str, str], str] = {}
    if name == "all":
        for part in _PARTITION:
            part_uri = storage.join(root, FLICKRLOGOS32_SPLITS[part])
            if not storage.exists(part_uri):
                continue
            for brand, filename in _read_flickr_list(part_uri):
                other = membership.setdefault((brand.lower(), filename), part)
                if other != part:
                    log.warning("%s/%s is listed in both %s and %s: keeping %s", brand, filename, other, part, other)

    for brand, filename in entries:
        label = brand.lower()
        folder = folders.get(label)
        if folder is None:
            raise ValueError(
                f"{list_uri}: brand {brand!r} ({filename}) has no folder under {storage.join(root, 'classes/jpg')} "
                f"(found: {sorted(folders.values())})"
            )
        extra: dict[str, Any] = {}
        if label != NO_LOGO:
            extra["bboxes_uri"] = storage.join(root, "classes/masks", label, filename + ".bboxes.txt")
        official = membership.get((label, filename)) if name == "all" else name
        yield Sample(storage.join(root, "classes/jpg", folder, filename), label, official, extra)


def _flickr_brand_folders(root: str) -> dict[str, str]:
    """lower-case brand -> folder name as it is under classes/jpg (`hp` -> `HP`)."""
    jpg = storage.join(root, "classes/jpg")
    folders: dict[str, str] = {}
    for uri in storage.iter_prefixes(jpg):
        folder = storage.basename(uri)
        other = folders.setdefault(folder.lower(), folder)
        if other != folder:
            raise ValueError(f"{jpg}: folders {other!r} and {folder!r} differ only by case; keep one")
    if not folders:
        raise FileNotFoundError(f"no brand folders under {jpg}: is {root} the FlickrLogos-v2 folder?")
    return folders


# ---------------------------------------------------------------------------------------------
# BelgaLogos

BELGALOGOS_GT = "qset3_internal_and_local.gt"


def _read_belga_gt(uri: str) -> dict[str, list[dict[str, Any]]]:
    """image file name -> its boxes, from `<id> <logo> <image> <type> <state> x1 y1 x2 y2` lines
    separated by tabs or spaces; blank lines and '#' comments are skipped."""
    boxes: dict[str, list[dict[str, Any]]] = {}
    for number, line in enumerate(storage.read_text(uri).splitlines(), start=1):
        fields = line.split()
        if not fields or fields[0].startswith("#"):
            continue
        where = f"{uri}:{number}"
        if len(fields) != 9:
            expected = "'<id> <logo> <image> <type> <state> x1 y1 x2 y2'"
            raise ValueError(f"{where}: expected 9 fields {expected}, got {len(fields)}")
        instance, logo, image, kind, state, *coords = fields
        if state not in ("0", "1"):
            raise ValueError(f"{where}: state must be 1 (OK) or 0 (junk), got {state!r}")
        try:
            x1, y1, x2, y2 = (float(c) for c in coords)
        except ValueError:
            raise ValueError(f"{where}: box coordinates must be numbers, got {coords}") from None
        if "/" in image:
            raise ValueError(f"{where}: {image!r} is not a plain file name")
        box = [min(x1, x2), min(y1, y2), max(x1, x2), max(y1, y2)]
        boxes.setdefault(image, []).append(
            {"instance_id": instance, "logo": logo, "type": kind, "state": int(state), "box": box}
        )
    return boxes


def _belga_label(boxes: list[dict[str, Any]]) -> tuple[str, list[str], list[str]]:
    """(label, logos with a state-1 box, logos with only junk boxes) of one image."""
    area: dict[str, float] = {}
    for b in boxes:
        if b["state"] == 1:
            x1, y1, x2, y2 = b["box"]
            area[b["logo"]] = area.get(b["logo"], 0.0) + (x2 - x1) * (y2 - y1)
    junk = sorted({b["logo"] for b in boxes if b["state"] == 0} - area.keys())
    if not area:
        return NO_LOGO, [], junk
    # Largest total box area wins; ties go to the alphabetically first logo (deterministic).
    label = min(area, key=lambda logo: (-area[logo], logo))
    return label, sorted(area), junk


def read_belgalogos(root: str) -> Iterator[Sample]:
    """BelgaLogos: `images/*.jpg`, labelled from the boxes of `qset3_internal_and_local.gt`.

    The dataset has no image-level classes, so they are derived:

    * only boxes with state 1 (OK) count; state 0 (junk) boxes are kept in `extra` but never label;
    * an image with no state-1 box is "no-logo" (this includes images with only junk boxes, named
      in `extra["junk_labels"]` so they can be excluded, and logos under 10 px were never
      annotated, so "no-logo" means "no annotated logo");
    * an image with several logos is labelled with the logo of the largest total state-1 box area
      (ties: alphabetical); `extra["labels"]` lists every logo with a state-1 box.

    Logo names are kept as the ground truth spells them (`Adidas`, `Adidas-text`, ...; the 37
    local-ground-truth names). `extra["annotations"]` holds all boxes of the image (state flags
    included) as `{"instance_id", "logo", "type", "state", "box": [x1, y1, x2, y2]}`;
    `extra["boxes"]` the state-1 ones in lxn's box form (lxn.data.boxes), which prepare keeps.
    Ground-truth images missing from `images/` are reported in a warning.
    """
    root = storage.normalize_uri(root)
    gt_uri = storage.join(root, BELGALOGOS_GT)
    if not storage.exists(gt_uri):
        raise FileNotFoundError(f"BelgaLogos ground truth {gt_uri} not found: `root` must hold it and images/")
    boxes_by_image = _read_belga_gt(gt_uri)
    images = storage.join(root, "images")
    seen: set[str] = set()
    for info in storage.iter_objects(images, extensions=IMAGE_EXTENSIONS):
        name = storage.relpath(info.uri, images)
        if "/" in name or name.startswith("."):
            continue
        seen.add(name)
        boxes = boxes_by_image.get(name, [])
        label, labels, junk = _belga_label(boxes)
        marks = [{"label": b["logo"], "box": b["box"]} for b in boxes if b["state"] == 1]
        yield Sample(info.uri, label, None, {"labels": labels, "junk_labels": junk, "annotations": boxes, "boxes": marks})
    missing = sorted(boxes_by_image.keys() - seen)
    if missing:
        log.warning("%s: %d annotated images are not in %s, e.g. %s", gt_uri, len(missing), images, missing[:5])


# ---------------------------------------------------------------------------------------------
# Dispatch

READERS: dict[str, Callable[..., Iterator[Sample]]] = {
    "imagefolder": read_imagefolder,
    "weblogo2m": read_weblogo2m,
    "flickrlogos32": read_flickrlogos32,
    "belgalogos": read_belgalogos,
    "coco": read_coco,
}
# Readers whose samples carry `extra["boxes"]` in lxn's box form: prepare keeps their boxes.
BOX_FORMATS = ("belgalogos", "coco")


def iter_samples(format: str, source: str | list[str], **options: Any) -> Iterator[Sample]:
    """Samples of dataset `source` in layout `format` (a key of READERS, the prepare job's
    `--format`). WebLogo-2M takes several part roots; the others one root (a one-item list is
    fine). `options` go to the reader (e.g. `split=` for flickrlogos32)."""
    try:
        reader = READERS[format]
    except KeyError:
        raise ValueError(f"unknown dataset format {format!r}: choose one of {sorted(READERS)}") from None
    if reader is read_weblogo2m:
        return reader(source, **options)
    if not isinstance(source, str):
        sources = list(source)
        if len(sources) != 1:
            raise ValueError(f"format {format!r} reads one dataset root, got {len(sources)}: {sources}")
        source = sources[0]
    return reader(source, **options)
