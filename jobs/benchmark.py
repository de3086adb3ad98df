"""Benchmarks that print and write figures.

    python jobs/benchmark.py model --out DIR     # Table 7: params, GFLOPs, CPU/GPU speed
    python jobs/benchmark.py scan --out DIR      # scan throughput vs the model alone; memory vs bucket size
"""

from __future__ import annotations

import argparse
import sys

from lxn.benchmarks import model_efficiency, scan_throughput
from lxn.config import add_arguments, from_namespace


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    add_arguments(commands.add_parser("model", help="model efficiency table (the paper's Table 7)"),
                  model_efficiency.ModelBenchConfig)
    add_arguments(commands.add_parser("scan", help="scan throughput against the model alone, and peak memory"),
                  scan_throughput.ScanBenchConfig)
    args = parser.parse_args(argv)
    if args.command == "model":
        config = from_namespace(model_efficiency.ModelBenchConfig, _without(args, "command"))
        rows = model_efficiency.run(config)
        print(model_efficiency.markdown_table(rows, config))
        print(f"\nwrote {config.out / 'model_efficiency.json'}")
    elif args.command == "scan":
        config = from_namespace(scan_throughput.ScanBenchConfig, _without(args, "command"))
        result = scan_throughput.run(config)
        print(scan_throughput.markdown_table(result))
        print(f"\nwrote {config.out / 'scan_throughput.json'}")
    return 0


def _without(namespace: argparse.Namespace, *names: str) -> argparse.Namespace:
    return argparse.Namespace(**{k: v for k, v in vars(namespace).items() if k not in names})


if __name__ == "__main__":
    sys.exit(main())
