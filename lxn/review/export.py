"""`jobs/review.py export`: a night's rows a person should look at, as a folder a labelling tool
imports (`lxn.review.folder`): the images as lxn decoded them, the model's boxes as Label Studio
pre-annotations and as COCO, and the manifest `import` reads the tool's answer against."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from lxn import storage
from lxn.config import setting
from lxn.data.coco import coco_document
from lxn.images import encode_jpeg, safe_decode
from lxn.redact import redact
from lxn.nightly.history import latest_date, reports_of, summaries_between
from lxn.review import labelstudio
from lxn.review.folder import MANIFEST_VERSION, REASONS, ExportFolder, require_new
from lxn.review.select import Limits, Picked, pick_for_review
from lxn.scan.layout import Layout, check_date

__all__ = ["ExportConfig", "export"]

log = logging.getLogger(__name__)

_QUALITY = 95   # the copies are training data next round: barely lossy
_THREADS = 8


@dataclasses.dataclass(frozen=True)
class ExportConfig:
    scans: str = setting("lxn-local/brand-scans", "report root of the scans (local or s3://)", uri="input")
    night: str | None = setting(None, "the night to review, YYYY-MM-DD (default: the latest under --scans)")
    out: str | None = setting(None, "a new folder for the export (default: SCANS/_review/<night>)", uri="output")
    band: float = setting(0.15, "rows whose confidence is within this of the threshold are doubtful")
    queue: int = setting(200, "at most this many doubtful rows, nearest the threshold first")
    unknown: int = setting(100, "at most this many unknown marks")
    prototype: int = setting(100, "at most this many hits of brands onboarded from examples")
    audit: int = setting(50, "this many confident hits drawn at random, to audit what nobody doubts")
    seed: int = setting(0, "seed of the audit sample")
    image_root: str | None = setting(None, "URL prefix under which the tool reads OUT/images/ (e.g. Label Studio's "
                                     "/data/local-files/?d=...); default: tasks name each image by its scanned URI")
    brand: list[str] = setting([], "more brand labels for the labelling interface")

    def __post_init__(self) -> None:
        if self.night is not None:
            check_date(self.night, "--night")
        if not 0 < self.band < 1:
            raise ValueError(f"--band is a confidence distance within (0, 1), got {self.band}")
        if min(self.queue, self.unknown, self.prototype, self.audit) < 0:
            raise ValueError("--queue, --unknown, --prototype and --audit are counts, at least 0")
        if self.image_root is not None and not self.image_root.startswith(("https://", "http://", "/")):
            raise ValueError(f"--image-root is a URL or a path on the tool's server, got {self.image_root!r}")
        if self.image_root is not None and "@" in self.image_root.split("?")[0]:
            raise ValueError("--image-root must not carry credentials (user:password@): the tasks file is shared")


def _file_name(n: int, uri: str) -> str:
    return f"{n:05d}-{hashlib.sha1(uri.encode()).hexdigest()[:10]}.jpg"


def _copy(picked: Picked) -> tuple[bytes | None, str | None]:
    """The JPEG of the image as the scan saw it, or why there is none any more."""
    hit = picked.hit
    data, kind, reason = storage.fetch(hit.uri)
    if data is None:
        return None, f"{kind}: {reason}"
    image, kind, reason = safe_decode(data)
    if image is None:
        return None, f"{kind}: {reason}"
    height, width = image.pixels.shape[:2]
    if (width, height) != (hit.width, hit.height):
        return None, f"changed: {width}x{height} now, {hit.width}x{hit.height} when scanned"
    return encode_jpeg(image.pixels, quality=_QUALITY), None


def _item(picked: Picked, file_name: str) -> dict[str, Any]:
    hit = picked.hit
    predicted = [{"label": m["brand"], "box": [int(m["x0"]), int(m["y0"]), int(m["x1"]), int(m["y1"])],
                  "confidence": round(float(m["confidence"]), 4)}
                 for m in hit.marks if m.get("brand") and m["x1"] > m["x0"] and m["y1"] > m["y0"]]
    return {"file_name": file_name, "uri": hit.uri, "scan_id": hit.scan_id, "reason": picked.reason,
            "brand": hit.brand, "source": hit.source, "confidence": round(hit.confidence, 4),
            "margin": round(hit.margin, 4), "width": hit.width, "height": hit.height, "predicted": predicted}


def export(config: ExportConfig) -> dict[str, Any]:
    """Write the review export of one night; returns what was written."""
    layout = Layout(config.scans)
    storage.check_listable(layout.out, "--scans")
    night = config.night or latest_date(layout)
    if night is None:
        raise ValueError(f"no night under {layout.out}: run a scan first, or give --scans")
    summaries = summaries_between(layout, night, night)
    if not summaries:
        raise ValueError(f"no committed scan under {layout.out} is dated {night}")
    folder = ExportFolder(require_new(config.out or storage.join(layout.out, "_review", night), "review export"))
    limits = Limits(config.band, config.queue, config.unknown, config.prototype, config.audit, config.seed)
    picked, named = pick_for_review(reports_of(summaries), limits)
    names = [_file_name(n, p.hit.uri) for n, p in enumerate(picked)]

    items, gone = [], []
    with ThreadPoolExecutor(max_workers=_THREADS) as pool:
        for p, name, (jpeg, why) in zip(picked, names, pool.map(_copy, picked)):
            if jpeg is None:
                gone.append({"uri": p.hit.uri, "why": why})
                continue
            storage.write_bytes(folder.image(name), jpeg, content_type="image/jpeg")
            items.append(_item(p, name))
    if gone:
        log.warning("%d picked image(s) could not be exported, e.g. %s: %s", len(gone), gone[0]["uri"], gone[0]["why"])

    models = sorted({f"{s['model'].get('name')}/{s['model'].get('version')}" for s in summaries if s.get("model")})
    brands = sorted(named | {m["label"] for item in items for m in item["predicted"]}
                    | {b for s in summaries for b in (s.get("brands") or {})} | set(config.brand))
    model = ", ".join(models) or "lxn"
    storage.write_text(folder.coco, json.dumps(coco_document(
        ({"file_name": i["file_name"], "width": i["width"], "height": i["height"],
          "boxes": [{"label": m["label"], "box": m["box"]} for m in i["predicted"]]} for i in items), brands)))
    tasks = [labelstudio.task(i, f"{config.image_root.rstrip('/')}/{i['file_name']}" if config.image_root else i["uri"], model)
             for i in items]
    storage.write_text(folder.tasks, json.dumps(tasks, indent=1))
    storage.write_text(folder.label_config, labelstudio.label_config(brands))
    counts = {reason: sum(1 for i in items if i["reason"] == reason) for reason in REASONS}
    manifest = {"version": MANIFEST_VERSION, "night": night, "scans": layout.out, "models": models, "brands": brands,
                "limits": dataclasses.asdict(limits), "counts": counts, "not_exported": gone, "items": items}
    storage.write_text(folder.manifest, json.dumps(redact(manifest), indent=1))  # last: the export is finished
    return {"export": folder.root, "night": night, "rows": len(items), "by_reason": counts, "not_exported": len(gone),
            "tasks": folder.tasks, "coco": folder.coco, "label_config": folder.label_config}
