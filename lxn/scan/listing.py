"""What a scan looks at: sources or a manifest -> a stream of objects -> staged listing chunks.

Objects come from listing the `--source` prefixes (boto3's paginator through
`storage.iter_objects`: pages are fetched as they are consumed, never a whole listing in
memory) or from a `--manifest` of keys. Both are filtered (extensions, sizes), dropped when a
previous scan covered them (same URI and ETag, unless `--full`), and written as Parquet chunks
of `--listing-chunk` rows to the scan's staging, which Ray Data then reads: the driver holds one
chunk at a time, plus 8 bytes per object to catch duplicates (a manifest naming an object
twice).

Manifests:

* Parquet: a `uri` column, or `key` (relative to the single `--source`), or S3 Inventory's
  `bucket` + `key`; optional `etag` (or `e_tag`), `size`, `last_modified` (or
  `last_modified_date`). With ETag and size present, nothing is requested per object before the
  fetch (S3 Inventory reports have both).
* Text (any other name): one URI, absolute path or key per line; blank lines and lines starting
  with `#` are skipped.

Entries without ETag or size are completed with one HEAD request each (`--stat-threads` at a
time). An entry whose HEAD fails stays in the listing with the ETag unknown: the fetch then
reports the object as `missing`, `forbidden` or `unreadable`, so a bad key is a row, never a
lost object or a failed job. A line that is not a valid URI or key fails the job before any
work, naming the line.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import io
import json
import logging
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import NamedTuple

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from lxn import storage
from lxn.scan.report import list_files, read_table, table_bytes
from lxn.scan.state import CoveredSet, key_hash

__all__ = [
    "LISTING_SCHEMA",
    "Entry",
    "ListingStats",
    "check_sources",
    "outside",
    "iter_sources",
    "iter_manifest",
    "write_listing",
    "read_listing_stats",
    "write_pending",
]

log = logging.getLogger(__name__)

# Unknown values are "" (etag) and -1 (size) rather than nulls: the columns cross Ray Data as
# numpy arrays, where an integer column with nulls would turn into floats.
LISTING_SCHEMA = pa.schema(
    [
        pa.field("row_id", pa.int64(), nullable=False),
        pa.field("uri", pa.string(), nullable=False),
        pa.field("etag", pa.string(), nullable=False),
        pa.field("size", pa.int64(), nullable=False),
        pa.field("last_modified", pa.timestamp("us", tz="UTC")),
        pa.field("key_hash", pa.uint64(), nullable=False),
    ]
)
_DONE = "_DONE.json"
_MANIFEST_BATCH = 1000


class Entry(NamedTuple):
    """One object to scan; `etag` "" and `size` -1 when unknown."""

    uri: str
    etag: str
    size: int
    last_modified: dt.datetime | None


@dataclasses.dataclass(frozen=True)
class ListingStats:
    listed: int  # objects that passed the filters
    skipped_unchanged: int  # of those, covered by a previous successful scan
    duplicates: int  # entries naming an object already listed (manifests)
    rows: int  # objects to scan
    chunks: int

    def to_dict(self) -> dict[str, int]:
        return dataclasses.asdict(self)


def _as_dir(uri: str) -> str:
    return uri.rstrip("/") + "/"


def check_sources(sources: Sequence[str], out: str | None = None) -> list[str]:
    """Normalised source URIs; rejects repeats and nesting (which would list objects twice) and
    a source inside the report root `out` (the scan would read its own reports)."""
    normalised = [storage.normalize_uri(s) for s in sources]
    as_dirs = [_as_dir(s) for s in normalised]
    for i, a in enumerate(as_dirs):
        for j, b in enumerate(as_dirs):
            if i != j and b.startswith(a):
                raise ValueError(f"--source {normalised[j]} is inside --source {normalised[i]}: "
                                 "its objects would be scanned twice; give only the outer one")
        if out is not None and a.startswith(_as_dir(storage.normalize_uri(out))):
            raise ValueError(f"--source {normalised[i]} is inside --out {out}: give the report root its own prefix")
    return normalised


def outside(entries: Iterable[Entry], out: str) -> Iterator[Entry]:
    """`entries` minus the objects below the report root `out` (a source that contains the
    report root must not scan the reports, staging and summaries it holds)."""
    prefix = _as_dir(storage.normalize_uri(out))
    for entry in entries:
        if not entry.uri.startswith(prefix):
            yield entry


class _Filter:
    def __init__(self, extensions: Iterable[str] | None, min_size: int, max_size: int | None) -> None:
        suffixes = None if extensions is None else tuple("." + e.lower().lstrip(".") for e in extensions)
        if suffixes is not None and any(s == "." for s in suffixes):
            raise ValueError("empty extension in --extensions")
        self.suffixes, self.min_size, self.max_size = suffixes, min_size, max_size

    def name_ok(self, uri: str) -> bool:
        return self.suffixes is None or uri.lower().endswith(self.suffixes)

    def size_ok(self, size: int) -> bool:  # unknown sizes (-1) pass: the fetch will tell
        return size < 0 or (size >= self.min_size and (self.max_size is None or size <= self.max_size))


def iter_sources(sources: Sequence[str], *, extensions: Iterable[str] | None, min_size: int = 0,
                 max_size: int | None = None) -> Iterator[Entry]:
    """Every object below each source (key order, source by source), filtered."""
    _Filter(extensions, min_size, max_size)  # validates the extensions
    for source in sources:
        for info in storage.iter_objects(source, extensions=extensions, min_size=min_size, max_size=max_size):
            yield Entry(info.uri, info.etag, info.size, info.last_modified)


def _resolve(text: str, root: str | None, where: str) -> str:
    text = text.strip()
    try:
        if "://" in text or text.startswith("/"):
            return storage.normalize_uri(text)
        if root is None:
            raise ValueError(f"{text!r} is a relative key: give exactly one --source as its root, or write full URIs")
        return storage.join(root, text)
    except ValueError as error:  # InvalidURIError is a ValueError
        raise ValueError(f"{where}: {error}") from None


def _manifest_rows(manifest: str, root: str | None) -> Iterator[list[tuple[str, str, int, dt.datetime | None]]]:
    """Batches of (uri, etag, size, last_modified) as the manifest gives them ("" / -1 unknown)."""
    filesystem, path = storage.arrow_filesystem(manifest)
    if manifest.endswith(".parquet"):
        with filesystem.open_input_file(path) as f:
            parquet = pq.ParquetFile(f)
            names = set(parquet.schema_arrow.names)
            pick = lambda *options: next((o for o in options if o in names), None)  # noqa: E731
            uri_col, key_col, bucket_col = pick("uri"), pick("key"), pick("bucket")
            etag_col, size_col, mtime_col = pick("etag", "e_tag"), pick("size"), pick("last_modified", "last_modified_date")
            if uri_col is None and key_col is None:
                raise ValueError(f"manifest {manifest} needs a `uri` or `key` column; it has {sorted(names)}")
            columns = [c for c in (uri_col, key_col, bucket_col, etag_col, size_col, mtime_col) if c]
            row = 0
            for batch in parquet.iter_batches(batch_size=_MANIFEST_BATCH, columns=columns):
                data = batch.to_pydict()
                n = batch.num_rows
                out = []
                for i in range(n):
                    row += 1
                    where = f"{manifest} row {row}"
                    if uri_col:
                        uri = _resolve(data[uri_col][i] or "", root, where)
                    elif bucket_col:
                        uri = _resolve(f"s3://{data[bucket_col][i]}/{data[key_col][i]}", None, where)
                    else:
                        uri = _resolve(data[key_col][i] or "", root, where)
                    etag = (data[etag_col][i] or "").strip('"') if etag_col else ""
                    size = data[size_col][i] if size_col and data[size_col][i] is not None else -1
                    mtime = data[mtime_col][i] if mtime_col else None
                    if isinstance(mtime, dt.datetime) and mtime.tzinfo is None:
                        mtime = mtime.replace(tzinfo=dt.timezone.utc)
                    out.append((uri, etag, int(size), mtime if isinstance(mtime, dt.datetime) else None))
                yield out
        return
    with filesystem.open_input_stream(path) as f:
        text = io.TextIOWrapper(f, encoding="utf-8-sig", newline=None)
        out = []
        for number, line in enumerate(text, start=1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            out.append((_resolve(line, root, f"{manifest} line {number}"), "", -1, None))
            if len(out) >= _MANIFEST_BATCH:
                yield out
                out = []
        if out:
            yield out


def _head(entry: tuple[str, str, int, dt.datetime | None]) -> Entry:
    uri, etag, size, mtime = entry
    if etag and size >= 0:
        return Entry(uri, etag, size, mtime)
    try:
        info = storage.object_info(uri)
    except (OSError, ValueError) as error:  # missing, forbidden, a directory...: the fetch reports it
        log.debug("HEAD %s failed (%s); the fetch will report it", uri, error)
        return Entry(uri, etag, size, mtime)
    return Entry(uri, info.etag, info.size, info.last_modified)


def iter_manifest(manifest: str, *, root: str | None, extensions: Iterable[str] | None, min_size: int = 0,
                  max_size: int | None = None, stat_threads: int = 16) -> Iterator[Entry]:
    """The manifest's entries in file order, completed (HEAD) where ETag or size is missing, filtered."""
    keep = _Filter(extensions, min_size, max_size)
    manifest = storage.normalize_uri(manifest)
    with ThreadPoolExecutor(max_workers=stat_threads, thread_name_prefix="lxn-head") as pool:
        for batch in _manifest_rows(manifest, root):
            named = [e for e in batch if keep.name_ok(e[0]) and keep.size_ok(e[2])]
            for entry in pool.map(_head, named):  # map keeps the manifest's order
                if keep.size_ok(entry.size):
                    yield entry


def write_listing(entries: Iterable[Entry], directory: str, *, covered: CoveredSet | None,
                  chunk_rows: int) -> ListingStats:
    """Stage `entries` (minus the covered ones and repeats) as Parquet chunks in `directory`,
    then `_DONE.json` with the counts. Anything already in `directory` is replaced."""
    storage.delete_prefix(directory)
    listed = skipped = rows = 0
    chunk_uri_hashes: list[np.ndarray] = []
    buffer: list[Entry] = []

    def flush() -> None:
        nonlocal skipped, rows
        hashes = np.fromiter((key_hash(e.uri, e.etag) for e in buffer), np.uint64, len(buffer))
        known = np.fromiter((bool(e.etag) for e in buffer), bool, len(buffer))
        keep = ~(covered.contains(hashes) & known) if covered is not None else np.ones(len(buffer), bool)
        skipped += int((~keep).sum())
        kept = [e for e, k in zip(buffer, keep) if k]
        buffer.clear()
        if not kept:
            return
        table = pa.table(
            {
                "row_id": pa.array(np.arange(rows, rows + len(kept)), pa.int64()),
                "uri": [e.uri for e in kept],
                "etag": [e.etag for e in kept],
                "size": pa.array([e.size for e in kept], pa.int64()),
                "last_modified": pa.array([e.last_modified for e in kept], pa.timestamp("us", tz="UTC")),
                "key_hash": pa.array(hashes[keep], pa.uint64()),
            },
            schema=LISTING_SCHEMA,
        )
        storage.write_bytes(_chunk_uri(directory, len(chunk_uri_hashes)), table_bytes(table))
        chunk_uri_hashes.append(np.fromiter((key_hash(e.uri, "") for e in kept), np.uint64, len(kept)))
        rows += len(kept)

    for entry in entries:
        listed += 1
        buffer.append(entry)
        if len(buffer) >= chunk_rows:
            flush()
    if buffer:
        flush()
    duplicates = _drop_repeats(directory, chunk_uri_hashes)
    stats = ListingStats(listed=listed, skipped_unchanged=skipped, duplicates=duplicates, rows=rows - duplicates,
                         chunks=len(chunk_uri_hashes))
    storage.write_text(storage.join(directory, _DONE), json.dumps(stats.to_dict()))
    return stats


def _chunk_uri(directory: str, index: int) -> str:
    return storage.join(directory, f"part-{index:06d}.parquet")


def _drop_repeats(directory: str, chunk_uri_hashes: list[np.ndarray]) -> int:
    """Remove every listing of an object after its first (manifests may repeat keys); returns
    how many went. Only the chunks holding repeats are rewritten."""
    if not chunk_uri_hashes:
        return 0
    hashes = np.concatenate(chunk_uri_hashes)
    _, first = np.unique(hashes, return_index=True)
    repeat = np.ones(len(hashes), dtype=bool)
    repeat[first] = False
    if not repeat.any():
        return 0
    start = 0
    for index, chunk in enumerate(chunk_uri_hashes):
        drop = repeat[start : start + len(chunk)]
        start += len(chunk)
        if drop.any():
            uri = _chunk_uri(directory, index)
            table = read_table(uri).filter(pa.array(~drop))
            storage.write_bytes(uri, table_bytes(table))
    log.warning("the manifest names %d objects more than once; each is scanned once", int(repeat.sum()))
    return int(repeat.sum())


def read_listing_stats(directory: str) -> ListingStats | None:
    """The counts of a completely staged listing, or None if there is none (or it was cut off)."""
    try:
        return ListingStats(**json.loads(storage.read_text(storage.join(directory, _DONE))))
    except FileNotFoundError:
        return None


def write_pending(listing: str, pending: str, done: np.ndarray) -> int:
    """Stage the listing's rows whose ids are not in sorted `done` into `pending`; returns how many."""
    storage.delete_prefix(pending)
    total = 0
    for index, uri in enumerate(list_files(listing)):
        table = read_table(uri)
        ids = table["row_id"].to_numpy()
        at = np.searchsorted(done, ids)
        finished = (at < len(done)) & (done[np.minimum(at, len(done) - 1)] == ids) if len(done) else np.zeros(len(ids), bool)
        if finished.all():
            continue
        remaining = table.filter(pa.array(~finished))
        storage.write_bytes(_chunk_uri(pending, index), table_bytes(remaining))
        total += remaining.num_rows
    return total
