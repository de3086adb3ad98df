r"""The paper's tables (5, 6, 7, 8, 9) and per-class figures from a training grid's MLflow runs.

    python jobs/train.py --model logoxpertnet_backbone,logoxpertnet_clff,logoxpertnet_clff_hsesab,logoxpertnet \
        --seed 0,1,42 --grid ablation
    python jobs/benchmark.py model --out bench-out        # Table 7 (optional)
    python jobs/report.py --grid ablation --out lxn-local/reports/ablation

Writes tables.md, tables.json and per_class_accuracy.png to an MLflow run (experiment
lxn-reports) and to --out, and prints tables.md. Exit status: 0 done, 2 bad input.
"""

from __future__ import annotations

import argparse
import sys

from lxn.cli import run_job
from lxn.config import add_arguments, from_namespace
from lxn.train.paper_report import ReportConfig, report


def main(argv: list[str] | None = None) -> int:
    return run_job(lambda: _report(argv), _show)


def _report(argv: list[str] | None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    config = from_namespace(ReportConfig, add_arguments(parser, ReportConfig).parse_args(argv))
    _, tables_md, url, _ = report(config)
    return config, tables_md, url


def _show(done) -> None:
    config, tables_md, url = done
    print(tables_md)
    print(f"report: {url}" + (f" and {config.out}" if config.out else ""))


if __name__ == "__main__":
    sys.exit(main())
