r"""Evaluate registered models on labelled images, through the scan's own fetch/decode/predict path.

    python jobs/evaluate.py --model models:/logoxpertnet@champion --data lxn-local/prepared --split test
    python jobs/evaluate.py --model models:/logoxpertnet@champion --model models:/logoxpertnet@challenger \
        --labelled s3://bucket/labelled/ --out s3://reports/evaluations/2026-12-01
    python jobs/evaluate.py --model models:/logoxpertnet/7 --labelled labels.csv --set-threshold

Prints the headline figures; writes report.md, report.json and PNGs to the MLflow run (experiment
lxn-evaluations) and to --out; tags each version with its figures. Exit status: 0 done, 2 bad input.
"""

from __future__ import annotations

import argparse
import sys

from lxn.cli import run_job
from lxn.config import add_arguments, from_namespace
from lxn.evaluation.job import EvaluateConfig, evaluate
from lxn.evaluation.report import headline
from lxn.preflight import check_reach
from lxn.redact import redact_text


def parse_config(argv: list[str] | None = None) -> EvaluateConfig:
    parser = add_arguments(argparse.ArgumentParser(description=__doc__, conflict_handler="resolve",
                                                   formatter_class=argparse.RawDescriptionHelpFormatter), EvaluateConfig)
    # repeated --model accumulates (lxn.config's list flags would replace the earlier values)
    parser.add_argument("--model", dest="model", action="extend", nargs="+", default=argparse.SUPPRESS,
                        help="models:/<name>@<alias> or models:/<name>/<version>; repeat to compare (the first is the reference)")
    return from_namespace(EvaluateConfig, parser.parse_args(argv))


def main(argv: list[str] | None = None) -> int:
    return run_job(lambda: _evaluate(argv), _show)


def _evaluate(argv: list[str] | None):
    config = parse_config(argv)
    check_reach(config)  # on a multi-node cluster: nothing only this node has
    return config, evaluate(config)


def _show(done) -> None:
    config, evaluation = done
    print(redact_text(headline(evaluation.report)))
    print(redact_text(f"report: {evaluation.run_url}" + (f" and {config.out}" if config.out else "")))


if __name__ == "__main__":
    sys.exit(main())
