"""Benchmarks that print and write figures.

    python jobs/benchmark.py model --out DIR     # Table 7: params, GFLOPs, CPU/GPU speed
    python jobs/benchmark.py prepare --out DIR   # prepare throughput, memory at 10k vs 50k images
    python jobs/benchmark.py train --out DIR     # Ray Train vs a plain PyTorch loop, 1 vs 2 workers
    python jobs/benchmark.py scan --out DIR      # scan throughput vs the model alone; memory vs bucket size
    python jobs/benchmark.py decode --out DIR    # CPU per image from bytes to model pixels (scan, training)
    python jobs/benchmark.py accuracy --out DIR  # models and recipes on real brand marks, scored by the scan
    python jobs/benchmark.py detection --out DIR # every brand in press scenes: tiles + detections vs whole image
    python jobs/benchmark.py detector --out DIR  # train the detector on real-mark scenes, scan the press scenes
    python jobs/benchmark.py onboarding --out DIR  # few-shot brands (k = 1, 5, 10), their cost, the open set
    python jobs/benchmark.py search --out DIR    # query time of jobs/search.py over 100k stored embeddings
    python jobs/benchmark.py review --out DIR    # one review round: the next detector's gain per reviewed row
"""

from __future__ import annotations

import argparse
import sys

from lxn.benchmarks import (accuracy, decode_throughput, detection, detector_training, model_efficiency, onboarding,
                            prepare_throughput, review_loop, scan_throughput, search_speed, train_throughput)
from lxn.cli import run_job
from lxn.config import add_arguments, from_namespace

BENCHMARKS = {
    "model": ("model efficiency table (the paper's Table 7)", model_efficiency.ModelBenchConfig),
    "prepare": ("prepare-job throughput and peak memory", prepare_throughput.PrepareBenchConfig),
    "train": ("training throughput: Ray Train vs plain PyTorch", train_throughput.TrainBenchConfig),
    "scan": ("scan throughput against the model alone, and peak memory", scan_throughput.ScanBenchConfig),
    "decode": ("CPU per image from bytes to model pixels, per core", decode_throughput.DecodeBenchConfig),
    "accuracy": ("models and recipes on real brand marks, scored through the scan path", accuracy.AccuracyBenchConfig),
    "detection": ("every brand in press scenes: tiles and detections against the whole-image scan",
                  detection.DetectionBenchConfig),
    "detector": ("the detector trained on real-mark scenes, scanning press scenes (against --classifier's tiles)",
                 detector_training.DetectorBenchConfig),
    "onboarding": ("few-shot brands from k examples, their cost to the known brands, open-set rejection",
                   onboarding.OnboardingBenchConfig),
    "search": ("visual search query time over stored embeddings", search_speed.SearchBenchConfig),
    "review": ("one round of the review loop: the next detector's gain per reviewed row, against random rows",
               review_loop.ReviewBenchConfig),
}
MODULES = {"model": model_efficiency, "prepare": prepare_throughput, "train": train_throughput, "scan": scan_throughput,
           "decode": decode_throughput, "accuracy": accuracy, "detection": detection, "detector": detector_training,
           "onboarding": onboarding, "search": search_speed, "review": review_loop}


def main(argv: list[str] | None = None) -> int:
    return run_job(lambda: _benchmark(argv), print)


def _benchmark(argv: list[str] | None) -> str:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    for name, (help_text, config_cls) in BENCHMARKS.items():
        add_arguments(commands.add_parser(name, help=help_text), config_cls)
    args = parser.parse_args(argv)
    config = from_namespace(BENCHMARKS[args.command][1], _without(args, "command"))
    module = MODULES[args.command]
    if args.command == "model":
        table = module.markdown_table(module.run(config), config)
    else:
        table = module.markdown_table(module.run(config))
    return f"{table}\n\nwrote figures under {config.out}"


def _without(namespace: argparse.Namespace, *names: str) -> argparse.Namespace:
    return argparse.Namespace(**{k: v for k, v in vars(namespace).items() if k not in names})


if __name__ == "__main__":
    sys.exit(main())
