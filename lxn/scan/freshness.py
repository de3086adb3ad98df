"""Did last night's scan land? `jobs/scan.py --check DATE --out OUT` reads the report root and
says, for one date: `ok` (a committed scan of that date: its report, rows and errors), `unfinished`
(staging of that date but no commit: a scan failed or is still running) or `missing` (nothing).
Run it from cron or a CronJob after the scan's window, with `--notify`, so a night that did not
happen reaches a person instead of a dashboard nobody opens."""

from __future__ import annotations

import json
from typing import Any

from lxn import storage
from lxn.redact import redact_uri
from lxn.scan.layout import Layout, check_date
from lxn.scan.report import committed_scans, read_manifest, unfinished_scans

__all__ = ["check_night", "EXIT_STALE"]

EXIT_STALE = 1  # the night's report is missing or half-written


def _staged_date(layout: Layout, scan_id: str) -> str | None:
    """The date of an unfinished scan: its intent's, once written, else a derived id's prefix."""
    try:
        return json.loads(storage.read_text(layout.intent(scan_id))).get("date")
    except (FileNotFoundError, ValueError, AttributeError):
        prefix = scan_id[:10]
        try:
            return check_date(prefix)
        except ValueError:
            return None


def check_night(out: str, date: str) -> dict[str, Any]:
    """The state of `date`'s scan under the report root `out` (see the module docstring)."""
    check_date(date, "--check")
    layout = Layout(out)
    scans = []
    for scan_id in committed_scans(layout):
        manifest = read_manifest(layout, scan_id)
        if manifest is not None and manifest.get("date") == date:
            scans.append({"scan_id": scan_id, "report": manifest["report"]["uri"], "rows": manifest["report"]["rows"],
                          "counts": manifest.get("counts", {}), "errors_by_kind": manifest.get("errors_by_kind", {})})
    unfinished = [s for s in unfinished_scans(layout) if _staged_date(layout, s) == date]
    status = "ok" if scans else "unfinished" if unfinished else "missing"
    return {"date": date, "out": redact_uri(layout.out), "status": status, "scans": scans, "unfinished": unfinished}


def describe(night: dict[str, Any]) -> str:
    """One line for a person (and a webhook's `text`)."""
    where = f"{night['out']} for {night['date']}"
    if night["status"] == "ok":
        rows = sum(s["rows"] for s in night["scans"])
        errors = sum(sum(s["errors_by_kind"].values()) for s in night["scans"])
        return f"lxn scan report present under {where}: {len(night['scans'])} scan(s), {rows} rows, {errors} error rows"
    if night["status"] == "unfinished":
        return (f"lxn scan report MISSING under {where}: scan {', '.join(night['unfinished'])} started but never "
                "committed (failed or still running): re-run its command to finish it")
    return f"lxn scan report MISSING under {where}: no scan of that date was started"
