"""The box contract: how lxn writes a labelled box, what makes one unusable, and how boxes follow
their image when it is resized.

    {"label": "<brand>", "box": [x0, y0, x1, y1]}   pixels of the image as stored, x1/y1 exclusive

Every reader that keeps boxes (COCO, FlickrLogos-32, BelgaLogos) converts to this form and
checks it here; a box that is not usable is a `BoxProblem` with one of `PROBLEM_KINDS`, never
dropped in silence. Labelling tools round to the pixel, so a box that leaves the image by at most
`EDGE_TOLERANCE` pixels is clipped, not refused.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Sequence
from typing import Any

__all__ = ["EDGE_TOLERANCE", "PROBLEM_KINDS", "BoxProblem", "BoxError", "check_box", "clean_boxes", "scale_boxes",
           "box_area"]

EDGE_TOLERANCE = 1.0
PROBLEM_KINDS = {
    "not_numbers": "coordinates that are not four finite numbers",
    "degenerate": "x1 < x0 or y1 < y0 (corners swapped, or a negative COCO width/height)",
    "empty": "zero width or height",
    "outside": f"more than {EDGE_TOLERANCE:g} px outside the image",
    "unknown_class": "a label that is not one of the dataset's classes",
}


@dataclasses.dataclass(frozen=True)
class BoxProblem:
    where: str      # the image (URI or file name) and, where the format has one, the annotation id
    kind: str       # a key of PROBLEM_KINDS
    detail: str

    def __str__(self) -> str:
        return f"{self.where}: {self.kind} box ({self.detail})"


class BoxError(ValueError):
    """Unusable boxes in a dataset; the message lists the first ones and the count of each kind."""

    def __init__(self, source: str, problems: Sequence[BoxProblem], shown: int = 10) -> None:
        counts: dict[str, int] = {}
        for problem in problems:
            counts[problem.kind] = counts.get(problem.kind, 0) + 1
        summary = ", ".join(f"{n} {kind}" for kind, n in sorted(counts.items()))
        listed = "; ".join(str(p) for p in problems[:shown]) + ("; ..." if len(problems) > shown else "")
        super().__init__(f"{source}: {len(problems)} unusable box(es) ({summary}): {listed}. "
                         "Fix them in the labelling tool and export again")
        self.problems = list(problems)
        self.counts = counts


def box_area(box: Sequence[float]) -> float:
    return max(0.0, box[2] - box[0]) * max(0.0, box[3] - box[1])


def check_box(box: Any, width: int, height: int) -> tuple[list[float] | None, str | None, str]:
    """(the box clipped to the image, None, "") or (None, problem kind, detail)."""
    try:
        x0, y0, x1, y1 = (float(v) for v in box)
    except (TypeError, ValueError):
        return None, "not_numbers", f"got {box!r}"
    if not all(math.isfinite(v) for v in (x0, y0, x1, y1)):
        return None, "not_numbers", f"got {[x0, y0, x1, y1]}"
    if x1 < x0 or y1 < y0:
        return None, "degenerate", f"[{x0:g}, {y0:g}, {x1:g}, {y1:g}]"
    if x1 == x0 or y1 == y0:
        return None, "empty", f"[{x0:g}, {y0:g}, {x1:g}, {y1:g}]"
    t = EDGE_TOLERANCE
    if x0 < -t or y0 < -t or x1 > width + t or y1 > height + t:
        return None, "outside", f"[{x0:g}, {y0:g}, {x1:g}, {y1:g}] in a {width}x{height} image"
    return [max(0.0, x0), max(0.0, y0), min(float(width), x1), min(float(height), y1)], None, ""


def clean_boxes(where: str, boxes: Iterable[dict[str, Any]], width: int, height: int,
                classes: set[str] | None = None) -> tuple[list[dict[str, Any]], list[BoxProblem]]:
    """The usable boxes of one image in the contract's form (clipped), and the problems of the rest."""
    kept: list[dict[str, Any]] = []
    problems: list[BoxProblem] = []
    for item in boxes:
        label, box = item.get("label"), item.get("box")
        ident = f"{where} (annotation {item['id']})" if "id" in item else where
        if classes is not None and label not in classes:
            problems.append(BoxProblem(ident, "unknown_class", f"label {label!r}"))
            continue
        clipped, kind, detail = check_box(box, width, height)
        if kind is not None:
            problems.append(BoxProblem(ident, kind, detail))
            continue
        kept.append({"label": label, "box": clipped})
    return kept, problems


def scale_boxes(boxes: Iterable[dict[str, Any]], from_size: tuple[int, int], to_size: tuple[int, int]) -> list[dict[str, Any]]:
    """Boxes of an image of `from_size` (width, height), on the same image resized to `to_size`."""
    sx, sy = to_size[0] / from_size[0], to_size[1] / from_size[1]
    return [{**b, "box": [b["box"][0] * sx, b["box"][1] * sy, b["box"][2] * sx, b["box"][3] * sy]} for b in boxes]
