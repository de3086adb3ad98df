"""Labelled sets: where evaluation's images and their true brands come from.

Three kinds, one shape: rows of `uri`, `brand` (null: the image shows no logo) and `size`
(-1 unknown), plus `data` (the bytes) for a prepared split, whose images are already stored.

* a prepared dataset's split (`--data PREPARED --split test`): the stored copies training saw;
* a CSV or Parquet manifest with `uri` and `brand` columns (an empty brand: no logo; relative
  URIs resolve against the manifest's folder);
* a dataset root in any layout `lxn.data.readers` reads (ImageFolder by default: `<brand>/...`,
  `no-logo/...`).
"""

from __future__ import annotations

import dataclasses
import io
import logging
from collections import Counter
from typing import Any

import pyarrow as pa

from lxn import storage
from lxn.data.readers import NO_LOGO, READERS, iter_samples
from lxn.evidence import NO_LOGO_IMAGE

__all__ = ["LabelledSet", "from_prepared", "from_manifest", "from_layout", "open_labelled", "label_indices",
           "MANIFEST_SUFFIXES"]

log = logging.getLogger(__name__)

MANIFEST_SUFFIXES = (".csv", ".parquet")


@dataclasses.dataclass
class LabelledSet:
    """A labelled set: `describe` names it in reports; `brands` counts its images per brand
    (None: no logo). `rows` is a pyarrow table (uri, brand, size), or None for a prepared split,
    which `prepared` names (read by Ray Data where the images are, never on the driver)."""

    describe: str
    brands: Counter
    rows: pa.Table | None = None
    prepared: str | None = None

    @property
    def count(self) -> int:
        return sum(self.brands.values())


def _no_logo(brand: Any) -> str | None:
    text = "" if brand is None else str(brand).strip()
    return None if text in ("", NO_LOGO) else text


def from_prepared(root: str, split: str) -> LabelledSet:
    from lxn.data.prepared import read_manifest, split_uri

    manifest = read_manifest(root)
    counts = manifest.counts.get(split, {})
    brands = Counter({_no_logo(name): n for name, n in counts.items() if n})
    return LabelledSet(f"the {split} split of {root}", brands, prepared=split_uri(root, split))


def _table(uris: list[str], brands: list[str | None]) -> pa.Table:
    return pa.table({"uri": pa.array(uris, pa.string()), "brand": pa.array(brands, pa.string()),
                     "size": pa.array([-1] * len(uris), pa.int64())})


def from_manifest(uri: str) -> LabelledSet:
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    data = storage.read_bytes(uri)
    try:
        table = pq.read_table(io.BytesIO(data)) if uri.lower().endswith(".parquet") else pacsv.read_csv(
            io.BytesIO(data), convert_options=pacsv.ConvertOptions(column_types={"uri": pa.string(), "brand": pa.string()},
                                                                   strings_can_be_null=True))
    except pa.ArrowInvalid as exc:
        raise ValueError(f"{uri} is not a readable manifest: {exc}") from None
    missing = {"uri", "brand"} - set(table.column_names)
    if missing:
        raise ValueError(f"{uri} has no {sorted(missing)} column(s): a labelled manifest needs `uri` and `brand` "
                         f"(an empty brand: no logo); it has {table.column_names}")
    folder = uri.rsplit("/", 1)[0] if "/" in uri else "."
    uris, brands = [], []
    for i, (text, brand) in enumerate(zip(table["uri"].to_pylist(), table["brand"].to_pylist())):
        if not text or not str(text).strip():
            raise ValueError(f"{uri}: row {i + 1} has an empty uri")
        text = str(text).strip()
        uris.append(storage.normalize_uri(text if "://" in text or text.startswith("/") else storage.join(folder, text)))
        brands.append(_no_logo(brand))
    return LabelledSet(uri, Counter(brands), rows=_table(uris, brands))


def from_layout(root: str, layout: str = "imagefolder", **options: Any) -> LabelledSet:
    uris, brands = [], []
    for sample in iter_samples(layout, root, **options):
        uris.append(sample.uri)
        brands.append(_no_logo(sample.label))
    return LabelledSet(f"{root} ({layout})", Counter(brands), rows=_table(uris, brands))


def open_labelled(*, data: str | None = None, split: str = "test", labelled: str | None = None,
                  layout: str = "auto") -> LabelledSet:
    """The labelled set the flags name, refused (ValueError, with what to do) when empty or ambiguous."""
    if (data is None) == (labelled is None):
        raise ValueError("name one labelled set: --data PREPARED [--split test] or --labelled URI")
    if data is not None:
        found = from_prepared(storage.normalize_uri(data), split)
    else:
        uri = storage.normalize_uri(labelled)
        if layout == "auto":
            layout = "manifest" if uri.lower().endswith(MANIFEST_SUFFIXES) else "imagefolder"
        if layout == "manifest":
            found = from_manifest(uri)
        elif layout in READERS:
            found = from_layout(uri, layout, **({"split": "test"} if layout == "flickrlogos32" else {}))
        else:
            raise ValueError(f"--labelled-format must be auto, manifest or one of {sorted(READERS)}, got {layout!r}")
    if found.count == 0:
        raise ValueError(f"{found.describe} holds no labelled images: nothing to evaluate")
    return found


def label_indices(brands: list[str | None], class_names: list[str], no_logo_class: str = NO_LOGO) -> list[int]:
    """Each brand's index in a model's classes (None: the no-logo class, or NO_LOGO_IMAGE for a
    model without one); a ValueError naming the brands the model cannot predict, since its
    figures on them would be meaningless."""
    index = {name: i for i, name in enumerate(class_names)}
    unknown = sorted({b for b in brands if b is not None and b not in index})
    if unknown:
        raise ValueError(f"the labelled set has {len(unknown)} brand(s) the model does not know: "
                         f"{', '.join(unknown[:10])}{' ...' if len(unknown) > 10 else ''}; evaluate on a set "
                         "of the model's classes (its class list is in the model's metadata)")
    # A model without the no-logo class is still scored on no-logo images (lxn.evidence.NO_LOGO_IMAGE):
    # they are right when no brand reaches the threshold.
    no_logo = index.get(no_logo_class, NO_LOGO_IMAGE)
    return [no_logo if b is None else index[b] for b in brands]
