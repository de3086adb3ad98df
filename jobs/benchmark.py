"""Benchmarks that print and write figures.

    python jobs/benchmark.py model --out DIR     # Table 7: params, GFLOPs, CPU/GPU speed
    python jobs/benchmark.py prepare --out DIR   # prepare throughput, memory at 10k vs 50k images
    python jobs/benchmark.py train --out DIR     # Ray Train vs a plain PyTorch loop, 1 vs 2 workers
    python jobs/benchmark.py scan --out DIR      # scan throughput vs the model alone; memory vs bucket size
    python jobs/benchmark.py decode --out DIR    # CPU per image from bytes to model pixels (scan, training)
    python jobs/benchmark.py accuracy --out DIR  # models and recipes on real brand marks, scored by the scan
"""

from __future__ import annotations

import argparse
import sys

from lxn.benchmarks import (accuracy, decode_throughput, model_efficiency, prepare_throughput, scan_throughput,
                            train_throughput)
from lxn.config import add_arguments, from_namespace
from lxn.logs import configure_logging

BENCHMARKS = {
    "model": ("model efficiency table (the paper's Table 7)", model_efficiency.ModelBenchConfig),
    "prepare": ("prepare-job throughput and peak memory", prepare_throughput.PrepareBenchConfig),
    "train": ("training throughput: Ray Train vs plain PyTorch", train_throughput.TrainBenchConfig),
    "scan": ("scan throughput against the model alone, and peak memory", scan_throughput.ScanBenchConfig),
    "decode": ("CPU per image from bytes to model pixels, per core", decode_throughput.DecodeBenchConfig),
    "accuracy": ("models and recipes on real brand marks, scored through the scan path", accuracy.AccuracyBenchConfig),
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    for name, (help_text, config_cls) in BENCHMARKS.items():
        add_arguments(commands.add_parser(name, help=help_text), config_cls)
    args = parser.parse_args(argv)
    configure_logging()
    config = from_namespace(BENCHMARKS[args.command][1], _without(args, "command"))
    if args.command == "model":
        print(model_efficiency.markdown_table(model_efficiency.run(config), config))
    elif args.command == "prepare":
        print(prepare_throughput.markdown_table(prepare_throughput.run(config)))
    elif args.command == "train":
        print(train_throughput.markdown_table(train_throughput.run(config)))
    elif args.command == "scan":
        print(scan_throughput.markdown_table(scan_throughput.run(config)))
    elif args.command == "decode":
        print(decode_throughput.markdown_table(decode_throughput.run(config)))
    elif args.command == "accuracy":
        print(accuracy.markdown_table(accuracy.run(config)))
    print(f"\nwrote figures under {config.out}")
    return 0


def _without(namespace: argparse.Namespace, *names: str) -> argparse.Namespace:
    return argparse.Namespace(**{k: v for k, v in vars(namespace).items() if k not in names})


if __name__ == "__main__":
    sys.exit(main())
