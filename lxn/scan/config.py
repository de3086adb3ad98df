"""The scan's settings: one typed block, turned into `jobs/scan.py`'s flags by `lxn.config`.

A scan is identified by its date, its report root and every setting that shapes its rows
(sources, filters, model version, threshold, top-k, tiles, ...): `scan_id` is
`<date>-<10 hex digits>` of those, so two report roots never share a scan (or its MLflow run).
Re-running the same command on the same day therefore names the same scan, and resumes it or
finds it already committed; settings that only change speed (batch size, actors, threads) do
not change the id, so a re-run may tune them.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import hashlib
import json
import os
from typing import Literal

from lxn.config import add_arguments, from_namespace, setting
from lxn.images import DEFAULT_MAX_BYTES, DEFAULT_MAX_PIXELS, FILE_EXTENSIONS
from lxn.notify import check_webhook
from lxn.scan.layout import check_date, check_scan_id

__all__ = ["ScanConfig", "DEFAULT_EXTENSIONS", "build_parser", "parse_scan_config", "scan_date", "derive_scan_id"]

# What a media bucket holds under image names, phones' HEIC and vector SVG included.
DEFAULT_EXTENSIONS = list(FILE_EXTENSIONS)

_MAX_GRID = 8
NOTIFY_ENV = "LXN_NOTIFY_URL"


@dataclasses.dataclass(frozen=True)
class ScanConfig:
    source: list[str] = setting([], "bucket prefix or local directory to scan; repeat --source for several", uri="input")
    manifest: str | None = setting(None, "objects to scan instead of listing: Parquet with a `uri` (or `key`) column and optional etag/size/last_modified columns, or text with one URI or key per line; keys are relative to the single --source", uri="input")
    model: str = setting("models:/logoxpertnet@champion", "models:/<name>@<alias> (resolved once, at start, to a version) or models:/<name>/<version>")
    out: str = setting("lxn-local/brand-scans", "report root: local path or s3:// URI", uri="output")
    tracking_uri: str | None = setting(None, "MLflow tracking URI (default: MLFLOW_TRACKING_URI, else sqlite:///mlflow.db)", uri="tracking")
    experiment: str = setting("lxn-scans", "MLflow experiment of the scan runs (one run per scan)")
    date: str | None = setting(None, "scan date YYYY-MM-DD: the report's dt= partition (default: today, UTC)")
    scan_id: str | None = setting(None, "name the scan instead of deriving <date>-<hash of the settings> (e.g. for a second scan on one day)")
    full: bool = setting(False, "rescan every object, also those a previous successful scan covered (same key and ETag)")
    extensions: list[str] | None = setting(list(DEFAULT_EXTENSIONS), "keep keys with these extensions (case-insensitive); --extensions with nothing after it keeps every key")
    min_size: int = setting(0, "skip objects smaller than this many bytes (0 keeps empty objects, which are reported as errors)")
    max_size: int | None = setting(None, "skip objects larger than this many bytes (default: no limit; see also --max-bytes)")
    threshold: float | None = setting(None, "no-logo threshold: `brand` is null when the top-1 probability is below it (default: the version's lxn.threshold tag, chosen on validation data for a target precision, else 0.5)")
    top_k: int = setting(5, "brands with probabilities kept per image")
    no_logo_class: str = setting("no-logo", "the model's class meaning 'no logo': `brand` is null when it is the top-1")
    tiles: list[int] | None = setting(None, "multi-scale mode: also classify overlapping N x N grids of tiles (e.g. --tiles 2 3) and report the best tile's box")
    embeddings: Literal["float16", "int8"] | None = setting(None, "store each ok row's embedding (the chosen tile's, a unit vector) in the report's `embedding` column, as float16 or int8, for jobs/search.py")
    unknown_below: float | None = setting(None, "open set: an image whose embedding's cosine similarity to every brand (class or prototype) is below this is an unknown mark, not a brand (default: the version's lxn.unknown_below tag, else off)")
    batch_size: int = setting(32, "images per model call (and per Ray Data batch)")
    actors: int = setting(1, "predictor actors, each loading the model once: the pool's size, or its minimum with --max-actors")
    max_actors: int | None = setting(None, "let the actor pool grow to this many actors as work queues up (an autoscaling cluster adds nodes for them)")
    actor_cpus: float = setting(1.0, "CPUs reserved per predictor actor (leave at least one CPU of the cluster for decoding)")
    actor_resources: list[str] | None = setting(None, "custom Ray resources each predictor actor asks for, NAME=AMOUNT (e.g. accelerator=1: only nodes that advertise it host actors)")
    model_threads: int = setting(0, "torch intra-op threads per predictor actor on the CPU (0: Ray's default, the actor's CPUs)")
    device: Literal["auto", "cpu", "cuda"] = setting("auto", "predictor device: auto uses one GPU per actor when the cluster has GPUs or its autoscaler can start a GPU node")
    fetch_threads: int = setting(8, "concurrent fetches within a decode task (hides S3 latency)")
    max_bytes: int = setting(DEFAULT_MAX_BYTES, "objects larger than this are not fetched: an error row (too_large)")
    max_pixels: int = setting(DEFAULT_MAX_PIXELS, "decompression-bomb cap on the pixels an image header declares: an error row (too_large)")
    listing_chunk: int = setting(50_000, "objects per staged listing file (bounds the driver's memory while listing)")
    checkpoint_rows: int = setting(5_000, "results are staged at least every this many rows: a killed scan redoes at most about this many")
    checkpoint_seconds: float = setting(60.0, "... or at least this often")
    lease_wait: float = setting(0.0, "seconds to wait while another scan holds the report root's lease (one scan writes to a root at a time); 0: exit at once")
    stat_threads: int = setting(16, "concurrent HEAD requests for manifest entries without an ETag")
    ray_address: str | None = setting(None, "Ray cluster to join (default: RAY_ADDRESS, else a local Ray)")
    progress_bars: bool = setting(True, "Ray Data's progress bars (--no-progress-bars for cron logs; progress is logged either way)")
    shared_filesystem: bool = setting(False, "local paths are on a filesystem every node mounts at the same path (NFS, EFS): allow them on a multi-node cluster")
    notify: str | None = setting(None, "webhook URL (Slack, Teams, an alerting tool) that gets the scan's summary or its error as JSON; default: the LXN_NOTIFY_URL environment variable, which keeps the URL, a credential, out of command lines and Ray's job list")
    check: str | None = setting(None, "scan nothing: check that the scan of this date (YYYY-MM-DD) under --out was committed; exit 1 when it is missing or half-written (with --notify: tell someone)")

    def __post_init__(self) -> None:
        problems = []
        if self.threshold is not None and not 0.0 <= self.threshold <= 1.0:
            problems.append(f"--threshold must be within 0..1, got {self.threshold}")
        for name in ("top_k", "batch_size", "actors", "fetch_threads", "listing_chunk", "checkpoint_rows", "stat_threads"):
            if getattr(self, name) < 1:
                problems.append(f"--{name.replace('_', '-')} must be at least 1, got {getattr(self, name)}")
        if self.max_actors is not None and self.max_actors < self.actors:
            problems.append(f"--max-actors {self.max_actors} is below --actors {self.actors}")
        try:
            _ = self.actor_resource_amounts  # the property parses --actor-resource; its error is the message
        except ValueError as error:
            problems.append(str(error))
        if self.actor_cpus <= 0 or self.model_threads < 0 or self.checkpoint_seconds <= 0:
            problems.append("--actor-cpus and --checkpoint-seconds must be positive, --model-threads at least 0")
        if self.min_size < 0 or (self.max_size is not None and self.max_size < self.min_size):
            problems.append(f"sizes must satisfy 0 <= --min-size <= --max-size, got {self.min_size} and {self.max_size}")
        if self.max_bytes < 1 or self.max_pixels < 1:
            problems.append("--max-bytes and --max-pixels must be positive")
        if self.unknown_below is not None and not -1.0 <= self.unknown_below <= 1.0:
            problems.append(f"--unknown-below is a cosine similarity within -1..1, got {self.unknown_below}")
        if self.tiles is not None and any(not 2 <= g <= _MAX_GRID for g in self.tiles):
            problems.append(f"--tiles takes grid sizes within 2..{_MAX_GRID} (the whole image is always a tile), got {self.tiles}")
        if self.lease_wait < 0:
            problems.append(f"--lease-wait must be >= 0 seconds, got {self.lease_wait}")
        if self.notify_url:
            try:
                check_webhook(self.notify_url)
            except ValueError as exc:
                problems.append(str(exc))
        for value, check, where in ((self.date, check_date, "--date"), (self.scan_id, check_scan_id, "--scan-id"),
                                    (self.check, check_date, "--check")):
            if value is not None:
                try:
                    check(value, where)
                except ValueError as exc:
                    problems.append(str(exc))
        if problems:
            raise ValueError("; ".join(problems))

    @property
    def notify_url(self) -> str | None:
        """--notify, else LXN_NOTIFY_URL; None: nobody is told."""
        return self.notify or os.environ.get(NOTIFY_ENV) or None

    @property
    def grids(self) -> tuple[int, ...]:
        """The tile grids, sorted and without repeats; () when tiling is off."""
        return tuple(sorted(set(self.tiles or ())))

    @property
    def actor_resource_amounts(self) -> dict[str, float]:
        """--actor-resources as {name: amount}."""
        amounts = {}
        for item in self.actor_resources or ():
            name, sep, amount = item.partition("=")
            try:
                value = float(amount)
            except ValueError:
                value = -1.0
            if not sep or not name or value <= 0 or name in ("CPU", "GPU", "memory"):
                raise ValueError(f"--actor-resources takes NAME=AMOUNT of a custom resource (amount > 0; CPU and GPU "
                                 f"have their own flags), got {item!r}")
            amounts[name] = value
        return amounts

    @property
    def extension_filter(self) -> list[str] | None:
        return [e for e in self.extensions] if self.extensions else None


def build_parser(description: str | None = None) -> argparse.ArgumentParser:
    """The scan's flags; `--source` may be repeated (`--source a --source b` or `--source a b`)."""
    parser = argparse.ArgumentParser(description=description, conflict_handler="resolve",
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(parser, ScanConfig)
    # lxn.config makes list flags `nargs="+"`, where a repeated flag replaces the earlier values;
    # the interface repeats --source, so it is redefined to accumulate.
    parser.add_argument("--source", dest="source", action="extend", nargs="+", default=argparse.SUPPRESS,
                        help="bucket prefix or local directory to scan; repeat --source for several")
    return parser


def parse_scan_config(argv: list[str] | None = None, description: str | None = None) -> ScanConfig:
    return from_namespace(ScanConfig, build_parser(description).parse_args(argv))


def scan_date(config: ScanConfig, now: dt.datetime | None = None) -> str:
    """`--date`, or today's date in UTC."""
    return config.date or (now or dt.datetime.now(dt.timezone.utc)).date().isoformat()


def derive_scan_id(config: ScanConfig, *, date: str, out: str, sources: list[str], manifest: str | None,
                   model_uri: str) -> str:
    """`<date>-<hash>` of the report root and every setting that shapes the report's rows (see the
    module docstring). `out`, `sources` and `manifest` are the normalised URIs, `model_uri` the
    resolved `models:/name/version`."""
    if config.scan_id:
        return config.scan_id
    shaping = {
        "out": out,
        "sources": sorted(sources),
        "manifest": manifest,
        "extensions": sorted({e.lower().lstrip(".") for e in config.extension_filter or []}) or None,
        "min_size": config.min_size,
        "max_size": config.max_size,
        "full": config.full,
        "model": model_uri,
        "threshold": config.threshold,
        "top_k": config.top_k,
        "no_logo_class": config.no_logo_class,
        "tiles": list(config.grids),
        "max_bytes": config.max_bytes,
        "max_pixels": config.max_pixels,
    }
    # Added later: only when set, so the ids of scans without them stay what they were.
    shaping.update({k: v for k, v in (("embeddings", config.embeddings), ("unknown_below", config.unknown_below))
                    if v is not None})
    digest = hashlib.sha256(json.dumps(shaping, sort_keys=True).encode()).hexdigest()[:10]
    return f"{date}-{digest}"
