"""The prepare job: any dataset layout -> deduplicated, split, re-encoded Parquet shards.

A streaming Ray Data pipeline in four stages, so neither the driver nor any worker ever holds
the dataset (only small per-image columns reach the driver):

1. list (driver, streaming): the reader's samples -> `_staging/listing/*.parquet` in chunks of
   `listing_chunk` rows: row id, source URI, class name.
2. load (Ray Data map, parallel): fetch, decode and validate every image; a bad file becomes a
   row with status "error" and the reason (never a crash); good ones get a 64-bit perceptual
   hash, per-channel pixel sums for mean/std, and the stored copy (`lxn.presets.store_copy`: the
   shorter side at `store_side`) -> `_staging/loaded/*.parquet`.
3. decide (driver, numpy on small columns): exact and near duplicates grouped by multi-index
   hashing + union-find (no all-pairs pass), optionally merged with the pairs an embedding
   model finds (`embedding_model`: a Ray Data actor pass writes one float16 vector per image,
   random-hyperplane LSH pairs them), one representative kept per group, then a group-aware,
   class-stratified split with the seed; mean/std of the train split.
4. write (Ray Data map, parallel): the kept rows with their split -> `OUT/split=<name>/`, then
   `quarantine.json` and, last, `manifest.json`. Rows arrive in the order of a seeded shuffle of
   the listing (stage 2 reads it shuffled), so every shard is a fair sample of the classes.

Re-running into the same output is safe: the old manifest is removed first (so a half-written
output is never taken for a complete one), old shards and staging are cleared, and the result
depends only on the input, the settings and the seed.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import itertools
import json
import logging
import subprocess
from pathlib import Path
from typing import Any, Iterable, Literal

import numpy as np
import pyarrow as pa

import lxn
from lxn import storage
from lxn.ray_utils import read_parquet
from lxn.config import setting
from lxn.model_package import ModelPackage
from lxn.data.prepared import SCHEMA, SPLITS, Manifest

__all__ = ["PrepareConfig", "run", "load_batch", "listing_table"]

log = logging.getLogger(__name__)

# `boxes`: JSON of the reader's boxes (lxn.data.boxes form) for box-labelled formats, else null;
# after the load stage, in the stored copy's pixels. `declared_*`: the size the annotations give.
_LISTING_SCHEMA = pa.schema([("row_id", pa.int64()), ("source_uri", pa.string()), ("class_name", pa.string()),
                             ("boxes", pa.string()), ("declared_width", pa.int32()), ("declared_height", pa.int32())])
_LOADED_SCHEMA = pa.schema(
    list(_LISTING_SCHEMA)
    + [
        ("box_count", pa.int32()),
        ("image", pa.binary()),
        ("status", pa.string()),
        ("error_kind", pa.string()),
        ("error", pa.string()),
        ("width", pa.int32()),
        ("height", pa.int32()),
        ("phash", pa.uint64()),
        ("pixel_sum", pa.list_(pa.float64())),
        ("pixel_sq_sum", pa.list_(pa.float64())),
        ("pixel_count", pa.int64()),
    ]
)


@dataclasses.dataclass(frozen=True)
class PrepareConfig:
    source: list[str] = setting([], "dataset root(s), local paths or s3:// URIs, read as one dataset (WebLogo-2M's part roots; a base set and its review rounds)", uri="input")
    format: Literal["imagefolder", "weblogo2m", "flickrlogos32", "belgalogos", "coco"] = setting("imagefolder", "dataset layout (belgalogos and coco keep their boxes)")
    out: str = setting("lxn-local/prepared", "output: local path or s3:// URI", uri="output")
    seed: int = setting(0, "seed of the split")
    near_duplicate_radius: int = setting(4, "perceptual-hash Hamming radius for near duplicates (0: exact only); resizing and re-encoding move a hash by at most 4 bits, while on 10k distinct synthetic scenes radius 8 merged 485 unrelated images and 4 merged 10")
    label_conflicts: Literal["drop", "majority", "keep"] = setting("drop", "duplicate groups whose members disagree on the label: drop the group, keep the majority label, or keep the representative's")
    fractions: list[float] = setting([0.8, 0.1, 0.1], "train/val/test fractions")
    store_side: int = setting(256, "shorter side of the stored re-encoded JPEG (never enlarged): training takes any --image-size up to it")
    jpeg_quality: int = setting(95, "quality of the stored JPEG (95 keeps a re-encoded copy within ~35 dB of its original)")
    max_pixels: int = setting(80_000_000, "decompression-bomb cap: larger declared images are quarantined")
    max_bytes: int = setting(50 * 2**20, "files larger than this are quarantined (too_large)")
    embedding_model: str | None = setting(None, "near duplicates by embedding too: an lxn model (models:/name@alias or a logged model dir) whose 1280-d embedding stands in for the paper's CLIP")
    embedding_threshold: float = setting(0.985, "cosine at or above which two embeddings are near duplicates (the paper's CLIP threshold)")
    tracking_uri: str | None = setting(None, "MLflow tracking URI for --embedding-model (default: MLFLOW_TRACKING_URI or sqlite:///mlflow.db)", uri="tracking")
    listing_chunk: int = setting(100_000, "rows per listing file (bounds the driver's memory)")
    batch_size: int = setting(64, "images per Ray Data batch")
    load_block_rows: int = setting(256, "images per load task, and per staged file (about 5 MB re-encoded): every CPU loads, and memory stays flat at any dataset size")
    progress_bars: bool = setting(True, "Ray Data's progress bars (--no-progress-bars for cron logs: a progress line every --progress-every seconds instead)")
    progress_every: float = setting(30.0, "with progress bars off, seconds between progress lines (images loaded, rate, ETA)")
    shared_filesystem: bool = setting(False, "local paths are on a filesystem every node mounts at the same path (NFS, EFS): allow them on a multi-node cluster")


def _code_version() -> str:
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                                cwd=Path(__file__).parent, timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        commit = ""
    return f"lxn {lxn.__version__}" + (f" ({commit})" if commit else "")


# ---------------------------------------------------------------------------- stage 1: list


def listing_table(first_row: int, entries: list[tuple[str, str, str | None, int | None, int | None]]) -> pa.Table:
    """Listing rows from (source URI, class, boxes JSON or None, declared width, height), row ids
    counting from `first_row`: what the load stage (`load_batch`) reads."""
    columns = list(zip(*entries)) if entries else [[]] * 5
    return pa.table(
        {"row_id": pa.array(range(first_row, first_row + len(entries)), pa.int64()), "source_uri": columns[0],
         "class_name": columns[1], "boxes": columns[2], "declared_width": columns[3], "declared_height": columns[4]},
        schema=_LISTING_SCHEMA,
    )


def _write_listing(samples: Iterable[Any], staging: str, chunk: int, with_boxes: bool = False) -> tuple[int, list[str]]:
    """Stream samples into Parquet chunks (with their boxes, for a box-labelled format); returns
    (rows, sorted class names)."""
    import pyarrow.parquet as pq

    classes: set[str] = set()
    rows = 0
    buffer: list[tuple[str, str, str | None, int | None, int | None]] = []

    def flush(part: int) -> None:
        table = listing_table(rows - len(buffer), buffer)
        filesystem, path = storage.arrow_filesystem(storage.join(staging, "listing", f"part-{part:05d}.parquet"))
        filesystem.create_dir(path.rsplit("/", 1)[0], recursive=True)
        pq.write_table(table, path, filesystem=filesystem)
        buffer.clear()

    part = 0
    for sample in samples:
        boxes = sample.extra.get("boxes") if with_boxes else None
        buffer.append((sample.uri, sample.label, None if boxes is None else json.dumps(boxes),
                       sample.extra.get("width"), sample.extra.get("height")))
        classes.add(sample.label)
        classes.update(b["label"] for b in boxes or ())  # a brand may only ever be a second mark
        rows += 1
        if len(buffer) >= chunk:
            flush(part)
            part += 1
    if buffer:
        flush(part)
    return rows, sorted(classes)


# ---------------------------------------------------------------------------- stage 2: load


def load_batch(batch: pa.Table, config: PrepareConfig) -> pa.Table:
    """Fetch, decode, validate, hash and re-encode each image of a listing batch.

    Every input row yields one output row. What is wrong with a file (undecodable, missing,
    unreadable) is data: status "error", a kind and the reason. A bug in this code is not: it
    raises, so it cannot silently turn a whole dataset into error rows.
    """
    from lxn.data.dedup import phash
    from lxn.presets import decode, store_copy

    n = batch.num_rows
    out: dict[str, list] = {k: [] for k in ("image", "status", "error_kind", "error", "width", "height", "phash",
                                            "pixel_sum", "pixel_sq_sum", "pixel_count", "boxes", "box_count")}
    declared = zip(batch["declared_width"].to_pylist(), batch["declared_height"].to_pylist())
    for uri, boxes_json, size in zip(batch["source_uri"].to_pylist(), batch["boxes"].to_pylist(), declared):
        # the scan's fetch and decode path: the same bytes give the same error kind in both
        data, kind, reason = storage.fetch(uri)
        if data is not None:
            decoded, kind, reason = decode(data, config.store_side, max_pixels=config.max_pixels,
                                           max_bytes=config.max_bytes)
        if kind is not None:
            _error_row(out, kind, reason)
            continue
        try:
            boxes = None if boxes_json is None else _stored_boxes(uri, json.loads(boxes_json), size, decoded,
                                                                  config.store_side)
            stored = store_copy(decoded.pixels, config.store_side, quality=config.jpeg_quality)
            small = decoded.pixels.astype(np.float64) / 255.0
            out["boxes"].append(None if boxes is None else json.dumps(boxes))
            out["box_count"].append(None if boxes is None else len(boxes))
            out["image"].append(stored)
            out["status"].append("ok")
            out["error_kind"].append(None)
            out["error"].append(None)
            out["width"].append(decoded.width)
            out["height"].append(decoded.height)
            out["phash"].append(int(phash(decoded.pixels)))  # of the pixels as decoded (draft-reduced)
            out["pixel_sum"].append(small.sum(axis=(0, 1)).tolist())
            out["pixel_sq_sum"].append((small**2).sum(axis=(0, 1)).tolist())
            out["pixel_count"].append(int(small.shape[0] * small.shape[1]))
        except _BadBoxes as exc:
            _error_row(out, exc.kind, str(exc))
    assert len(out["status"]) == n
    columns = {**{k: batch[k] for k in ("row_id", "source_uri", "class_name", "declared_width", "declared_height")},
               **out}
    columns = {k: v.combine_chunks() if isinstance(v, pa.ChunkedArray) else v for k, v in columns.items()}
    return pa.table(
        {name: columns[name] if isinstance(columns[name], pa.Array) else pa.array(columns[name], type=_LOADED_SCHEMA.field(name).type)
         for name in _LOADED_SCHEMA.names},
        schema=_LOADED_SCHEMA,
    )


def pc_count_ok(table: pa.Table) -> int:
    import pyarrow.compute as pc

    return int(pc.sum(pc.equal(table["status"], "ok")).as_py() or 0)


def _error_row(out: dict[str, list], kind: str, reason: str) -> None:
    out["image"].append(None)
    out["status"].append("error")
    out["error_kind"].append(kind)
    out["error"].append(reason)
    for key in ("width", "height", "phash", "pixel_sum", "pixel_sq_sum", "pixel_count", "boxes", "box_count"):
        out[key].append(None)


class _BadBoxes(ValueError):
    """An image whose boxes cannot be used as they are: a quarantine row of kind `kind`."""

    def __init__(self, kind: str, reason: str) -> None:
        super().__init__(reason)
        self.kind = kind


def _stored_boxes(uri: str, boxes: list[dict[str, Any]], declared: tuple[int | None, int | None], decoded,
                  store_side: int) -> list[dict[str, Any]]:
    """The image's boxes checked against its decoded size and moved to the stored copy's pixels.

    Quarantined, not guessed: annotations made for another size (`size_mismatch`: often a photo
    whose EXIF rotation the labelling tool did not apply), or boxes that do not fit the image
    (`bad_boxes`: a format that gives no size, like BelgaLogos', is checked only here)."""
    from lxn.data.boxes import clean_boxes, scale_boxes
    from lxn.presets import stored_size

    size = (decoded.width, decoded.height)
    if declared[0] is not None and tuple(declared) != size:
        raise _BadBoxes("size_mismatch", f"the annotations are for a {declared[0]}x{declared[1]} image, the file is "
                                         f"{size[0]}x{size[1]} (EXIF-rotated?): its boxes would be misplaced")
    kept, problems = clean_boxes(uri, boxes, *size)
    if problems:
        raise _BadBoxes("bad_boxes", "; ".join(str(p) for p in problems))
    return scale_boxes(kept, size, stored_size(*decoded.decoded_size, store_side))


# ---------------------------------------------------------------------------- stage 3: decide


@dataclasses.dataclass
class _Decision:
    split_of_row: np.ndarray        # int8 per row id: 0/1/2 split, -1 not written
    group_of_row: np.ndarray        # int64 per row id
    manifest_parts: dict[str, Any]
    quarantine: list[dict[str, Any]]


def _decide(table: pa.Table, rows: int, classes: list[str], config: PrepareConfig,
            embedding_pairs: np.ndarray | None = None) -> _Decision:
    """Dedup, split and normalisation statistics from the small per-image columns.

    `embedding_pairs` are (row id, row id) pairs from the optional embedding pass."""
    from lxn.data import dedup, split

    row_id = table["row_id"].to_numpy()
    status = np.asarray(table["status"].to_pylist())
    ok = status == "ok"
    quarantine = [
        {"source_uri": u, "kind": k, "reason": r}
        for u, k, r, good in zip(table["source_uri"].to_pylist(), table["error_kind"].to_pylist(),
                                 table["error"].to_pylist(), ok)
        if not good
    ]
    class_index = {name: i for i, name in enumerate(classes)}
    labels_all = np.array([class_index[c] for c in table["class_name"].to_pylist()], dtype=np.int64)

    good_rows = row_id[ok]
    labels = labels_all[ok]
    hashes = table["phash"].filter(pa.array(ok)).to_numpy().astype(np.uint64)
    pixels = (table["width"].filter(pa.array(ok)).to_numpy().astype(np.float64)
              * table["height"].filter(pa.array(ok)).to_numpy())
    groups = dedup.near_duplicate_groups(hashes, config.near_duplicate_radius)
    merged_by_embedding = 0
    if embedding_pairs is not None and len(embedding_pairs):
        position = np.full(rows, -1, dtype=np.int64)
        position[good_rows] = np.arange(len(good_rows))
        pairs = position[embedding_pairs]
        before = len(np.unique(groups))
        groups = dedup.groups_from_pairs(len(good_rows), pairs[(pairs >= 0).all(axis=1)], groups=groups)
        merged_by_embedding = before - len(np.unique(groups))
    keep = dedup.pick_representatives(groups, sizes=pixels, labels=labels, on_label_conflict=config.label_conflicts)
    stats = dedup.duplicate_stats(groups, hashes=hashes, labels=labels, keep=keep)

    codes = split.stratified_group_split(labels[keep], groups[keep], tuple(config.fractions), seed=config.seed)
    # Leakage is checked over every good image, dropped duplicates included: a removed copy
    # must not have a sibling in another split either (it has none: only one member is kept).
    stats["leakage"] = split.leakage_report(groups[keep], codes)
    stats["radius"] = config.near_duplicate_radius
    if embedding_pairs is not None:
        stats["embedding"] = {"model": config.embedding_model, "threshold": config.embedding_threshold,
                              "pairs": int(len(embedding_pairs)), "groups_merged": int(merged_by_embedding)}
    stats["label_conflicts_policy"] = config.label_conflicts

    split_of_row = np.full(rows, -1, dtype=np.int8)
    split_of_row[good_rows[keep]] = codes
    group_of_row = np.full(rows, -1, dtype=np.int64)
    group_of_row[good_rows] = good_rows[groups]  # group id = the row id of its first member

    is_train = np.zeros(rows, dtype=bool)
    is_train[good_rows[keep][codes == split.TRAIN]] = True
    train_mask = pa.array(is_train[row_id])
    sums = np.array(table["pixel_sum"].filter(train_mask).to_pylist(), dtype=np.float64).reshape(-1, 3)
    squares = np.array(table["pixel_sq_sum"].filter(train_mask).to_pylist(), dtype=np.float64).reshape(-1, 3)
    count = float(np.sum(table["pixel_count"].filter(train_mask).to_numpy()))
    mean = sums.sum(0) / max(count, 1.0)
    std = np.sqrt(np.maximum(squares.sum(0) / max(count, 1.0) - mean**2, 1e-12))

    kept_labels = labels[keep]
    counts = {
        name: {cls: int(np.sum((kept_labels == k) & (codes == code))) for k, cls in enumerate(classes)}
        for code, name in enumerate(SPLITS)
    }
    box_count = table["box_count"].filter(pa.array(ok)).to_pylist()
    box_counts = {}
    if any(n is not None for n in box_count):
        kept_boxes = np.array([n or 0 for n in box_count], dtype=np.int64)[keep]
        box_counts = {name: int(kept_boxes[codes == code].sum()) for code, name in enumerate(SPLITS)}
    return _Decision(
        split_of_row,
        group_of_row,
        {"counts": counts, "mean": mean.tolist(), "std": std.tolist(), "duplicates": stats, "box_counts": box_counts},
        quarantine,
    )


class _Embed:
    """Ray Data actor: one L2-normalised float16 embedding per stored image, model loaded once."""

    def __init__(self, model: ModelPackage) -> None:
        from lxn.models.rebuild import rebuild_eager

        loaded = model.load()
        self.preset = loaded.preset
        self.model = rebuild_eager(loaded.module, loaded.model_config, loaded.preset).eval()

    def __call__(self, table: pa.Table) -> pa.Table:
        import torch

        from lxn.presets import model_pixels

        pixels = np.stack([model_pixels(b, self.preset) for b in table["image"].to_pylist()])
        with torch.inference_mode():
            x = self.model.preprocess(torch.from_numpy(pixels))
            embedding = self.model.model.forward_head(self.model.model.forward_features(x), pre_logits=True)
            embedding = torch.nn.functional.normalize(embedding, dim=1).to(torch.float16).numpy()
        return pa.table({"row_id": table["row_id"], "embedding": pa.array(list(embedding), pa.list_(pa.float16()))})


def _embedding_pairs(loaded_path: str, loaded_fs, staging: str, config: PrepareConfig) -> np.ndarray:
    """(row id, row id) pairs whose embeddings have cosine >= the threshold (every pair compared
    up to 20k images, random-hyperplane LSH verified exactly above). The driver holds N x 1280 float16 (2.5 KB per image, 5.6 GB for
    WebLogo-2M: run this pass on a head node sized for it, or on a subset)."""
    import pyarrow.dataset as pads
    import ray.data
    from ray.data.expressions import col

    from lxn.data import dedup
    from lxn.tracking import fetch_model

    model = fetch_model(config.embedding_model, config.tracking_uri)  # once, checked here: the actors load its bytes
    out_fs, out_path = storage.arrow_filesystem(storage.join(staging, "embeddings"))
    (
        read_parquet(loaded_path, filesystem=loaded_fs)
        .filter(expr=col("status") == "ok")
        .select_columns(["row_id", "image"])
        .map_batches(_Embed, fn_constructor_args=(model,),
                     batch_format="pyarrow", batch_size=config.batch_size,
                     compute=ray.data.ActorPoolStrategy(min_size=1, max_size=2))
        .write_parquet(out_path, filesystem=out_fs)
    )
    table = pads.dataset(out_path, filesystem=out_fs, format="parquet").to_table().sort_by("row_id")
    row_id = table["row_id"].to_numpy()
    embeddings = np.stack(table["embedding"].to_numpy(zero_copy_only=False)).astype(np.float32)
    pairs = dedup.embedding_duplicate_pairs(embeddings, config.embedding_threshold)
    return row_id[pairs] if len(pairs) else np.zeros((0, 2), dtype=np.int64)


# ---------------------------------------------------------------------------- stage 4: write


def _assign(table: pa.Table, *, split_ref, group_ref, class_index: dict[str, int]) -> pa.Table:
    """Ray Data map stage: label each kept row, attach its split and group; drop the rest.

    A plain task, fused with the read before it and the write after it, so a staged file goes
    from disk to its output shards inside one process and never through the object store
    (an actor here made every block cross it, and memory grew with the dataset). The per-row
    arrays come as object refs: `ray.get` maps them from shared memory without a copy."""
    import ray

    split_of_row, group_of_row = ray.get(split_ref), ray.get(group_ref)
    row_id = table["row_id"].to_numpy()
    codes = split_of_row[row_id]
    kept = codes >= 0
    table = table.filter(pa.array(kept))
    row_id, codes = row_id[kept], codes[kept]
    return pa.table(
        {
            "image": table["image"],
            "label": pa.array([class_index[c] for c in table["class_name"].to_pylist()], pa.int32()),
            "class_name": table["class_name"],
            "split": pa.array([SPLITS[c] for c in codes], pa.string()),
            "source_uri": table["source_uri"],
            "phash": table["phash"],
            "group": pa.array(group_of_row[row_id], pa.int64()),
            "width": table["width"],
            "height": table["height"],
            "boxes": pa.array([None if b is None else [{"label": class_index[m["label"]], "x0": m["box"][0], "y0": m["box"][1],
                                                        "x1": m["box"][2], "y1": m["box"][3]} for m in json.loads(b)]
                               for b in table["boxes"].to_pylist()], SCHEMA.field("boxes").type),
        },
        schema=SCHEMA,
    )


def _clear(out: str) -> None:
    """Remove a previous run's manifest first, then its shards and staging."""
    manifest = storage.join(out, "manifest.json")
    if storage.exists(manifest):
        storage.delete(manifest)
    for name in [*(f"split={s}" for s in SPLITS), "_staging", "quarantine.json"]:
        target = storage.join(out, name)
        if name.endswith(".json"):
            if storage.exists(target):
                storage.delete(target)
        else:
            storage.delete_prefix(target)


def _progress(config: PrepareConfig, rows: int, loaded: str):
    """With progress bars off, a line every --progress-every seconds: each load task stages one
    file of --load-block-rows rows, so the staged files count the images loaded."""
    if config.progress_bars:
        return contextlib.nullcontext()
    from lxn.progress import Heartbeat

    def count() -> int:
        try:
            return sum(1 for _ in storage.iter_objects(loaded, extensions=(".parquet",))) * config.load_block_rows
        except FileNotFoundError:  # nothing staged yet
            return 0

    return Heartbeat(log, "prepare: images loaded", rows, count, every_s=config.progress_every)


def run(config: PrepareConfig) -> Manifest:
    """Prepare `config.source` into `config.out`; returns the manifest written last."""
    import ray
    import ray.data
    from ray.data.expressions import col

    from lxn.data.readers import BOX_FORMATS, iter_samples

    if not config.source:
        raise ValueError("prepare needs at least one --source")
    if len(config.fractions) != 3 or abs(sum(config.fractions) - 1) > 1e-6:
        raise ValueError(f"--fractions must be three numbers summing to 1, got {config.fractions}")
    if config.store_side < 32 or not 1 <= config.jpeg_quality <= 95:
        raise ValueError(f"--store-side must be at least 32 and --jpeg-quality within 1..95, got {config.store_side}, "
                         f"{config.jpeg_quality}")
    if config.progress_every <= 0:
        raise ValueError(f"--progress-every must be a positive number of seconds, got {config.progress_every}")
    if config.batch_size < 1 or config.load_block_rows < 1:
        raise ValueError(f"--batch-size and --load-block-rows must be at least 1, got {config.batch_size}, {config.load_block_rows}")
    sources = [storage.normalize_uri(s) for s in config.source]
    out = storage.check_writable(config.out, "prepared dataset")
    staging = storage.join(out, "_staging")
    _clear(out)

    # Several roots are one dataset: WebLogo-2M's parts, or a base set and the review rounds
    # (`jobs/review.py import`) added to it; deduplication runs over them all.
    samples = iter_samples(config.format, sources) if config.format == "weblogo2m" else \
        itertools.chain.from_iterable(iter_samples(config.format, root) for root in sources)
    with_boxes = config.format in BOX_FORMATS
    rows, classes = _write_listing(samples, staging, config.listing_chunk, with_boxes)
    if rows == 0:
        raise ValueError(f"no images found under {', '.join(sources)} for --format {config.format}")
    log.info("listed %d images in %d classes", rows, len(classes))

    ray.data.DataContext.get_current().enable_progress_bars = config.progress_bars
    listing_fs, listing_path = storage.arrow_filesystem(storage.join(staging, "listing"))
    loaded_fs, loaded_path = storage.arrow_filesystem(storage.join(staging, "loaded"))
    loading = (
        read_parquet(listing_path, filesystem=listing_fs)
        # Listing order is class order. Shards written that way would give each training worker,
        # and each local shuffle buffer, a few classes at a time: BatchNorm statistics then
        # depend on the class mix and evaluation collapses. Shuffling the listing (small rows,
        # not images) with the seed makes every later block a fair sample, at flat memory.
        .random_shuffle(seed=config.seed)
        # The shuffle keeps the listing's blocks (a listing file each, up to 100k rows). Cut them
        # small: each block is one load task, so every CPU loads, and each task's memory (and
        # each staged file the write stage reads back) stays the same size at any scale. Strict:
        # otherwise each input block leaves a small remainder, and the map bundles remainders
        # (a read of one file in four blocks gave tasks of 11 to 27 rows for 16 asked).
        .repartition(target_num_rows_per_block=config.load_block_rows, strict=True)
        .map_batches(load_batch, fn_kwargs={"config": config}, batch_format="pyarrow", batch_size=config.batch_size)
    )
    with _progress(config, rows, storage.join(staging, "loaded")):
        loading.write_parquet(loaded_path, filesystem=loaded_fs)

    import pyarrow.dataset as pads

    loaded = pads.dataset(loaded_path, filesystem=loaded_fs, format="parquet")
    small = loaded.to_table(
        columns=["row_id", "source_uri", "class_name", "status", "error_kind", "error", "phash",
                 "width", "height", "pixel_sum", "pixel_sq_sum", "pixel_count", "box_count"]
    ).sort_by("row_id")
    usable = pc_count_ok(small)
    if usable == 0:
        import pyarrow.compute as pc

        first = small.filter(pc.equal(small["status"], "error")).slice(0, 3)
        reasons = "; ".join(f"{u}: {r}" for u, r in zip(first["source_uri"].to_pylist(), first["error"].to_pylist()))
        raise ValueError(f"none of the {rows} listed files is a usable image (e.g. {reasons})")
    embedding_pairs = None
    if config.embedding_model:
        embedding_pairs = _embedding_pairs(loaded_path, loaded_fs, staging, config)
    decision = _decide(small, rows, classes, config, embedding_pairs)
    del small

    class_index = {name: i for i, name in enumerate(classes)}
    out_fs, out_path = storage.arrow_filesystem(out)
    (
        read_parquet(loaded_path, filesystem=loaded_fs)
        .filter(expr=col("status") == "ok")
        .map_batches(_assign, fn_kwargs={"split_ref": ray.put(decision.split_of_row),
                                         "group_ref": ray.put(decision.group_of_row), "class_index": class_index},
                     batch_format="pyarrow", batch_size=None)
        .write_parquet(out_path, filesystem=out_fs, partition_cols=["split"])
    )

    storage.write_text(storage.join(out, "quarantine.json"), json.dumps(decision.quarantine, indent=1))
    kinds: dict[str, int] = {}
    for item in decision.quarantine:
        kinds[item["kind"]] = kinds.get(item["kind"], 0) + 1
    manifest = Manifest(
        classes=classes,
        source=", ".join(sources),
        format=config.format,
        seed=config.seed,
        quarantined=len(decision.quarantine),
        code_version=_code_version(),
        created_at=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        store_side=config.store_side,
        extra={"quarantine_by_kind": kinds, "images_listed": rows, "jpeg_quality": config.jpeg_quality,
               "load_tasks": len(loaded.files)},  # a staged file per load task
        **decision.manifest_parts,
    )
    storage.delete_prefix(staging)
    storage.write_text(storage.join(out, "manifest.json"), manifest.to_json())
    return manifest
