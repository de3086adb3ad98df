"""The prepared-dataset format: what `jobs/prepare.py` writes and `jobs/train.py` reads.

    OUT/manifest.json            classes, counts per split and class, mean/std, dedup stats, ...
    OUT/split=train/*.parquet    one row per kept image (columns: SCHEMA; Hive-style partitions)
    OUT/split=val/*.parquet
    OUT/split=test/*.parquet
    OUT/quarantine.json          files that could not be used, with the reason

Box-labelled sources (COCO, BelgaLogos) keep their boxes in the `boxes` column, rescaled with
the stored copy; `manifest.box_counts` counts them per split.

The manifest is written last, so a dataset without one is incomplete and is refused.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import numpy as np
import pyarrow as pa

__all__ = ["SPLITS", "SCHEMA", "FORMAT_VERSION", "Manifest", "DatasetError", "read_manifest", "split_uri",
           "moves_to_train", "val_share"]

SPLITS = ("train", "val", "test")
# 2: images are stored by their shorter side (`store_side`), not their longer; version 1 data
# trained wide images upsampled from a few dozen rows, and is refused (prepare it again).
FORMAT_VERSION = 2

SCHEMA = pa.schema(
    [
        pa.field("image", pa.binary()),            # JPEG: lxn.presets.store_copy (shorter side <= store_side)
        pa.field("label", pa.int32()),             # index into manifest.classes
        pa.field("class_name", pa.string()),
        pa.field("split", pa.string()),
        pa.field("source_uri", pa.string()),
        pa.field("phash", pa.uint64()),            # 64-bit perceptual hash of the source image
        pa.field("group", pa.int64()),             # duplicate group id (singletons have their own)
        pa.field("width", pa.int32()),             # of the source image
        pa.field("height", pa.int32()),
        # Box-labelled formats (readers.BOX_FORMATS): the marks, in the stored copy's pixels,
        # labels indexing manifest.classes; [] for an image with none. Null for other formats.
        pa.field("boxes", pa.list_(pa.struct([("label", pa.int32()), ("x0", pa.float32()), ("y0", pa.float32()),
                                              ("x1", pa.float32()), ("y1", pa.float32())]))),
    ]
)


class DatasetError(ValueError):
    """A dataset is missing, incomplete or unusable; the message says what to do."""


@dataclasses.dataclass(frozen=True)
class Manifest:
    classes: list[str]
    counts: dict[str, dict[str, int]]              # split -> class -> images
    mean: list[float]
    std: list[float]
    source: str = ""
    format: str = ""
    seed: int = 0
    duplicates: dict[str, Any] = dataclasses.field(default_factory=dict)
    quarantined: int = 0
    code_version: str = ""
    created_at: str = ""
    store_side: int = 0                            # stored images' shorter side (smaller originals: their own)
    format_version: int = FORMAT_VERSION
    box_counts: dict[str, int] = dataclasses.field(default_factory=dict)  # split -> boxes; empty: no boxes kept
    extra: dict[str, Any] = dataclasses.field(default_factory=dict)

    @property
    def has_boxes(self) -> bool:
        """True when the rows carry boxes (a box-labelled source format): a detector can train on it."""
        return bool(self.box_counts)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def split_size(self, split: str) -> int:
        return sum(self.counts.get(split, {}).values())

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "Manifest":
        data = json.loads(text)
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})

    def check_image_size(self, image_size: int) -> None:
        """Refuse a training size the stored images cannot serve without upsampling them."""
        if image_size > self.store_side:
            raise DatasetError(
                f"the prepared images are stored with their shorter side at {self.store_side} px: train at "
                f"--image-size {self.store_side} or less, or prepare again with --store-side {image_size}"
            )

    def check_trainable(self, task: str = "classify") -> None:
        """Refuse a dataset that cannot train a classifier (every class needs training images) or
        a detector (it needs boxes: an image's class is only its largest mark), naming the problem."""
        if task == "detect":
            if not self.box_counts.get("train"):
                raise DatasetError("the train split has no boxes: a detector learns from box-labelled images "
                                   "(prepare with --format coco or belgalogos)")
        elif self.num_classes < 2:
            raise DatasetError(f"the dataset has {self.num_classes} class(es); a classifier needs at least 2")
        empty = [c for c in self.classes if self.counts.get("train", {}).get(c, 0) == 0]
        if empty and task != "detect":
            raise DatasetError(
                f"{len(empty)} class(es) have no training images: {', '.join(empty[:10])}"
                f"{' ...' if len(empty) > 10 else ''}; add images or remove the class folders and prepare again"
            )
        for split in ("val", "test"):
            if self.split_size(split) == 0:
                raise DatasetError(f"the {split} split is empty; prepare the dataset with more images per class")


def split_uri(root: str, split: str) -> str:
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    return root.rstrip("/") + f"/split={split}"


def read_manifest(root: str) -> Manifest:
    """The manifest of a prepared dataset, or a DatasetError saying why there is none."""
    from lxn import storage

    uri = root.rstrip("/") + "/manifest.json"
    try:
        text = storage.read_text(uri)
    except FileNotFoundError:
        raise DatasetError(
            f"no prepared dataset at {root} (missing manifest.json); run "
            f"`python jobs/prepare.py --source <images> --out {root}` first"
        ) from None
    manifest = Manifest.from_json(text)
    if manifest.format_version != FORMAT_VERSION:
        raise DatasetError(f"{uri} has format version {manifest.format_version}; this lxn reads {FORMAT_VERSION}: "
                           "prepare the dataset again with jobs/prepare.py")
    return manifest


def moves_to_train(groups: np.ndarray, fraction: float) -> np.ndarray:
    """Which validation rows `jobs/train.py --train-on-val FRACTION` also trains on, by their
    duplicate group (a group is never split) through a fixed hash (splitmix64): the same rows in
    every run and on every worker, and a larger fraction only adds rows."""
    z = np.asarray(groups, dtype=np.int64).view(np.uint64) + np.uint64(0x9E3779B97F4A7C15)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    z = z ^ (z >> np.uint64(31))
    return (z >> np.uint64(11)).astype(np.float64) / 2.0**53 < fraction


def val_share(batch: pa.Table, fraction: float, moved: bool) -> pa.Table:
    """The rows of a validation batch that `moves_to_train` moves (`moved`) or keeps, less `group`."""
    keep = moves_to_train(batch["group"].to_numpy(zero_copy_only=False), fraction)
    return batch.filter(pa.array(keep if moved else ~keep)).drop_columns(["group"])
