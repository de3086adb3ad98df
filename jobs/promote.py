"""Promote a registered model version: move `champion` to `challenger` if the gates pass.

    python jobs/promote.py                                   # challenger -> champion, default gates
    python jobs/promote.py --min-metric 0.9 --min-improvement 0.002
    python jobs/promote.py --candidate previous-champion     # roll back

Exit status: 0 promoted (or a dry run that would), 3 refused by a gate, 2 bad input.
"""

from __future__ import annotations

import argparse
import json
import sys

from lxn.cli import BAD_INPUT, configure_logging, fail
from lxn.config import add_arguments, from_namespace
from lxn.promote import PromoteConfig, promote
from lxn.preflight import check_reach
from lxn.redact import redact


def parse_config(argv: list[str] | None = None) -> PromoteConfig:
    parser = add_arguments(
        argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter), PromoteConfig
    )
    return from_namespace(PromoteConfig, parser.parse_args(argv))


def main(argv: list[str] | None = None) -> int:
    configure_logging()
    try:
        config = parse_config(argv)
        check_reach(config)  # a job on a multi-node cluster: its registry must be the shared server
        decision = promote(config)
    except BAD_INPUT as exc:
        return fail(exc)
    print(json.dumps(redact(decision.to_dict()), indent=2))
    return 0 if decision.promote or decision.applied else 3


if __name__ == "__main__":
    sys.exit(main())
