"""The nightly scan: sources -> listing -> Ray Data (fetch + decode, predict) -> atomic report.

`run(config)` is the whole job; `jobs/scan.py` parses flags into a `ScanConfig` and calls it.

1. Resolve: the model alias becomes a version, once (every row records it); the model is loaded
   on the driver for its preset and class names, and fails the job there, before any listing,
   if it is not an lxn model. The scan id is derived (config.py). Half-published scans of the
   report root are published first (report.recover); a committed scan id returns at once.
2. List (driver, streaming): sources or the manifest -> filtered, minus what committed scans
   covered -> staged listing chunks. A re-run of the scan reuses a complete staged listing.
3. Scan (Ray Data, streaming): read the listing chunks -> small blocks -> `fetch_and_decode`
   (CPU tasks) -> `Predictor` (an actor pool, each actor loading the model once; one GPU per
   actor when the cluster has GPUs) -> the driver, which stages the result rows in parts.
   Pixels never reach the driver: it receives small result rows only.
4. Commit (report.py): intent, report moved into `dt=<date>/`, summary, covered set, `_SUCCESS`;
   the summary is printed by the job and logged to MLflow, one run per scan (the run name is the
   scan id, so a re-run continues the same run).
"""

from __future__ import annotations

import dataclasses
import logging
import re
import time
from typing import Any

from lxn import storage
from lxn.config import to_dict
from lxn.model_package import ModelPackage
from lxn.ray_utils import cluster_shape, init_ray, read_parquet
from lxn.redact import redact
from lxn.scan import listing as listing_mod
from lxn.scan.config import ScanConfig, derive_scan_id, scan_date
from lxn.scan.fetch import fetch_and_decode
from lxn.scan.lease import Lease
from lxn.scan.predictor import Predictor, needs_embeddings, predictor_settings
from lxn.scan.report import (
    Layout,
    StagedResults,
    finish_commit,
    list_files,
    load_covered,
    read_manifest,
    recover,
    staged_row_ids,
    unfinished_scans,
    write_intent,
)

__all__ = ["ScanResult", "run", "format_summary", "plan_actors", "configure_data_context", "decode_memory"]

log = logging.getLogger(__name__)

# Errors pyarrow's S3 client raises that are worth another try inside Ray Data's reads (pickled
# filesystems lose their retry strategy, see lxn.storage.arrow_filesystem).
_RETRIED_IO_ERRORS = ("AWS Error NETWORK_CONNECTION", "AWS Error SLOW_DOWN", "AWS Error INTERNAL_FAILURE",
                      "AWS Error SERVICE_UNAVAILABLE", "AWS Error UNKNOWN (HTTP status 500)",
                      "AWS Error UNKNOWN (HTTP status 503)", "curlCode: 28")
_PROGRESS_EVERY_S = 15.0


@dataclasses.dataclass
class ScanResult:
    scan_id: str
    manifest: dict[str, Any]  # the scan's `_SUCCESS` manifest: its summary
    already_committed: bool = False
    recovered: list[str] = dataclasses.field(default_factory=list)
    page: str | None = None  # the nightly page's URI (None: it could not be written, see the log)


@dataclasses.dataclass(frozen=True)
class _Plan:
    """A scan's settings resolved once, before it writes anything: what it scans, with which
    model version and threshold, under which id."""

    config: ScanConfig  # threshold and unknown_below as resolved
    layout: Layout
    scan_id: str
    date: str
    sources: list[str]
    manifest: str | None
    ref: Any  # lxn.registry.ModelRef
    tracking_uri: str
    threshold_source: str
    unknown_source: str


def run(config: ScanConfig) -> ScanResult:
    """Run (or resume, or find already committed) the scan that `config` describes."""
    started = time.monotonic()
    plan = _resolve(config)
    with Lease(plan.layout, plan.scan_id, wait_s=config.lease_wait) as lease:  # one writer under --out from here on
        return _run_leased(plan, lease, started)


def _resolve(config: ScanConfig) -> _Plan:
    """Check every input and output and resolve the model version, before any work: a missing
    source, a typo or an unreachable store fails here, before a model is loaded or a run created."""
    from lxn.registry import Registry, scan_threshold, scan_unknown_below
    from lxn.tracking import check_tracking

    if not config.source and not config.manifest:
        raise ValueError("nothing to scan: give --source PREFIX (repeatable) or --manifest FILE")
    layout = Layout(config.out)
    sources = listing_mod.check_sources(config.source, out=layout.out)
    manifest = storage.normalize_uri(config.manifest) if config.manifest else None
    if manifest:
        storage.check_readable(manifest, "--manifest")
    else:
        for source in sources:
            storage.check_listable(source, "--source")
    date = scan_date(config)
    storage.check_writable(layout.out, "scan report")
    tracking_uri = check_tracking(config.tracking_uri)
    versions = Registry(tracking_uri)
    ref = versions.resolve(config.model)  # once: every row records this version
    tags = versions.tags(ref)
    threshold, threshold_source = scan_threshold(config.threshold, tags)
    unknown_below, unknown_source = scan_unknown_below(config.unknown_below, tags)
    # the scan id and every row use these
    config = dataclasses.replace(config, threshold=threshold, unknown_below=unknown_below)
    log.info("no-logo threshold %.3f: %s; open-set cut: %s (%s)", threshold, threshold_source, unknown_below,
             unknown_source)
    scan_id = derive_scan_id(config, date=date, out=layout.out, sources=sources, manifest=manifest, model_uri=ref.uri)
    return _Plan(config, layout, scan_id, date, sources, manifest, ref, tracking_uri, threshold_source, unknown_source)


def _run_leased(plan: _Plan, lease: Lease, started: float) -> ScanResult:
    from lxn.tracking import RunTracker, fetch_model

    config, layout, scan_id, date, ref, tracking_uri = (plan.config, plan.layout, plan.scan_id, plan.date, plan.ref,
                                                        plan.tracking_uri)
    recovered = recover(layout)
    for done in recovered:
        _log_to_mlflow(done, _write_page(layout, done), tracking_uri)
    committed = read_manifest(layout, scan_id)
    if committed is not None:
        log.info("scan %s is already committed (%s); nothing to do", scan_id, committed["report"]["uri"])
        page = layout.page(date, scan_id)
        if not storage.exists(page):  # a scan committed before pages, or whose page failed
            _write_page(layout, committed)
        return ScanResult(scan_id, committed, already_committed=True, recovered=[m["scan_id"] for m in recovered],
                          page=page if storage.exists(page) else None)
    for other in unfinished_scans(layout):
        if other != scan_id:
            log.warning("scan %s under %s never finished: re-run its command (with its --date) to finish it, "
                        "or delete %s", other, layout.out, layout.staging(other))

    package = fetch_model(ref.uri, tracking_uri, task=None)  # once: the actors load these checked bytes
    loaded = package.load("cpu")  # preset and classes; a bad model fails here, not in every actor
    preset, class_names, prototype_brands = loaded.preset, loaded.predicted_classes, loaded.prototypes.brands
    if loaded.task == "detect":
        _check_detector_scan(config, ref.uri)
    if needs_embeddings(len(prototype_brands), config.embeddings, config.unknown_below):
        from lxn.embeddings import embedding_model

        embedding_model(loaded)  # a model without embeddings fails here, not in every actor
    del loaded

    tracker = RunTracker.start(config.experiment, scan_id, tracking_uri)
    try:
        from lxn.registry import KIND

        tracker.set_tags({KIND: "scan", "model_name": ref.name, "model_version": ref.version, "scan_date": date})
        tracker.log_params({**to_dict(config), "resolved_model": ref.uri, "scan_id": scan_id,
                            "threshold_source": plan.threshold_source, "unknown_below_source": plan.unknown_source})
        stats = listing_mod.read_listing_stats(layout.listing(scan_id))
        if stats is None:
            stats = _list(config, layout, scan_id, plan.sources, plan.manifest)
        else:
            log.info("scan %s: reusing its staged listing (%d objects to scan)", scan_id, stats.rows)
        inputs, pending, resumed = _pending(layout, scan_id, stats.rows)
        throughput = _scan(config, layout, scan_id, inputs, pending, preset, package) \
            if pending else {"rows": 0}
        throughput["resumed_rows"] = resumed
        throughput["wall_s"] = round(time.monotonic() - started, 3)

        write_intent(layout, scan_id, redact({
            "scan_id": scan_id,
            "date": date,
            "experiment": config.experiment,
            "model": {"name": ref.name, "version": ref.version, "uri": ref.uri, "requested": config.model},
            "sources": plan.sources,
            "manifest": plan.manifest,
            "counts": {"listed": stats.listed, "skipped_unchanged": stats.skipped_unchanged,
                       "duplicates": stats.duplicates, "to_scan": stats.rows},
            "throughput": throughput,
            "settings": {k: v for k, v in to_dict(config).items()
                         if k not in ("source", "manifest", "model", "out", "tracking_uri", "experiment")},
            "threshold": {"value": config.threshold, "source": plan.threshold_source},
            "unknown_below": {"value": config.unknown_below, "source": plan.unknown_source},
            "prototype_brands": prototype_brands,
            "image_size": preset.image_size,
            "classes": len(class_names),
        }))
        lease.check()
        result = finish_commit(layout, scan_id)
        page = _write_page(layout, result)
        _log_summary(tracker, result, page)
        tracker.finish()
    except BaseException:
        try:
            tracker.finish("FAILED")
        except Exception:  # noqa: BLE001 - the scan's own error is the one to report
            log.exception("could not mark MLflow run %s as failed", tracker.run_id)
        raise
    return ScanResult(scan_id, result, recovered=[m["scan_id"] for m in recovered], page=page and page[0])


def _write_page(layout: Layout, manifest: dict[str, Any]) -> tuple[str, str] | None:
    """Write a committed scan's nightly page beside its report: (its URI, its HTML), or None with
    a warning when it cannot be written. The scan is committed either way: the page is a view."""
    from lxn.nightly.build import write_night_page

    try:
        uri, text = write_night_page(layout, manifest)
    except Exception as exc:  # noqa: BLE001 - the report is committed; a page that fails is said, not fatal
        log.warning("scan %s is committed, but its nightly page could not be written (%s: %s); "
                    "write it with: python jobs/nightly.py --scans %s --since %s --until %s", manifest["scan_id"],
                    type(exc).__name__, exc, layout.out, manifest["date"], manifest["date"])
        return None
    log.info("nightly page: %s", uri)
    return uri, text


def _check_detector_scan(config: ScanConfig, uri: str) -> None:
    """A detector scans whole images and has no embeddings: the settings that need tiles or a
    classifier's embeddings are refused before any run starts."""
    wanted = [flag for flag, on in (("--tiles", bool(config.grids)), ("--embeddings", bool(config.embeddings)),
                                    ("--unknown-below", config.unknown_below is not None)) if on]
    if wanted:
        raise ValueError(f"{uri} is a detector: it finds every mark with its box in one pass over the whole image, "
                         f"so {', '.join(wanted)} (classifier settings) do not apply; drop them or scan with a "
                         "classifier version")


def _pending(layout: Layout, scan_id: str, listed: int) -> tuple[list[str], int, int]:
    """The staged listing files still to scan, how many rows they hold, and how many rows an
    earlier attempt of the scan already staged."""
    done = staged_row_ids(layout, scan_id)
    if not len(done):
        return list_files(layout.listing(scan_id)), listed, 0
    pending = listing_mod.write_pending(layout.listing(scan_id), layout.pending(scan_id), done)
    log.info("scan %s: resuming, %d rows already staged, %d to go", scan_id, len(done), pending)
    return list_files(layout.pending(scan_id)), pending, int(len(done))


def _list(config: ScanConfig, layout: Layout, scan_id: str, sources: list[str], manifest: str | None):
    covered = None if config.full else load_covered(layout)
    if manifest:
        root = sources[0] if len(sources) == 1 else None
        entries = listing_mod.iter_manifest(manifest, root=root, extensions=config.extension_filter,
                                            min_size=config.min_size, max_size=config.max_size,
                                            stat_threads=config.stat_threads)
    else:
        entries = listing_mod.iter_sources(sources, extensions=config.extension_filter, min_size=config.min_size,
                                           max_size=config.max_size)
    started = time.monotonic()
    stats = listing_mod.write_listing(listing_mod.outside(entries, layout.out), layout.listing(scan_id),
                                      covered=covered, chunk_rows=config.listing_chunk)
    log.info("scan %s: listed %d objects in %.1fs; %d unchanged since a committed scan, %d to scan",
             scan_id, stats.listed, time.monotonic() - started, stats.skipped_unchanged, stats.rows)
    return stats


def _scan(config: ScanConfig, layout: Layout, scan_id: str, inputs: list[str], pending: int, preset,
          package: ModelPackage) -> dict[str, Any]:
    """Run the Ray Data pipeline over the staged listing files `inputs`, staging results."""
    import ray
    import ray.data

    from lxn.progress import progress_line

    init_ray(address=config.ray_address)
    configure_data_context(config.progress_bars)

    placement = plan_actors(config, cluster_shape())
    use_gpu, actor_cpus = placement["use_gpu"], config.actor_cpus

    filesystem, _ = storage.arrow_filesystem(inputs[0])
    paths = [storage.arrow_filesystem(uri)[1] for uri in inputs]
    dataset = (
        read_parquet(paths, filesystem=filesystem)
        # Listing chunks are large blocks; decoding parallelises over blocks, so cut them small.
        .repartition(target_num_rows_per_block=config.batch_size, strict=True)
        .map_batches(
            fetch_and_decode,
            batch_size=config.batch_size,
            batch_format="numpy",
            fn_kwargs={"preset": preset.to_dict(), "grids": config.grids, "max_bytes": config.max_bytes,
                       "max_pixels": config.max_pixels, "threads": config.fetch_threads},
            num_cpus=1,
            # The memory a decode task holds: its output arrays plus room for one large image in
            # flight per fetch thread. Declaring it also keeps Ray Data from fusing this stage into
            # the predictor actors (it fuses stages with equal resource requests), where decoding
            # would run serially with the model and only on as many processes as there are actors.
            memory=decode_memory(config.batch_size, config.grids, config.fetch_threads, preset.image_size),
        )
        .map_batches(
            Predictor,
            fn_constructor_args=(package,),
            fn_constructor_kwargs={"scan_id": scan_id,
                                   "device": "cuda" if use_gpu else "cpu", **predictor_settings(config, decide=True)},
            batch_size=config.batch_size,
            batch_format="numpy",
            compute=ray.data.ActorPoolStrategy(min_size=config.actors, max_size=config.max_actors or config.actors),
            num_cpus=1 if use_gpu else actor_cpus,
            num_gpus=1 if use_gpu else 0,
            resources=config.actor_resource_amounts or None,
        )
    )
    writer = StagedResults(layout.results(scan_id), checkpoint_rows=config.checkpoint_rows,
                           checkpoint_seconds=config.checkpoint_seconds)
    start = time.monotonic()
    first = last = None
    first_rows = rows = 0
    next_report = start + _PROGRESS_EVERY_S
    for table in dataset.iter_batches(batch_size=None, batch_format="pyarrow"):
        now = time.monotonic()
        if first is None:
            first, first_rows = now, table.num_rows
        rows += table.num_rows
        last = now
        writer.add(table)
        if now >= next_report:
            next_report = now + _PROGRESS_EVERY_S
            log.info(progress_line(f"scan {scan_id}: images", rows, pending, now - start))  # with ETA, as prepare's
    writer.flush()
    if rows != pending:
        raise RuntimeError(f"scan {scan_id}: the pipeline returned {rows} rows for {pending} listed; "
                           "the staged results are kept, re-run the scan to finish it")
    pipeline_s = (last or start) - start
    steady_s = (last - first) if first is not None and last is not None else 0.0
    return {
        "rows": rows,
        "pipeline_s": round(pipeline_s, 3),
        "first_result_s": round((first or start) - start, 3),
        "images_per_s": round(rows / pipeline_s, 2) if pipeline_s > 0 else None,
        # after the first result: actor start-up and model loading excluded
        "steady_images_per_s": round((rows - first_rows) / steady_s, 2) if steady_s > 0 else None,
        "device": "cuda" if use_gpu else "cpu",
        "actors": config.actors,
        "max_actors": config.max_actors or config.actors,
        "batch_size": config.batch_size,
    }


def plan_actors(config: ScanConfig, shape) -> dict[str, Any]:
    """Where the predictor actors go, decided from what the cluster has or can start
    (`lxn.ray_utils.ClusterShape`): a GPU each when `--device cuda`, or `auto` and a GPU exists
    now or on a node type the autoscaler can start. Refuses, before any work, a pool that could
    never be placed (Ray would wait for it forever)."""
    use_gpu = config.device == "cuda" or (config.device == "auto" and shape.can_provide("GPU", 1))
    if use_gpu and not shape.can_provide("GPU", config.actors):
        raise ValueError(f"--actors {config.actors} needs a GPU each; this cluster has or can start "
                         f"{max(shape.resources.get('GPU', 0), shape.max_resources.get('GPU', 0)):g}")
    cpus = max(shape.resources.get("CPU", 0), shape.max_resources.get("CPU", 0))
    if not use_gpu and cpus < config.actors * config.actor_cpus + 1:
        raise ValueError(
            f"the cluster has {cpus:g} CPUs: {config.actors} predictor actors x {config.actor_cpus:g} CPUs leave none "
            "for fetching and decoding; lower --actors or --actor-cpus")
    for name, amount in config.actor_resource_amounts.items():
        if not shape.can_provide(name, amount * config.actors):
            raise ValueError(f"--actor-resources {name}={amount:g}: no node of this cluster advertises {name!r} "
                             f"for {config.actors} actor(s) (`ray start --resources '{{\"{name}\": 1}}'` on the nodes "
                             "meant for them)")
    return {"use_gpu": use_gpu}


def configure_data_context(progress_bars: bool) -> None:
    """Ray Data's settings for a job that reads objects (the scan, evaluation)."""
    import ray.data

    context = ray.data.DataContext.get_current()
    context.retried_io_errors = list(dict.fromkeys([*context.retried_io_errors, *_RETRIED_IO_ERRORS]))
    context.enable_progress_bars = progress_bars


def decode_memory(batch_size: int, grids: tuple[int, ...], fetch_threads: int, image_size: int) -> int:
    """The memory one fetch-and-decode task declares (see `_scan`)."""
    from lxn.scan.tiling import tile_count

    output = batch_size * tile_count(grids) * image_size * image_size * 3
    # a worker process with torch and Pillow loaded is ~400 MiB before it decodes anything
    return 512 * 2**20 + 2 * output + fetch_threads * 32 * 2**20


def _metric_key(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.\- /]", "_", text)[:250]


def _log_summary(tracker, manifest: dict[str, Any], page: tuple[str, str] | None) -> None:
    counts = manifest.get("counts", {})
    throughput = manifest.get("throughput", {})
    metrics: dict[str, float] = {f"images_{k}": v for k, v in counts.items() if isinstance(v, (int, float))}
    metrics.update({k: v for k, v in throughput.items() if isinstance(v, (int, float)) and not isinstance(v, bool)})
    metrics.update({f"errors.{_metric_key(k)}": v for k, v in manifest.get("errors_by_kind", {}).items()})
    metrics.update({f"brand.{_metric_key(k)}": v for k, v in manifest.get("brands", {}).items()})
    metrics["report_rows"] = manifest["report"]["rows"]
    tracker.log_metrics(metrics, step=0)
    tracker.log_dict(manifest, "scan_summary.json")
    tags = {"report_uri": manifest["report"]["uri"]}
    drifted = (manifest.get("drift") or {}).get("drifted")
    if drifted is not None:
        tags["drift"] = "true" if drifted else "false"
    if page is not None:
        tracker.log_text(page[1], "nightly.html")
        tags["page_uri"] = page[0]
    else:
        tags["page_error"] = "the nightly page could not be written: see the job's log"
    tracker.set_tags(tags)


def _log_to_mlflow(manifest: dict[str, Any], page: tuple[str, str] | None, tracking_uri: str) -> None:
    """Log a scan that `recover` published (its original job died before it could)."""
    from lxn.tracking import RunTracker

    tracker = RunTracker.start(manifest.get("experiment", "lxn-scans"), manifest["scan_id"], tracking_uri)
    _log_summary(tracker, manifest, page)
    tracker.finish()


def format_summary(manifest: dict[str, Any], *, top: int = 15) -> str:
    """The summary as the job prints it."""
    counts, throughput = manifest.get("counts", {}), manifest.get("throughput", {})
    model = manifest.get("model", {})
    lines = [
        f"scan {manifest['scan_id']} ({manifest['date']}), model {model.get('name')} v{model.get('version')}",
        f"report: {manifest['report']['uri']} ({manifest['report']['rows']} rows)",
        "objects: " + ", ".join(f"{k} {v}" for k, v in counts.items()),
    ]
    if throughput.get("rows"):
        steady = throughput.get("steady_images_per_s")
        lines.append(
            f"throughput: {throughput.get('images_per_s')} images/s over the pipeline"
            + (f" ({steady} after the first result)" if steady else "")
            + f", wall {throughput.get('wall_s')} s"
            + (f", {throughput['resumed_rows']} rows from an earlier attempt" if throughput.get("resumed_rows") else "")
        )
    brands = list(manifest.get("brands", {}).items())
    if brands:
        shown = ", ".join(f"{name} {count}" for name, count in brands[:top])
        lines.append(f"brands: {shown}" + (f" (+{len(brands) - top} more)" if len(brands) > top else ""))
    errors = manifest.get("errors_by_kind", {})
    if errors:
        lines.append("errors: " + ", ".join(f"{k} {v}" for k, v in errors.items()))
    verdict = manifest.get("drift")
    if isinstance(verdict, dict):
        if verdict.get("drifted"):
            lines.append(f"DRIFT against the trailing {verdict.get('window_nights')} nights: "
                         + "; ".join(verdict.get("reasons", [])))
        elif verdict.get("drifted") is False:
            lines.append(f"drift: none (brand mix PSI {verdict.get('brand_psi')}, confidence PSI "
                         f"{verdict.get('confidence_psi')}, cut {verdict.get('cut')})")
        else:
            lines.append(f"drift: not judged ({verdict.get('reason')})")
    return "\n".join(lines)
