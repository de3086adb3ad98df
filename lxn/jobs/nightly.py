r"""The nightly page for a range of nights, from the reports already written.

    python jobs/nightly.py --scans s3://reports/brand-scans --since 2026-11-01 --until 2026-11-30

Every committed scan already has its own page beside its report (`dt=<date>/_scan-<id>.html`);
this one shows the nights SINCE..UNTIL together: brand appearances by night, each night's drift
verdict, top hits with their boxes, the review queue, unknown and new-brand marks, errors.
Writes SCANS/_pages/nights-SINCE-UNTIL.html (or --page) and prints JSON: where, how many scans.
Exit status: 0 done, 2 bad input (no scan in the range, an unreadable root).
"""

from __future__ import annotations

import argparse
import sys

from lxn.cli import run_job
from lxn.config import add_arguments, from_namespace


def main(argv: list[str] | None = None) -> int:
    return run_job(lambda: _nightly(argv))


def _nightly(argv: list[str] | None):
    from lxn.nightly.build import NightsConfig, write_range_page

    parser = add_arguments(argparse.ArgumentParser(description=__doc__,
                                                   formatter_class=argparse.RawDescriptionHelpFormatter), NightsConfig)
    return write_range_page(from_namespace(NightsConfig, parser.parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
