"""Where a report root keeps everything, and the rules for the names that shape those paths.

Every path under a report root is built here, from a scan id and a date that pass
`check_scan_id` / `check_date`, whether they came from the command line or were read back from
storage (a commit file, a folder name): a planted `_COMMIT.json` with `"date": "../../x"` cannot
move a write outside the root.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re

from lxn import storage

__all__ = ["SCAN_ID_RE", "check_scan_id", "check_date", "Layout"]

# A scan id names folders and files: `<date>-<10 hex>` when derived, or what --scan-id says.
SCAN_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
_DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def check_scan_id(scan_id: object, where: str = "--scan-id") -> str:
    """`scan_id` if it is 1-100 characters of A-Z a-z 0-9 . _ - (not starting with punctuation)."""
    if not isinstance(scan_id, str) or not SCAN_ID_RE.match(scan_id) or ".." in scan_id:
        raise ValueError(f"{where}: a scan id is 1-100 characters of A-Z a-z 0-9 . _ - (no leading punctuation, "
                         f"no '..'), got {scan_id!r}")
    return scan_id


def check_date(date: object, where: str = "--date") -> str:
    """`date` if it is a real calendar date written YYYY-MM-DD."""
    if isinstance(date, str) and _DATE_RE.match(date):
        try:
            dt.date.fromisoformat(date)
            return date
        except ValueError:
            pass
    raise ValueError(f"{where}: a date is YYYY-MM-DD, got {date!r}")


@dataclasses.dataclass(frozen=True)
class Layout:
    """The paths of one report root (`out`)::

        OUT/dt=<date>/scan-<id>.parquet     the report: one file per scan, all its rows
        OUT/dt=<date>/_scan-<id>.json       the scan's summary
        OUT/dt=<date>/_scan-<id>.html       the scan's nightly page (lxn.nightly)
        OUT/_pages/nights-<a>-<b>.html      a page of the nights a..b (jobs/nightly.py)
        OUT/_scans/<id>/_SUCCESS            JSON manifest (the summary plus the report's size), last
        OUT/_scans/<id>/covered.parquet     what the scan covered, for incremental scans (state.py)
        OUT/_staging/<id>/                  a scan in progress; removed once it is committed
        OUT/_quarantine/<id>-<time>/        a staging folder that could not be committed, set aside
        OUT/_lease.json                     the lease of the one scan writing here (lease.py)
    """

    out: str

    def __post_init__(self) -> None:
        object.__setattr__(self, "out", storage.location(self.out))

    def partition(self, date: str) -> str:
        return storage.join(self.out, f"dt={check_date(date)}")

    def report(self, date: str, scan_id: str) -> str:
        return storage.join(self.partition(date), f"scan-{check_scan_id(scan_id)}.parquet")

    def summary(self, date: str, scan_id: str) -> str:
        return storage.join(self.partition(date), f"_scan-{check_scan_id(scan_id)}.json")

    def summaries(self, date: str) -> list[str]:
        """The summaries written in `date`'s partition, sorted (none when it does not exist)."""
        try:
            uris = [info.uri for info in storage.iter_objects(self.partition(date))]
        except FileNotFoundError:
            return []
        return sorted(u for u in uris if re.fullmatch(r"_scan-[^/]+\.json", storage.basename(u)))

    def page(self, date: str, scan_id: str) -> str:
        return storage.join(self.partition(date), f"_scan-{check_scan_id(scan_id)}.html")

    def range_page(self, first: str, last: str) -> str:
        return storage.join(self.out, "_pages", f"nights-{check_date(first)}-{check_date(last)}.html")

    def scans(self) -> str:
        return storage.join(self.out, "_scans")

    def scan_dir(self, scan_id: str) -> str:
        return storage.join(self.scans(), check_scan_id(scan_id))

    def success(self, scan_id: str) -> str:
        return storage.join(self.scan_dir(scan_id), "_SUCCESS")

    def covered(self, scan_id: str) -> str:
        return storage.join(self.scan_dir(scan_id), "covered.parquet")

    def staging_root(self) -> str:
        return storage.join(self.out, "_staging")

    def staging(self, scan_id: str) -> str:
        return storage.join(self.staging_root(), check_scan_id(scan_id))

    def listing(self, scan_id: str) -> str:
        return storage.join(self.staging(scan_id), "listing")

    def pending(self, scan_id: str) -> str:
        return storage.join(self.staging(scan_id), "pending")

    def results(self, scan_id: str) -> str:
        return storage.join(self.staging(scan_id), "results")

    def intent(self, scan_id: str) -> str:
        return storage.join(self.staging(scan_id), "_COMMIT.json")

    def staged_report(self, scan_id: str) -> str:
        return storage.join(self.staging(scan_id), "report.parquet")

    def quarantine(self, name: str) -> str:
        return storage.join(self.out, "_quarantine", check_scan_id(name, "quarantine folder"))

    def lease(self) -> str:
        return storage.join(self.out, "_lease.json")
