"""The nights already written under a report root: their scans' summaries, read from the date
partitions (`OUT/dt=<date>/_scan-<id>.json`), a night at a time."""

from __future__ import annotations

import datetime as dt
import json
import logging
from typing import Any

from lxn import storage
from lxn.scan.layout import Layout, check_date

__all__ = ["summaries_between", "nights_before", "latest_date", "reports_of"]

log = logging.getLogger(__name__)


def _dates(first: str, last: str) -> list[str]:
    start, end = dt.date.fromisoformat(check_date(first, "first night")), dt.date.fromisoformat(check_date(last, "last night"))
    return [(start + dt.timedelta(days=i)).isoformat() for i in range((end - start).days + 1)]


def summaries_between(layout: Layout, first: str, last: str) -> list[dict[str, Any]]:
    """The summaries of every scan dated `first`..`last` (inclusive), oldest night first. A file
    there that is not a summary lxn wrote is skipped with a warning."""
    found = []
    for date in _dates(first, last):
        for uri in layout.summaries(date):
            try:
                summary = json.loads(storage.read_text(uri))
                if not isinstance(summary, dict) or summary.get("date") != date or "report" not in summary:
                    raise ValueError("not a scan summary of this night")
            except ValueError as exc:
                log.warning("skipped %s: %s", uri, exc)
                continue
            found.append(summary)
    return found


def nights_before(layout: Layout, date: str, nights: int) -> list[dict[str, Any]]:
    """The summaries of the `nights` nights before `date` (not including it)."""
    day = dt.date.fromisoformat(check_date(date))
    if nights < 1:
        return []
    return summaries_between(layout, (day - dt.timedelta(days=nights)).isoformat(),
                             (day - dt.timedelta(days=1)).isoformat())


def latest_date(layout: Layout) -> str | None:
    """The newest `dt=<date>` partition under the root, or None."""
    try:
        prefixes = list(storage.iter_prefixes(layout.out))
    except FileNotFoundError:
        return None
    dates = []
    for prefix in prefixes:
        name = storage.basename(prefix.rstrip("/"))
        if name.startswith("dt="):
            try:
                dates.append(check_date(name[3:]))
            except ValueError:
                continue
    return max(dates) if dates else None


def reports_of(summaries: list[dict[str, Any]]) -> list[tuple[str, float]]:
    """(report URI, the threshold its scan used) of each summary whose report is still there."""
    return [(s["report"]["uri"], float((s.get("threshold") or {}).get("value") or 0.5)) for s in summaries
            if storage.exists(s["report"]["uri"])]
