"""The nightly brand-monitoring scan.

    python jobs/scan.py --source s3://bucket/prefix [--source ...] --model models:/logoxpertnet@champion \
        --out s3://reports/brand-scans

    ray job submit --working-dir . -- python jobs/scan.py --source ... --out ...
    python jobs/scan.py      # embedded demo: scans a generated "nightly bucket" with the local champion
    python jobs/scan.py --check 2026-12-01 --out s3://reports/brand-scans   # did that night's report land?

Re-running the same command resumes a killed scan (or does nothing if it is committed); see
lxn/scan/pipeline.py for the stages and lxn/scan/schema.py for the report's columns. With
--notify URL (or LXN_NOTIFY_URL) a webhook gets the summary, or the error, of every run.
Exit status: 0 done (--check: the report is there), 1 --check found it missing or unfinished,
2 bad input or unreachable services.
"""

from __future__ import annotations

import dataclasses
import sys

from lxn.cli import run_job
from lxn.notify import notify
from lxn.preflight import check_reach
from lxn.redact import redact
from lxn.scan.config import parse_scan_config


parse_config = parse_scan_config


def main(argv: list[str] | None = None) -> int:
    return run_job(lambda: _scan(argv), _show)


def _scan(argv: list[str] | None):
    config = parse_scan_config(argv, description=__doc__)
    if config.check:
        return _check(config)
    from lxn.scan.pipeline import run

    demo = not config.source and not config.manifest
    try:
        check_reach(config, demo=demo)  # on a multi-node cluster: nothing only this node has
        if demo:
            from lxn.demo import nightly_images

            config = dataclasses.replace(config, source=[nightly_images("lxn-local")])
        result = run(config)
    except Exception as exc:
        notify(config.notify_url, "scan", "failed", f"lxn scan FAILED ({config.out}): {exc}",
               {"out": config.out, "date": config.date, "error": f"{type(exc).__name__}: {exc}"})
        raise
    notify(config.notify_url, "scan", *notice(result),
           {"summary": result.manifest, "already_committed": result.already_committed, "page": result.page})
    return result


def notice(result) -> tuple[str, str]:
    """The status and line a finished scan posts: `drift` (and says so) when its night drifted."""
    from lxn.scan.pipeline import format_summary

    lines = format_summary(result.manifest).splitlines()
    if (result.manifest.get("drift") or {}).get("drifted"):
        return "drift", f"lxn {lines[0]}: {lines[2]}; DRIFT: {'; '.join(result.manifest['drift']['reasons'])}" + (
            f" (page: {result.page})" if result.page else "")
    return "ok", f"lxn {lines[0]}: {lines[2]}"


def _check(config) -> dict:
    from lxn.scan.freshness import check_night, describe

    try:
        night = check_night(config.out, config.check)
    except Exception as exc:  # the report root cannot be read: that, too, someone must hear about
        notify(config.notify_url, "scan-check", "failed", f"lxn scan check of {config.check} FAILED: {exc}",
               {"out": config.out, "date": config.check, "error": f"{type(exc).__name__}: {exc}"})
        raise
    if night["status"] != "ok":
        notify(config.notify_url, "scan-check", night["status"], describe(night), night)
    return night


def _show(result) -> int | None:
    from lxn.scan.pipeline import format_summary

    if isinstance(result, dict):  # --check
        from lxn.scan.freshness import EXIT_STALE, describe

        print(redact(describe(result)))
        return 0 if result["status"] == "ok" else EXIT_STALE
    if result.already_committed:
        print(f"scan {result.scan_id} was already committed; its summary:")
    print(redact(format_summary(result.manifest)))
    print(f"page: {result.page}" if result.page else "page: not written (see the log above)")


if __name__ == "__main__":
    sys.exit(main())
