"""The nightly brand-monitoring scan.

    python jobs/scan.py --source s3://bucket/prefix [--source ...] --model models:/logoxpertnet@champion \
        --out s3://reports/brand-scans

    ray job submit --working-dir . -- python jobs/scan.py --source ... --out ...
    python jobs/scan.py      # embedded demo: scans a generated "nightly bucket" with the local champion

Re-running the same command resumes a killed scan (or does nothing if it is committed); see
lxn/scan/pipeline.py for the stages and lxn/scan/report.py for the report's schema and layout.
"""

from __future__ import annotations

import dataclasses
import sys

from lxn.cli import run_job
from lxn.preflight import check_reach
from lxn.redact import redact
from lxn.scan.config import parse_scan_config


parse_config = parse_scan_config


def main(argv: list[str] | None = None) -> int:
    return run_job(lambda: _scan(argv), _show)


def _scan(argv: list[str] | None):
    from lxn.scan.pipeline import run

    config = parse_scan_config(argv, description=__doc__)
    demo = not config.source and not config.manifest
    check_reach(config, demo=demo)  # on a multi-node cluster: nothing only this node has
    if demo:
        from lxn.demo import nightly_images

        config = dataclasses.replace(config, source=[nightly_images("lxn-local")])
    return run(config)


def _show(result) -> None:
    from lxn.scan.pipeline import format_summary

    if result.already_committed:
        print(f"scan {result.scan_id} was already committed; its summary:")
    print(redact(format_summary(result.manifest)))


if __name__ == "__main__":
    sys.exit(main())
