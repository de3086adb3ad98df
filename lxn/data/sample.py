"""What every dataset reader yields: one labelled image (`Sample`), and the name of the class of
images without a logo. Its own module so that format modules (lxn.data.coco) and the readers'
dispatch (lxn.data.readers) can both build on it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["Sample", "NO_LOGO"]

# The class of images that show no (annotated) logo, spelled as FlickrLogos-32 spells it.
NO_LOGO = "no-logo"


@dataclass(frozen=True)
class Sample:
    """One labelled image.

    `label` is the canonical class name used downstream. `official_split` is the dataset's own
    split this image belongs to, when it has one (FlickrLogos-32: "train", "val", "test"). `extra`
    holds small, JSON-friendly metadata of the reader (e.g. boxes in lxn.data.boxes' form); it is
    excluded from hashing so samples can still go in sets.
    """

    uri: str
    label: str
    official_split: str | None = None
    extra: dict[str, Any] = field(default_factory=dict, hash=False)
