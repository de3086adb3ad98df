"""Label Studio's JSON, both ways: tasks with the model's boxes as pre-annotations (its "Basic
Label Studio JSON format" with `predictions`), the labelling interface for them, and the tool's
JSON export read back as boxes in pixels.

A rectangle's `x`, `y`, `width` and `height` are percent of the image's size; `rotation` is
degrees clockwise around its top-left corner (a rotated box comes back as its axis-aligned
envelope). Tasks carry the export's file name in `data.lxn_file`, so an export from the tool
finds its images whatever `data.image` became there.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Mapping
from typing import Any
from xml.sax.saxutils import quoteattr

__all__ = ["FROM_NAME", "TO_NAME", "rectangle", "task", "label_config", "read_export", "Reviewed", "ReviewError"]

FROM_NAME, TO_NAME = "label", "image"   # the RectangleLabels and Image tags of `label_config`
_ASPECT_TOLERANCE = 0.01                # the tool may show a scaled copy, never a different picture
_SHOWN_PROBLEMS = 10


class ReviewError(ValueError):
    """What is wrong with a tool's export, every problem counted and the first ones listed."""

    def __init__(self, source: str, problems: list[str]) -> None:
        listed = "; ".join(problems[:_SHOWN_PROBLEMS]) + ("; ..." if len(problems) > _SHOWN_PROBLEMS else "")
        super().__init__(f"{source}: {len(problems)} problem(s), nothing was written: {listed}")
        self.problems = problems


def _percent(box: list[float], width: int, height: int) -> dict[str, float]:
    x0, y0, x1, y1 = box
    return {"x": 100.0 * x0 / width, "y": 100.0 * y0 / height,
            "width": 100.0 * (x1 - x0) / width, "height": 100.0 * (y1 - y0) / height, "rotation": 0}


def rectangle(ident: str, label: str, box: list[float], width: int, height: int, **extra: Any) -> dict[str, Any]:
    """One rectangle result (a prediction's or an annotation's) of a `width` x `height` image."""
    return {"id": ident, "type": "rectanglelabels", "from_name": FROM_NAME, "to_name": TO_NAME,
            "original_width": width, "original_height": height, "image_rotation": 0,
            "value": {**_percent(box, width, height), "rectanglelabels": [label]}, **extra}


def task(item: Mapping[str, Any], image: str, model: str) -> dict[str, Any]:
    """The task of one exported row (a manifest item): `image` is what the tool loads."""
    stem = item["file_name"].rsplit(".", 1)[0]
    result = [rectangle(f"{stem}-{n}", mark["label"], mark["box"], item["width"], item["height"], score=mark["confidence"])
              for n, mark in enumerate(item["predicted"])]
    return {
        "data": {"image": image, "lxn_file": item["file_name"], "lxn_uri": item["uri"], "lxn_reason": item["reason"],
                 "lxn_brand": item["brand"] or "", "lxn_confidence": round(item["confidence"], 4)},
        "predictions": [{"model_version": model, "score": item["confidence"], "result": result}],
    }


def label_config(brands: Iterable[str]) -> str:
    """The labelling interface: the image, one rectangle tool with a label per brand, and the
    reason and the model's guess as a header. New brands are added in the tool's settings."""
    labels = "\n".join(f"    <Label value={quoteattr(b)}/>" for b in sorted(set(brands)))
    return ("<View>\n"
            '  <Header value="$lxn_reason: $lxn_brand ($lxn_confidence)"/>\n'
            f'  <Image name="{TO_NAME}" value="$image" zoom="true"/>\n'
            f'  <RectangleLabels name="{FROM_NAME}" toName="{TO_NAME}">\n{labels}\n  </RectangleLabels>\n'
            "</View>\n")


@dataclasses.dataclass(frozen=True)
class Reviewed:
    """One reviewed image: what the person left on it, in the export's pixels."""

    file_name: str
    boxes: list[dict[str, Any]]  # {"id", "label", "box": [x0, y0, x1, y1]}


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _envelope(value: Mapping[str, Any], width: float, height: float) -> list[float]:
    """The axis-aligned pixel box of a (possibly rotated) rectangle given in percent."""
    x, y = value["x"] * width / 100.0, value["y"] * height / 100.0
    w, h = value["width"] * width / 100.0, value["height"] * height / 100.0
    angle = math.radians(float(value.get("rotation") or 0.0))
    if not angle:
        return [x, y, x + w, y + h]
    c, s = math.cos(angle), math.sin(angle)
    xs = [x, x + w * c, x + w * c - h * s, x - h * s]
    ys = [y, y + w * s, y + w * s + h * c, y + h * c]
    return [min(xs), min(ys), max(xs), max(ys)]


def _chosen(annotations: list[Any]) -> dict[str, Any] | None:
    """The annotation that decides a task: a ground-truth one, else the latest submitted;
    cancelled (skipped) ones never count."""
    live = [a for a in annotations if isinstance(a, dict) and not a.get("was_cancelled")]
    if not live:
        return None
    truth = [a for a in live if a.get("ground_truth")]
    return max(truth or live, key=lambda a: str(a.get("updated_at") or a.get("created_at") or ""))


def read_export(document: Any, source: str, sizes: Mapping[str, tuple[int, int]]) -> tuple[list[Reviewed], int]:
    """The reviewed images of a Label Studio JSON export (the parsed document) whose tasks came
    from an lxn export with images of `sizes` ({file_name: (width, height)}), and how many
    tasks nobody reviewed. Any problem anywhere raises one ReviewError listing them."""
    if isinstance(document, dict) and "images" in document:
        raise ReviewError(source, ["this is a COCO file, not Label Studio JSON (give it as it is: the format is told apart)"])
    if not isinstance(document, list):
        raise ReviewError(source, ["a Label Studio JSON export is a list of tasks"])
    if document and isinstance(document[0], dict) and "data" not in document[0] and "image" in document[0]:
        raise ReviewError(source, ["this is Label Studio's JSON-MIN export, which has no box sizes: export as JSON"])
    problems: list[str] = []
    reviewed: list[Reviewed] = []
    unreviewed = 0
    seen: dict[str, int] = {}
    for i, entry in enumerate(document):
        where = f"task {entry.get('id', i) if isinstance(entry, dict) else i}"
        data = entry.get("data") if isinstance(entry, dict) else None
        file_name = data.get("lxn_file") if isinstance(data, dict) else None
        if not isinstance(file_name, str) or file_name not in sizes:
            problems.append(f"{where} is not from this export (data.lxn_file {file_name!r})")
            continue
        if file_name in seen:
            problems.append(f"{where} and task {seen[file_name]} are both {file_name}: import the tasks once")
            continue
        seen[file_name] = entry.get("id", i)
        annotations = entry.get("annotations", [])
        if not isinstance(annotations, list):
            problems.append(f"{where}: annotations is not a list")
            continue
        chosen = _chosen(annotations)
        if chosen is None:
            unreviewed += 1
            continue
        width, height = sizes[file_name]
        boxes = []
        for n, result in enumerate(chosen.get("result") or []):
            at = f"{where} ({file_name}) result {result.get('id', n) if isinstance(result, dict) else n}"
            if not isinstance(result, dict) or result.get("type") not in ("rectanglelabels", "rectangle"):
                continue  # choices, text and other tags say nothing about boxes
            value = result.get("value")
            if not isinstance(value, dict) or not all(_number(value.get(k)) for k in ("x", "y", "width", "height")):
                problems.append(f"{at}: x, y, width and height must be numbers")
                continue
            labels = value.get("rectanglelabels")
            if not isinstance(labels, list) or len(labels) != 1 or not isinstance(labels[0], str) or not labels[0].strip():
                problems.append(f"{at}: a box needs exactly one brand label, got {labels!r}")
                continue
            seen_w, seen_h = result.get("original_width"), result.get("original_height")
            if _number(seen_w) and _number(seen_h) and seen_w > 0 and seen_h > 0 \
                    and abs(seen_w / seen_h - width / height) > _ASPECT_TOLERANCE * width / height:
                problems.append(f"{at}: the tool showed a {seen_w}x{seen_h} image, the export's is {width}x{height}")
                continue
            boxes.append({"id": result.get("id", n), "label": labels[0].strip(), "box": _envelope(value, width, height)})
        reviewed.append(Reviewed(file_name, boxes))
    if problems:
        raise ReviewError(source, problems)
    return reviewed, unreviewed
