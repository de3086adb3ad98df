"""`jobs/review.py import`: what a person decided in the labelling tool, against the export it
answers, into a COCO folder that prepare takes as one more source (`--format coco --source ...`).

Every reviewed image is kept with the boxes the person left (none: a negative, the model's hits
on it were wrong); unreviewed tasks are left out. Each of the model's boxes is confirmed, moved,
relabelled or rejected, and boxes the model missed are added; those counts, and the brands the
model did not know, are what the round taught. Everything is checked before anything is written.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from typing import Any

from lxn import storage
from lxn.config import setting
from lxn.data.boxes import BoxError, clean_boxes
from lxn.data.coco import parse_coco, write_coco
from lxn.evaluation.detection import box_iou
from lxn.redact import redact
from lxn.review import labelstudio
from lxn.review.folder import ExportFolder, require_new
from lxn.review.labelstudio import Reviewed, ReviewError

__all__ = ["ImportConfig", "ingest", "outcomes", "MATCH_IOU", "SAME_IOU"]

log = logging.getLogger(__name__)

MATCH_IOU = 0.5   # a person's box within this of the model's is the same mark
SAME_IOU = 0.9    # ... and within this, the model's box was right as it stood
OUTCOMES = ("confirmed", "moved", "relabelled", "rejected", "added")


@dataclasses.dataclass(frozen=True)
class ImportConfig:
    export: str = setting("", "the folder `jobs/review.py export` wrote", uri="input")
    labels: str = setting("", "the tool's export: Label Studio JSON (a list of tasks) or COCO instances JSON", uri="input")
    out: str = setting("", "a new folder for the reviewed dataset (COCO: images/ and annotations.json)", uri="output")

    def __post_init__(self) -> None:
        for flag in ("export", "labels", "out"):
            if not getattr(self, flag):
                raise ValueError(f"give --{flag}")


def outcomes(predicted: list[dict[str, Any]], reviewed: list[dict[str, Any]]) -> dict[str, int]:
    """How the person's boxes answer the model's on one image: greedy by IoU, each box paired at
    most once, a pair at MATCH_IOU or more is one mark."""
    pairs = sorted(((box_iou(p["box"], r["box"]), i, j) for i, p in enumerate(predicted) for j, r in enumerate(reviewed)),
                   reverse=True)
    counts = dict.fromkeys(OUTCOMES, 0)
    used_p, used_r = set(), set()
    for iou, i, j in pairs:
        if iou < MATCH_IOU or i in used_p or j in used_r:
            continue
        used_p.add(i)
        used_r.add(j)
        if predicted[i]["label"] != reviewed[j]["label"]:
            counts["relabelled"] += 1
        else:
            counts["confirmed" if iou >= SAME_IOU else "moved"] += 1
    counts["rejected"] = len(predicted) - len(used_p)
    counts["added"] = len(reviewed) - len(used_r)
    return counts


def _from_coco(text: str, source: str, sizes: dict[str, tuple[int, int]]) -> list[Reviewed]:
    """A COCO file from a tool (CVAT), its images named as the export named them; boxes scaled
    to the export's pixels when the tool's image was a scaled copy."""
    problems, reviewed = [], []
    for image in parse_coco(text, source):
        name = image["path"].rsplit("/", 1)[-1]
        if name not in sizes:
            problems.append(f"image {image['path']!r} is not from this export")
            continue
        width, height = sizes[name]
        sx, sy = width / image["width"], height / image["height"]
        if abs(sx - sy) > 0.01 * max(sx, sy):
            problems.append(f"{name}: the tool's image is {image['width']}x{image['height']}, the export's {width}x{height}")
            continue
        reviewed.append(Reviewed(name, [{"label": b["label"], "box": [b["box"][0] * sx, b["box"][1] * sy,
                                                                      b["box"][2] * sx, b["box"][3] * sy]}
                                        for b in image["boxes"]]))
    if problems:
        raise ReviewError(source, problems)
    return reviewed


def _read_labels(uri: str, sizes: dict[str, tuple[int, int]]) -> tuple[list[Reviewed], int, str]:
    text = storage.read_text(uri)
    try:
        document = json.loads(text)
    except json.JSONDecodeError as error:
        raise ValueError(f"{uri} is not JSON ({error}): give the tool's JSON export as it is") from None
    if isinstance(document, dict) and "images" in document:
        reviewed = _from_coco(text, uri, sizes)
        return reviewed, len(sizes) - len(reviewed), "coco"
    reviewed, unreviewed = labelstudio.read_export(document, uri, sizes)
    return reviewed, unreviewed, "label-studio"


def ingest(config: ImportConfig) -> dict[str, Any]:
    """Check the tool's export against the review export, then write the reviewed dataset."""
    folder = ExportFolder(config.export)
    manifest = folder.read_manifest()
    items = {item["file_name"]: item for item in manifest["items"]}
    reviewed, unreviewed, kind = _read_labels(storage.normalize_uri(config.labels),
                                              {name: (i["width"], i["height"]) for name, i in items.items()})
    if not reviewed:
        raise ValueError(f"{config.labels} has no reviewed task ({unreviewed} not reviewed): submit them in the tool, "
                         "then export again")
    problems = []
    for r in reviewed:
        item = items[r.file_name]
        kept, bad = clean_boxes(r.file_name, r.boxes, item["width"], item["height"])
        problems += bad
        r.boxes[:] = [{"label": b["label"], "box": [round(v, 2) for v in b["box"]]} for b in kept]
    if problems:
        raise BoxError(config.labels, problems)
    images = {}
    for r in reviewed:
        try:
            images[r.file_name] = storage.read_bytes(folder.image(r.file_name))
        except FileNotFoundError:
            raise FileNotFoundError(f"{folder.image(r.file_name)} is missing from the export: nothing was written") from None
    out = require_new(config.out, "reviewed dataset")

    totals = dict.fromkeys(OUTCOMES, 0)
    by_reason: dict[str, dict[str, int]] = {}
    for r in reviewed:
        item = items[r.file_name]
        counts = outcomes(item["predicted"], r.boxes)
        for key, n in counts.items():
            totals[key] += n
            by_reason.setdefault(item["reason"], dict.fromkeys(OUTCOMES, 0))[key] += n
    known = set(manifest.get("brands") or [])
    classes = sorted({b["label"] for r in reviewed for b in r.boxes})
    result = {"dataset": out, "format": kind, "reviewed": len(reviewed), "unreviewed": unreviewed,
              "negatives": sum(1 for r in reviewed if not r.boxes), "boxes": sum(len(r.boxes) for r in reviewed),
              "outcomes": totals, "by_reason": by_reason, "new_brands": sorted(set(classes) - known),
              "night": manifest.get("night"), "export": folder.root}
    storage.write_text(storage.join(out, "review.json"), json.dumps(redact(result), indent=1))
    write_coco(out, ((r.file_name, images[r.file_name], items[r.file_name]["width"], items[r.file_name]["height"], r.boxes)
                     for r in reviewed), classes)  # annotations.json last: the dataset is complete
    log.info("reviewed dataset %s: %d images, %d boxes, %s", out, len(reviewed), result["boxes"], totals)
    return result
