"""The jobs: each module's `main(argv)` parses flags into a typed config and calls the library.
`lxn <job> [flags]` (installed with the package) runs one; `python jobs/<job>.py` does the same."""

from __future__ import annotations

import importlib
import sys

__all__ = ["JOBS", "main"]

JOBS = {
    "prepare": "any dataset layout -> deduplicated, split, re-encoded Parquet shards",
    "train": "train, test and register a model (Ray Train, MLflow)",
    "evaluate": "score registered versions on a labelled set",
    "promote": "evaluate the challenger against the champion and move the alias on evidence",
    "scan": "the nightly brand-monitoring scan of object-storage images",
    "brands": "add, remove or list brands onboarded from a few examples",
    "search": "visual search over the scan reports' embeddings",
    "nightly": "the nightly page of a range of nights, from the reports written",
    "review": "export a night's doubtful rows to a labelling tool; import the answers as a dataset",
    "report": "the paper's tables from a training grid",
    "trust": "record the digest of a version registered without one",
    "benchmark": "the benchmarks that write the README's figures",
}


def main(argv: list[str] | None = None) -> int:
    """`lxn <job> [flags]`: the job's own main with the rest of the command line."""
    args = sys.argv[1:] if argv is None else list(argv)
    if not args or args[0] in ("-h", "--help") or args[0] not in JOBS:
        width = max(map(len, JOBS))
        lines = [f"  {name:<{width}}  {what}" for name, what in JOBS.items()]
        print("usage: lxn <job> [flags]   (lxn <job> --help for its flags)\n\njobs:\n" + "\n".join(lines),
              file=sys.stdout if args and args[0] in ("-h", "--help") else sys.stderr)
        if args and args[0] not in ("-h", "--help"):
            print(f"\nerror: unknown job {args[0]!r}", file=sys.stderr)
        return 0 if args and args[0] in ("-h", "--help") else 2
    sys.argv[0] = f"lxn {args[0]}"  # what the job's --help and errors call it
    return importlib.import_module(f"lxn.jobs.{args[0]}").main(args[1:])
