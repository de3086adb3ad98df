"""The nightly brand-monitoring scan: object buckets -> Ray Data batch inference -> Parquet reports.

`lxn.scan.run(ScanConfig(...))` is the job (see pipeline.py for the stages, report.py for the
report's schema, layout and atomic commit, state.py for incremental scans, tiling.py for the
multi-scale mode). Importing this package loads no Ray, torch or MLflow.
"""

from __future__ import annotations

__all__ = ["ScanConfig", "ScanResult", "run", "REPORT_SCHEMA"]


def __getattr__(name: str):
    # Lazy: `from lxn.scan import ScanConfig` must not pull in Ray (jobs print --help quickly).
    if name == "ScanConfig":
        from lxn.scan.config import ScanConfig

        return ScanConfig
    if name in ("ScanResult", "run"):
        from lxn.scan import pipeline

        return getattr(pipeline, name)
    if name == "REPORT_SCHEMA":
        from lxn.scan.report import REPORT_SCHEMA

        return REPORT_SCHEMA
    raise AttributeError(f"module 'lxn.scan' has no attribute {name!r}")
