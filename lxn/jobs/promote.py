"""Promote a registered model version: evaluate the challenger and the champion now, on the same
images, and move `champion` when the challenger passes every gate.

    python jobs/promote.py                                   # challenger vs champion on the challenger's test split
    python jobs/promote.py --labelled s3://bucket/labelled/ --min-top1 0.9 --max-class-drop 0.05
    python jobs/promote.py --dry-run                         # decide and record, change nothing
    python jobs/promote.py --rollback                        # champion <-> previous-champion, no evaluation

Exit status: 0 promoted (or a dry run that would), 3 refused by a gate, 4 another promotion
changed the registry meanwhile (nothing changed: run again), 2 bad input.
"""

from __future__ import annotations

import argparse
import sys

from lxn.cli import print_json, run_job
from lxn.config import add_arguments, from_namespace
from lxn.preflight import check_reach
from lxn.promote import EXIT_REFUSED, PromoteConfig, markdown, promote
from lxn.redact import redact_text


def parse_config(argv: list[str] | None = None) -> PromoteConfig:
    parser = add_arguments(
        argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter), PromoteConfig
    )
    return from_namespace(PromoteConfig, parser.parse_args(argv))


def main(argv: list[str] | None = None) -> int:
    return run_job(lambda: _promote(argv), _show)


def _promote(argv: list[str] | None):
    config = parse_config(argv)
    check_reach(config)  # a job on a multi-node cluster: its registry must be the shared server
    return promote(config)


def _show(decision) -> int:
    print(redact_text(markdown(decision)), file=sys.stderr)
    print_json(decision.to_dict())
    return 0 if decision.promote or decision.applied else EXIT_REFUSED


if __name__ == "__main__":
    sys.exit(main())
