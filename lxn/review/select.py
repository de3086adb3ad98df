"""Which rows of a night's reports go to review: the doubtful ones nearest the threshold, unknown
marks, prototype (onboarded brand) hits, and a seeded random sample of confident hits for audit.

The first three are the nightly page's lists (`lxn.nightly.picks`) with larger bounds; the audit
sample is a reservoir over the same record batches, so memory stays one batch and the bounds.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from lxn import storage
from lxn.data.sample import NO_LOGO
from lxn.nightly.picks import REPORT_COLUMNS, Bounds, Hit, Picks

__all__ = ["Limits", "Picked", "pick_for_review"]

_READ_BATCH = 65_536


@dataclasses.dataclass(frozen=True)
class Limits:
    band: float = 0.15     # the queue: |confidence - threshold| below this
    queue: int = 200
    unknown: int = 100
    prototype: int = 100
    audit: int = 50        # confident hits (at least `band` above the threshold), drawn at random
    seed: int = 0


@dataclasses.dataclass(frozen=True)
class Picked:
    hit: Hit
    reason: str  # a key of lxn.review.folder.REASONS


class _Audit:
    """A uniform sample of `k` confident hits: each gets a seeded random key, the `k` smallest stay."""

    def __init__(self, k: int, band: float, seed: int) -> None:
        self.k, self.band = k, band
        self.rng = np.random.default_rng(seed)
        self.kept: list[tuple[float, Hit]] = []

    def add(self, table: pa.Table, threshold: float) -> None:
        ok = table.filter(pc.equal(table["status"], "ok"))
        if not ok.num_rows or not self.k:
            return
        conf = np.nan_to_num(ok["confidence"].to_numpy(zero_copy_only=False).astype(np.float64), nan=0.0)
        source = np.asarray(ok["brand_source"].to_pylist(), dtype=object)
        named = np.asarray([b is not None for b in ok["brand"].to_pylist()])
        eligible = np.flatnonzero(named & ((source == "classifier") | (source == "detector")) & (conf >= threshold + self.band))
        keys = self.rng.random(ok.num_rows)[eligible]  # drawn for every ok row: the sample does not depend on batching of eligibility
        if not len(eligible):
            return
        best = np.argsort(keys, kind="stable")[: self.k]
        rows = ok.take(pa.array(eligible[best], pa.int64())).to_pylist()
        self.kept = sorted(self.kept + [(float(keys[i]), Hit.from_row(row, threshold)) for i, row in zip(best, rows)],
                           key=lambda pair: pair[0])[: self.k]


def pick_for_review(reports: Iterable[tuple[str, float]], limits: Limits = Limits()) -> tuple[list[Picked], set[str]]:
    """The rows to review from committed report files, given as (URI, the threshold its scan used):
    queue (nearest the threshold first), unknown, prototype, audit; an image is listed once, for
    the first reason it has. Also every brand the reports name (among any row's top-k), which is
    what the model knows as far as the night shows."""
    reports = list(reports)
    bounds = Bounds(per_brand=0, queue=limits.queue, unknown=limits.unknown, prototype=limits.prototype,
                    error_examples=0)
    picks = Picks(reports[0][1] if reports else 0.5, limits.band, bounds)
    audit = _Audit(limits.audit, limits.band, limits.seed)
    brands: set[str] = set()
    for uri, threshold in reports:
        filesystem, path = storage.arrow_filesystem(uri)
        with filesystem.open_input_file(path) as source:
            for batch in pq.ParquetFile(source).iter_batches(batch_size=_READ_BATCH, columns=REPORT_COLUMNS):
                table = pa.Table.from_batches([batch])
                picks.add(table, threshold)
                audit.add(table, threshold)
                brands.update(pc.unique(pc.list_flatten(table["top_brands"])).to_pylist())
    picked: list[Picked] = []
    seen: set[str] = set()
    for reason, hits in (("queue", picks.queue), ("unknown", picks.unknown), ("prototype", picks.prototype),
                         ("audit", [hit for _, hit in audit.kept])):
        for hit in hits:
            if hit.uri not in seen:
                seen.add(hit.uri)
                picked.append(Picked(hit, reason))
    return picked, {b for b in brands if b and b != NO_LOGO}
