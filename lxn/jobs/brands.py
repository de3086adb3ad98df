r"""Onboard a brand from a few example images, without retraining: a new registered version.

    python jobs/brands.py add --model models:/logoxpertnet@champion --brand "Initech" --examples s3://bucket/onboarding/initech/
    python jobs/brands.py remove --model models:/logoxpertnet@champion --brand "Initech"
    python jobs/brands.py list --model models:/logoxpertnet@champion

`add` and `remove` register a new version (same weights, the prototype table in its metadata)
and move the alias --model names to it (or --alias; champion keeps the old one as
previous-champion). The next scan with that alias reports the brand, `brand_source` "prototype".
Prints the result as JSON. Exit status: 0 done, 2 bad input (nothing registered), 4 the alias
moved meanwhile (nothing kept: run again).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys

from lxn.brands import BrandsConfig, add, listing, remove
from lxn.cli import run_job
from lxn.config import add_arguments, from_namespace


COMMANDS = {"add": add, "remove": remove, "list": listing}


def parse_config(argv: list[str] | None = None) -> tuple[str, BrandsConfig]:
    parser = add_arguments(argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter),
                           BrandsConfig)
    parser.add_argument("command", choices=tuple(COMMANDS), help="what to do")
    namespace = parser.parse_args(argv)
    command = namespace.command
    del namespace.command
    return command, from_namespace(BrandsConfig, namespace)


def main(argv: list[str] | None = None) -> int:
    return run_job(lambda: _brands(argv))


def _brands(argv: list[str] | None) -> dict:
    command, config = parse_config(argv)
    result = COMMANDS[command](config)
    return result if isinstance(result, dict) else dataclasses.asdict(result)


if __name__ == "__main__":
    sys.exit(main())
