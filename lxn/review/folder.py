"""The export folder, the one contract between `jobs/review.py export` and `import`::

    EXPORT/images/<file>        each exported image, as lxn decoded it (the pixels its boxes refer to)
    EXPORT/annotations.json     COCO instances: the model's boxes (for CVAT and other COCO tools)
    EXPORT/tasks.json           Label Studio tasks, the model's boxes as pre-annotations
    EXPORT/label_config.xml     the Label Studio labelling interface of those tasks
    EXPORT/review.json          the manifest, written last: every exported row and why

An export without review.json is unfinished and `import` refuses it.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from lxn import storage

__all__ = ["ExportFolder", "MANIFEST_VERSION", "REASONS", "require_new"]

MANIFEST_VERSION = 1
# Why a row is exported, in the order the tasks are written.
REASONS = {
    "queue": "within the band around the threshold (either side)",
    "unknown": "a mark the model saw but could not name",
    "prototype": "a hit of a brand onboarded from examples",
    "audit": "a random sample of confident hits",
}


@dataclasses.dataclass(frozen=True)
class ExportFolder:
    root: str

    def __post_init__(self) -> None:
        object.__setattr__(self, "root", storage.normalize_uri(self.root))

    @property
    def images(self) -> str:
        return storage.join(self.root, "images")

    def image(self, file_name: str) -> str:
        return storage.join(self.images, file_name)

    @property
    def coco(self) -> str:
        return storage.join(self.root, "annotations.json")

    @property
    def tasks(self) -> str:
        return storage.join(self.root, "tasks.json")

    @property
    def label_config(self) -> str:
        return storage.join(self.root, "label_config.xml")

    @property
    def manifest(self) -> str:
        return storage.join(self.root, "review.json")

    def read_manifest(self) -> dict[str, Any]:
        """The manifest, checked; a folder without one is an unfinished (or not an) export."""
        if not storage.exists(self.manifest):
            raise FileNotFoundError(f"{self.manifest} not found: {self.root} is not a finished `jobs/review.py export` "
                                    "(run the export again)")
        try:
            manifest = json.loads(storage.read_text(self.manifest))
        except json.JSONDecodeError as error:
            raise ValueError(f"{self.manifest} is not JSON: {error}") from None
        if not isinstance(manifest, dict) or manifest.get("version") != MANIFEST_VERSION \
                or not isinstance(manifest.get("items"), list):
            raise ValueError(f"{self.manifest} is not an lxn review manifest (version {MANIFEST_VERSION})")
        return manifest


def require_new(root: str, what: str) -> str:
    """`root`, if nothing is written under it yet: an export and an import are each one round,
    written once, so a second run never mixes two rounds in one folder."""
    root = storage.check_writable(root, what)
    try:
        first = next(iter(storage.iter_objects(root)), None)
    except FileNotFoundError:
        return root
    if first is not None:
        raise FileExistsError(f"the {what} {root} already holds files (e.g. {first.uri}): give a new folder for each round")
    return root
