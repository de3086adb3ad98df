"""Pages from what a report root already holds: a committed scan's page beside its report, and a
page for a range of nights (`jobs/nightly.py`)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
from collections.abc import Iterable
from typing import Any

import lxn
from lxn import storage
from lxn.config import setting
from lxn.nightly.drift import WINDOW_NIGHTS
from lxn.nightly.history import nights_before, reports_of, summaries_between
from lxn.nightly.page import PageData, build_page, hits_shown
from lxn.nightly.picks import Bounds, Picks, pick_reports
from lxn.nightly.thumbs import thumbnails
from lxn.scan.layout import Layout, check_date

__all__ = ["NightsConfig", "WINDOW_NIGHTS", "night_page", "range_page", "write_night_page", "write_range_page"]

log = logging.getLogger(__name__)

_HTML = "text/html; charset=utf-8"


@dataclasses.dataclass(frozen=True)
class NightsConfig:
    scans: str = setting("lxn-local/brand-scans", "report root of the scans (local or s3://)", uri="input")
    since: str = setting("", "first night, YYYY-MM-DD")
    until: str | None = setting(None, "last night, YYYY-MM-DD (default: today, UTC)")
    page: str | None = setting(None, "where to write the page (default: SCANS/_pages/nights-SINCE-UNTIL.html)",
                               uri="output")

    def __post_init__(self) -> None:
        if not self.since:
            raise ValueError("give the first night: --since YYYY-MM-DD")
        check_date(self.since, "--since")
        if self.until is not None:
            check_date(self.until, "--until")


def _by_night(summaries: Iterable[dict[str, Any]]) -> list[tuple[str, list[dict[str, Any]]]]:
    nights: dict[str, list[dict[str, Any]]] = {}
    for summary in summaries:
        nights.setdefault(summary["date"], []).append(summary)
    return sorted(nights.items())


def _picks(summaries: list[dict[str, Any]], bounds: Bounds) -> Picks:
    return pick_reports(reports_of(summaries), bounds=bounds)


def _page(title: str, focus: list[dict[str, Any]], nights, baseline, bounds: Bounds) -> str:
    picks = _picks(focus, bounds)
    thumbs = thumbnails(hits_shown(picks, focus))
    return build_page(PageData(title, focus, nights, baseline, picks, thumbs, lxn_version=lxn.__version__))


def night_page(layout: Layout, manifest: dict[str, Any], *, window: int = WINDOW_NIGHTS,
               bounds: Bounds | None = None) -> str:
    """The HTML page of one committed scan (its manifest), with the `window` nights before it."""
    date = check_date(manifest["date"], "the scan's date")
    trailing = nights_before(layout, date, window)
    nights = _by_night([*trailing, manifest])
    return _page(f"lxn nightly: {date}", [manifest], nights, trailing, bounds or Bounds())


def range_page(layout: Layout, first: str, last: str, *, bounds: Bounds | None = None) -> tuple[str, int]:
    """The HTML page of every scan dated `first`..`last`, and how many scans it covers."""
    if check_date(first, "--since") > check_date(last, "--until"):
        raise ValueError(f"--since {first} is after --until {last}")
    scans = summaries_between(layout, first, last)
    if not scans:
        raise ValueError(f"no committed scan under {layout.out} is dated {first}..{last}")
    return _page(f"lxn nights {first} to {last}", scans, _by_night(scans), [], bounds or Bounds()), len(scans)


def write_night_page(layout: Layout, manifest: dict[str, Any], **kwargs: Any) -> tuple[str, str]:
    """Write the scan's page beside its report (`Layout.page`); returns its URI and its HTML."""
    uri = layout.page(manifest["date"], manifest["scan_id"])
    text = night_page(layout, manifest, **kwargs)
    storage.write_text(uri, text, content_type=_HTML)
    return uri, text


def write_range_page(config: NightsConfig) -> dict[str, Any]:
    """Write the page of the nights `since`..`until` (default: today, UTC) to `page` (default
    `Layout.range_page`); returns what was written."""
    layout = Layout(config.scans)
    storage.check_listable(layout.out, "--scans")
    first, last = config.since, config.until or dt.datetime.now(dt.timezone.utc).date().isoformat()
    text, scans = range_page(layout, first, last)
    uri = storage.normalize_uri(config.page) if config.page else layout.range_page(first, last)
    storage.write_text(uri, text, content_type=_HTML)
    return {"page": uri, "scans": scans, "since": first, "until": last, "bytes": len(text.encode())}
