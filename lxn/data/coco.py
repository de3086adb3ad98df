"""COCO instances JSON, the format every labelling tool exports (CVAT, Label Studio, Roboflow):

    root/annotations.json    {"images": [{"id", "file_name", "width", "height"}],
                              "annotations": [{"id", "image_id", "category_id", "bbox": [x, y, w, h]}],
                              "categories": [{"id", "name"}]}
    root/images/<file_name>

`read_coco` yields one `Sample` per listed image with its boxes in lxn's form (lxn.data.boxes),
checked against the size the file declares; an unusable box fails the read with every problem
counted (`BoxError`), so nothing is dropped in silence. `write_coco` writes the same layout, the
JSON last, so a folder without it is an unfinished write.
"""

from __future__ import annotations

import json
import logging
import posixpath
from collections.abc import Iterable, Iterator
from typing import Any

from lxn import storage
from lxn.data.boxes import BoxError, box_area, clean_boxes
from lxn.data.sample import NO_LOGO, Sample

__all__ = ["ANNOTATIONS", "IMAGES", "read_coco", "parse_coco", "write_coco", "coco_document"]

log = logging.getLogger(__name__)

ANNOTATIONS = "annotations.json"
IMAGES = "images"


def _field(item: dict, key: str, kind: type | tuple[type, ...], where: str):
    value = item.get(key) if isinstance(item, dict) else None
    if not isinstance(value, kind) or isinstance(value, bool):
        raise ValueError(f"{where}: needs {key!r} as {getattr(kind, '__name__', kind)}, got {value!r}")
    return value


def _image_path(file_name: str, where: str) -> str:
    """file_name relative to images/ (exports often write it as `images/<name>`)."""
    name = file_name.replace("\\", "/")
    if name.startswith(IMAGES + "/"):
        name = name[len(IMAGES) + 1:]
    parts = name.split("/")
    if name.startswith("/") or not name or any(p in ("", ".", "..") for p in parts):
        raise ValueError(f"{where}: file_name {file_name!r} must be a relative path inside {IMAGES}/")
    return posixpath.join(*parts)


def read_coco(root: str) -> Iterator[Sample]:
    """Samples of a COCO folder. `label` is the brand with the largest total box area (ties:
    alphabetical), or "no-logo" for an image with no box; `extra` holds `boxes` (lxn's form,
    clipped to the image), every brand in `labels`, and the declared `width` and `height`.
    Crowd annotations (`iscrowd: 1`) mark regions, not marks, and are skipped (counted in a log line)."""
    root = storage.normalize_uri(root)
    uri = storage.join(root, ANNOTATIONS)
    if not storage.exists(uri):
        raise FileNotFoundError(f"COCO annotations {uri} not found: `root` must hold {ANNOTATIONS} and {IMAGES}/")
    base = storage.join(root, IMAGES)
    for image in parse_coco(storage.read_text(uri), uri):
        area: dict[str, float] = {}
        for b in image["boxes"]:
            area[b["label"]] = area.get(b["label"], 0.0) + box_area(b["box"])
        label = min(area, key=lambda brand: (-area[brand], brand)) if area else NO_LOGO
        yield Sample(storage.join(base, image["path"]), label, None,
                     {"boxes": image["boxes"], "labels": sorted(area), "width": image["width"], "height": image["height"]})


def parse_coco(text: str, uri: str) -> list[dict[str, Any]]:
    """The images of a COCO instances document (`uri` names it in errors): {"path" (relative to
    images/), "width", "height", "boxes" (lxn's form)}, in the document's order. Anything
    malformed raises ValueError naming where; unusable boxes raise one `BoxError` with them all."""
    try:
        document = json.loads(text)
    except json.JSONDecodeError as error:
        raise ValueError(f"{uri} is not JSON: {error}") from None
    if not isinstance(document, dict):
        raise ValueError(f"{uri}: expected an object with images, annotations and categories")
    categories: dict[int, str] = {}
    for i, category in enumerate(_field(document, "categories", list, uri)):
        where = f"{uri}: categories[{i}]"
        cid, name = _field(category, "id", int, where), _field(category, "name", str, where)
        if cid in categories:
            raise ValueError(f"{where}: category id {cid} is listed twice")
        if name == NO_LOGO or not name.strip():
            raise ValueError(f"{where}: {name!r} cannot be a brand (no-logo images are images without boxes)")
        categories[cid] = name
    if len(set(categories.values())) != len(categories):
        raise ValueError(f"{uri}: two categories share a name: {sorted(categories.values())}")
    images: dict[int, dict[str, Any]] = {}
    paths: set[str] = set()
    for i, image in enumerate(_field(document, "images", list, uri)):
        where = f"{uri}: images[{i}]"
        iid = _field(image, "id", int, where)
        path = _image_path(_field(image, "file_name", str, where), where)
        width, height = _field(image, "width", int, where), _field(image, "height", int, where)
        if width < 1 or height < 1:
            raise ValueError(f"{where}: width and height must be positive, got {width}x{height}")
        if iid in images or path in paths:
            raise ValueError(f"{where}: image id {iid} or file {path!r} is listed twice")
        paths.add(path)
        images[iid] = {"path": path, "width": width, "height": height, "boxes": []}
    crowd = 0
    raw: dict[int, list[dict[str, Any]]] = {}
    for i, annotation in enumerate(_field(document, "annotations", list, uri)):
        where = f"{uri}: annotations[{i}]"
        iid = _field(annotation, "image_id", int, where)
        if iid not in images:
            raise ValueError(f"{where}: image_id {iid} is not in images")
        if annotation.get("iscrowd"):
            crowd += 1
            continue
        bbox = annotation.get("bbox")
        box = ([bbox[0], bbox[1], bbox[0] + bbox[2], bbox[1] + bbox[3]]
               if isinstance(bbox, list) and len(bbox) == 4 and all(isinstance(v, (int, float)) for v in bbox) else bbox)
        raw.setdefault(iid, []).append({"id": annotation.get("id", i), "box": box,
                                        "label": categories.get(annotation.get("category_id"))})
    problems = []
    for iid, image in images.items():
        image["boxes"], bad = clean_boxes(image["path"], raw.get(iid, []), image["width"], image["height"],
                                          set(categories.values()))
        problems += bad
    if problems:
        raise BoxError(uri, problems)
    if crowd:
        log.info("%s: skipped %d crowd annotation(s)", uri, crowd)
    return list(images.values())


def coco_document(images: Iterable[dict[str, Any]], classes: list[str]) -> dict[str, Any]:
    """The annotations.json of `images` ({"file_name", "width", "height", "boxes": lxn boxes});
    category ids are 1-based positions in `classes`."""
    ids = {name: i + 1 for i, name in enumerate(classes)}
    document: dict[str, Any] = {"images": [], "annotations": [],
                                "categories": [{"id": i, "name": name} for name, i in ids.items()]}
    for image_id, image in enumerate(images, start=1):
        document["images"].append({"id": image_id, "file_name": image["file_name"], "width": image["width"],
                                   "height": image["height"]})
        for b in image["boxes"]:
            x0, y0, x1, y1 = b["box"]
            document["annotations"].append({
                "id": len(document["annotations"]) + 1, "image_id": image_id, "category_id": ids[b["label"]],
                "bbox": [x0, y0, x1 - x0, y1 - y0], "area": (x1 - x0) * (y1 - y0), "iscrowd": 0})
    return document


def write_coco(root: str, items: Iterable[tuple[str, bytes, int, int, list[dict[str, Any]]]], classes: list[str]) -> str:
    """Write (file_name, image bytes, width, height, boxes) items as a COCO folder; returns its URI."""
    root = storage.normalize_uri(root)
    images = []
    for file_name, data, width, height, boxes in items:
        storage.write_bytes(storage.join(root, IMAGES, _image_path(file_name, root)), data)
        images.append({"file_name": file_name, "width": width, "height": height, "boxes": boxes})
    storage.write_text(storage.join(root, ANNOTATIONS), json.dumps(coco_document(images, classes)))
    return root
