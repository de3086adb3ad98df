"""The scan report: staging and the atomic commit (its columns: schema.py; its paths: layout.py).

Readers see whole scans or nothing. The report of a scan is a single file that appears at once:
it is written in staging and then moved into its partition (a rename on a local disk; a
server-side copy on S3, where an object becomes visible only when the copy completes; pyarrow
copies with one CopyObject request, so a report file can be at most 5 GB, tens of millions of
rows). Readers skip the rest: pyarrow ignores paths starting with `_` or `.`, and the DuckDB glob
`OUT/dt=*/*.parquet` matches only reports.

Staging, resume and commit:

* `_staging/<id>/listing/` holds the objects to scan (written once, reused by every attempt),
  `results/` the result rows, staged by the driver in parts of at most `--checkpoint-rows`
  rows, each part written whole (a killed job leaves whole parts only). A re-run of the scan
  skips the rows its parts hold, so at most one part's worth of work is redone.
* When every listed row has a result, `_COMMIT.json` (the intent: scan settings, listing
  counts, throughput) is written; from then on the scan is finished and only has to be
  published. `finish_commit` checks that the parts hold every listed row exactly once, merges
  them into the report, moves it into place, writes the summary, `covered.parquet` and finally
  `_SUCCESS`, then deletes the staging. Every step can be repeated: a job killed anywhere in
  there leaves an intent that the next scan job on the same OUT (any scan) finishes first.
* Everything read back is checked before it shapes a path or a row: an intent that names
  another scan or no real date, parts that repeat or invent rows, foreign files in staging make
  the folder `DamagedStaging`, which the next scan moves to `_quarantine/` and goes on.
* Only the holder of the report root's lease (lease.py) writes or recovers under it.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import logging
import os
import re
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

import lxn
from lxn import storage
from lxn.storage import FETCH_ERROR_KINDS
from lxn.images import ERROR_KINDS
from lxn.nightly import drift
from lxn.nightly.history import nights_before
from lxn.scan.layout import Layout, check_date, check_scan_id
from lxn.scan.schema import DETECTION_TYPE, REPORT_SCHEMA, STAGED_SCHEMA
from lxn.scan.state import CoveredSet, read_covered, write_covered

__all__ = [
    "REPORT_SCHEMA",
    "STAGED_SCHEMA",
    "DETECTION_TYPE",
    "FETCH_ERROR_KINDS",
    "SETTLED_ERROR_KINDS",
    "Layout",
    "StagedResults",
    "list_files",
    "read_table",
    "table_bytes",
    "staged_row_ids",
    "read_manifest",
    "committed_scans",
    "load_covered",
    "unfinished_scans",
    "write_intent",
    "finish_commit",
    "recover",
    "quarantine",
    "DamagedStaging",
]

log = logging.getLogger(__name__)

# Errors of the fetch (storage.FETCH_ERROR_KINDS) are not "covered": the next incremental scan
# tries the object again. Errors that the same bytes will always give: the object is settled until its ETag changes.
SETTLED_ERROR_KINDS = frozenset(ERROR_KINDS)

_ROW_GROUP_ROWS = 128_000
# The result parts StagedResults writes: part-<attempt: time hex>-<pid>-<sequence>.parquet
_PART_RE = re.compile(r"^part-[0-9a-f]{16}-\d+-\d{6,}\.parquet$")


class DamagedStaging(RuntimeError):
    """A staging folder whose files cannot be a committed scan (an unreadable or inconsistent
    intent, parts that repeat rows or hold unlisted ones, foreign files): it is never published."""


def list_files(directory: str, suffix: str = ".parquet") -> list[str]:
    """The files directly or indirectly below `directory` ending in `suffix`, sorted; [] if none."""
    try:
        return sorted(info.uri for info in storage.iter_objects(directory) if info.uri.endswith(suffix))
    except FileNotFoundError:
        return []


def table_bytes(table: pa.Table) -> bytes:
    """`table` as Parquet bytes (zstd), for writes that must land whole (`storage.write_bytes`)."""
    sink = io.BytesIO()
    pq.write_table(table, sink, compression="zstd")
    return sink.getvalue()


def read_table(uri: str, columns: list[str] | None = None) -> pa.Table:
    return pq.read_table(io.BytesIO(storage.read_bytes(uri)), columns=columns)


class StagedResults:
    """The driver's writer of result parts: buffers rows and stages them as whole Parquet files
    every `checkpoint_rows` rows or `checkpoint_seconds`, whichever comes first."""

    def __init__(self, directory: str, *, checkpoint_rows: int, checkpoint_seconds: float, clock=time.monotonic) -> None:
        self.directory = directory
        self.checkpoint_rows = checkpoint_rows
        self.checkpoint_seconds = checkpoint_seconds
        self.clock = clock
        # Parts sort by attempt, then sequence: the report keeps the order the rows were staged in.
        self.attempt = f"{time.time_ns():016x}-{os.getpid()}"
        self.sequence = 0
        self.rows = 0
        self._buffer: list[pa.Table] = []
        self._buffered = 0
        self._last_flush = clock()

    def add(self, table: pa.Table) -> None:
        if table.num_rows:
            self._buffer.append(table)
            self._buffered += table.num_rows
        if self._buffered >= self.checkpoint_rows or (
            self._buffered and self.clock() - self._last_flush >= self.checkpoint_seconds
        ):
            self.flush()

    def flush(self) -> None:
        self._last_flush = self.clock()
        if not self._buffered:
            return
        table = pa.concat_tables(self._buffer).cast(STAGED_SCHEMA)
        name = f"part-{self.attempt}-{self.sequence:06d}.parquet"
        storage.write_bytes(storage.join(self.directory, name), table_bytes(table))
        self.sequence += 1
        self.rows += table.num_rows
        self._buffer.clear()
        self._buffered = 0


def staged_row_ids(layout: Layout, scan_id: str) -> np.ndarray:
    """Row ids that the scan's staged parts already hold (sorted)."""
    parts = [read_table(uri, ["row_id"])["row_id"].to_numpy() for uri in list_files(layout.results(scan_id))]
    return np.sort(np.concatenate(parts)) if parts else np.zeros(0, dtype=np.int64)


def read_manifest(layout: Layout, scan_id: str) -> dict[str, Any] | None:
    """The `_SUCCESS` manifest of a committed scan, or None."""
    try:
        return json.loads(storage.read_text(layout.success(scan_id)))
    except FileNotFoundError:
        return None


def committed_scans(layout: Layout) -> Iterator[str]:
    """Ids of the committed scans under the report root (a folder whose name is no scan id is
    someone else's, and skipped)."""
    for uri in list_files(layout.scans(), suffix="/_SUCCESS"):
        name = storage.basename(uri.rsplit("/", 1)[0])
        try:
            yield check_scan_id(name, f"committed scan folder {uri}")
        except ValueError as exc:
            log.warning("skipped: %s", exc)


def load_covered(layout: Layout) -> CoveredSet:
    """The union of what the committed scans under a report root covered (state.py)."""
    arrays = []
    for scan_id in committed_scans(layout):
        try:
            arrays.append(read_covered(layout.covered(scan_id)))
        except FileNotFoundError:
            log.warning("committed scan %s has no covered.parquet; its objects will be scanned again", scan_id)
        except (pa.ArrowException, KeyError, ValueError) as exc:
            log.warning("committed scan %s has an unreadable covered.parquet (%s); its objects will be scanned "
                        "again", scan_id, exc)
    covered = CoveredSet.union(arrays)
    log.info("incremental state: %d objects covered by %d committed scans", len(covered), len(arrays))
    return covered


def write_intent(layout: Layout, scan_id: str, intent: dict[str, Any]) -> None:
    storage.write_text(layout.intent(scan_id), json.dumps(intent, indent=1, sort_keys=True))


def _expected_rows(layout: Layout, scan_id: str) -> np.ndarray:
    ids = [read_table(uri, ["row_id"])["row_id"].to_numpy() for uri in list_files(layout.listing(scan_id))]
    return np.concatenate(ids) if ids else np.zeros(0, dtype=np.int64)


class _Tally:
    """Counts for the summary, gathered while the parts are merged."""

    def __init__(self) -> None:
        self.status: Counter[str] = Counter()
        self.errors: Counter[str] = Counter()
        self.brands: Counter[str] = Counter()  # appearances: detections
        self.images_by_brand: Counter[str] = Counter()  # the `brand` column
        self.unknown = 0
        self.no_brand = 0
        self.confidence = np.zeros(len(drift.CONFIDENCE_BINS) - 1, dtype=np.int64)  # of the ok images
        self.covered: list[np.ndarray] = []

    @staticmethod
    def _values(column: pa.ChunkedArray) -> Counter[str]:
        counts = pc.value_counts(column.drop_null())
        return Counter(dict(zip(counts.field("values").to_pylist(), counts.field("counts").to_pylist())))

    def add(self, table: pa.Table) -> None:
        ok = pc.equal(table["status"], "ok")
        self.status.update(self._values(table["status"]))
        self.errors.update(self._values(table["error_kind"]))
        self.images_by_brand.update(self._values(table["brand"]))
        self.brands.update(self._values(pc.struct_field(pc.list_flatten(table["detections"]), "brand")))
        self.unknown += pc.sum(pc.equal(table["brand_source"], "unknown")).as_py() or 0
        self.no_brand += pc.sum(pc.and_(ok, pc.is_null(table["brand"]))).as_py() or 0
        self.confidence += drift.confidence_histogram(table["confidence"].filter(ok).to_numpy(zero_copy_only=False))
        settled = pc.or_(ok, pc.fill_null(pc.is_in(table["error_kind"], pa.array(sorted(SETTLED_ERROR_KINDS))), False))
        self.covered.append(table["key_hash"].filter(settled).to_numpy())

    def counts(self) -> dict[str, Any]:
        return {
            "scanned": sum(self.status.values()),
            "ok": self.status.get("ok", 0),
            "error": self.status.get("error", 0),
            "with_brand": sum(self.images_by_brand.values()),
            "no_brand": self.no_brand,
            "unknown_mark": self.unknown,
            "detections": sum(self.brands.values()),
        }


def _merge(layout: Layout, scan_id: str, staged_report: str) -> tuple[_Tally, int]:
    """Merge the result parts into one report file in staging; check every listed row appears
    exactly once. Returns the tally and the report's row count."""
    expected = _expected_rows(layout, scan_id)
    size = int(expected.max()) + 1 if len(expected) else 0
    wanted = np.zeros(size, dtype=bool)
    wanted[expected] = True
    seen = np.zeros(size, dtype=bool)
    tally = _Tally()
    filesystem, path = storage.arrow_filesystem(staged_report)
    _make_parent(staged_report)
    rows = 0
    pending: list[pa.Table] = []
    with filesystem.open_output_stream(path) as sink, pq.ParquetWriter(sink, REPORT_SCHEMA, compression="zstd") as writer:
        def write_pending() -> None:
            if pending:
                writer.write_table(pa.concat_tables(pending), row_group_size=_ROW_GROUP_ROWS)
                pending.clear()

        for uri in _parts(layout, scan_id):
            try:
                part = _conform(read_table(uri))
            except (pa.ArrowException, KeyError) as exc:
                raise DamagedStaging(f"scan {scan_id}: {uri} is not a result part ({exc}); not committing") from None
            ids = part["row_id"].to_numpy()
            if len(ids) and (ids.min() < 0 or ids.max() >= size or not wanted[ids].all()):
                raise DamagedStaging(f"scan {scan_id}: {uri} holds rows that are not in the listing; not committing")
            if seen[ids].any() or len(np.unique(ids)) != len(ids):
                raise DamagedStaging(f"scan {scan_id}: {uri} repeats rows staged before; not committing")
            seen[ids] = True
            tally.add(part)
            pending.append(part.drop_columns(["row_id", "key_hash"]))
            rows += part.num_rows
            if sum(t.num_rows for t in pending) >= _ROW_GROUP_ROWS:
                write_pending()
        missing = int((wanted & ~seen).sum())
        if missing:
            raise DamagedStaging(f"scan {scan_id}: {missing} listed rows have no result; re-run the scan to finish them")
        write_pending()
    return tally, rows


def _parts(layout: Layout, scan_id: str) -> list[str]:
    """The scan's staged result parts; a file there that StagedResults did not write is damage."""
    parts = list_files(layout.results(scan_id), suffix="")
    foreign = [uri for uri in parts if not _PART_RE.match(storage.basename(uri))]
    if foreign:
        raise DamagedStaging(f"scan {scan_id}: {foreign[0]} is not a result part lxn writes; not committing")
    return parts


def _read_intent(layout: Layout, scan_id: str) -> dict[str, Any]:
    """The scan's `_COMMIT.json`, checked like user input: it names this scan and a real date."""
    text = storage.read_text(layout.intent(scan_id))
    try:
        intent = json.loads(text)
        if not isinstance(intent, dict):
            raise ValueError("not a JSON object")
        if intent.get("scan_id") != scan_id:
            raise ValueError(f"it names scan {intent.get('scan_id')!r}, not the folder's {scan_id!r}")
        check_date(intent.get("date"), "its date")
    except ValueError as exc:
        raise DamagedStaging(f"scan {scan_id}: {layout.intent(scan_id)} is not a commit lxn wrote ({exc}); "
                             "not committing") from None
    return intent


def _conform(part: pa.Table) -> pa.Table:
    """A staged part in STAGED_SCHEMA. Parts staged by an older lxn (before detections,
    brand_source and embedding) get those columns as nulls, so a scan resumed across an upgrade
    still commits."""
    missing = [f for f in STAGED_SCHEMA if f.name not in part.column_names and f.nullable]
    for field in missing:
        part = part.append_column(field.name, pa.nulls(part.num_rows, field.type))
    return part.select(STAGED_SCHEMA.names).cast(STAGED_SCHEMA)


def _make_parent(uri: str) -> None:
    # Only local disks need directories; on S3 pyarrow would add empty "directory" marker objects.
    if not storage.is_s3(uri):
        os.makedirs(os.path.dirname(uri), exist_ok=True)


def finish_commit(layout: Layout, scan_id: str) -> dict[str, Any]:
    """Publish a finished scan (its intent is written): report, summary, covered set, `_SUCCESS`,
    then drop the staging. Idempotent; returns the manifest."""
    intent = _read_intent(layout, scan_id)
    date = intent["date"]
    staged, final = layout.staged_report(scan_id), layout.report(date, scan_id)
    tally, rows = _merge(layout, scan_id, staged)
    filesystem, staged_path = storage.arrow_filesystem(staged)
    _, final_path = storage.arrow_filesystem(final)
    _make_parent(final)
    filesystem.move(staged_path, final_path)  # local: rename; S3: copy, visible when complete
    report_bytes = filesystem.get_file_info(final_path).size

    manifest = dict(intent)
    manifest["report"] = {"uri": final, "rows": rows, "bytes": report_bytes}
    manifest["counts"] = {**intent.get("counts", {}), **tally.counts()}
    manifest["brands"] = dict(sorted(tally.brands.items(), key=lambda kv: (-kv[1], kv[0])))  # appearances
    manifest["images_by_brand"] = dict(sorted(tally.images_by_brand.items(), key=lambda kv: (-kv[1], kv[0])))
    manifest["errors_by_kind"] = dict(sorted(tally.errors.items(), key=lambda kv: (-kv[1], kv[0])))
    manifest["confidence_histogram"] = tally.confidence.tolist()
    # against the summaries already written for the nights before (this scan's own is not there yet)
    manifest["drift"] = drift.assess(manifest, nights_before(layout, date, drift.WINDOW_NIGHTS))
    manifest["committed_at"] = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    manifest["lxn_version"] = lxn.__version__
    text = json.dumps(manifest, indent=1)
    storage.write_text(layout.summary(date, scan_id), text)
    covered = np.concatenate(tally.covered) if tally.covered else np.zeros(0, dtype=np.uint64)
    write_covered(layout.covered(scan_id), covered)
    storage.write_text(layout.success(scan_id), text)  # the commit point of the scan
    storage.delete_prefix(layout.staging(scan_id))
    storage.remove_debris(layout.out)  # an empty _staging/ goes too
    log.info("committed scan %s: %d rows in %s", scan_id, rows, final)
    return manifest


def recover(layout: Layout) -> list[dict[str, Any]]:
    """Finish the commits that a killed job left half done (staging with an intent), and remove
    what killed writes left behind (temporary files, empty folders). A staging folder that cannot
    be committed (`DamagedStaging`) is moved to `_quarantine/` with a warning, so it blocks no
    later scan. Returns the manifests of the scans it committed.

    Only for the holder of the report root's lease (lease.py): no other job is writing there."""
    finished = []
    debris = storage.remove_debris(layout.out)
    if debris:
        log.warning("removed %d temporary files that killed writes left under %s", debris, layout.out)
    for scan_id in unfinished_scans(layout):
        if not storage.exists(layout.intent(scan_id)):
            continue
        log.warning("scan %s finished but was not published (killed while committing): publishing it now", scan_id)
        try:
            finished.append(finish_commit(layout, scan_id))
        except DamagedStaging as exc:
            quarantine(layout, scan_id, str(exc))
    return finished


def quarantine(layout: Layout, scan_id: str, reason: str) -> str:
    """Move the scan's staging folder to `_quarantine/<id>-<UTC time>/` (kept for a person to
    look at, out of every scan's way); returns where it went."""
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")
    target = layout.quarantine(f"{scan_id}-{stamp}")
    storage.move_prefix(layout.staging(scan_id), target)
    storage.remove_debris(layout.out)
    log.warning("quarantined the staging of scan %s in %s: %s", scan_id, target, reason)
    return target


def unfinished_scans(layout: Layout) -> list[str]:
    """Scans with staging but no `_SUCCESS`: failed, running or half published (a folder whose
    name is no scan id is not lxn's, and skipped)."""
    try:
        prefixes = list(storage.iter_prefixes(layout.staging_root()))
    except FileNotFoundError:
        return []
    names = []
    for prefix in prefixes:
        try:
            names.append(check_scan_id(storage.basename(prefix), f"staging folder {prefix}"))
        except ValueError as exc:
            log.warning("skipped: %s", exc)
    return sorted(names)
