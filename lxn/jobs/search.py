r"""Where else did this mark appear: the scanned objects most similar to an image.

    python jobs/search.py --image logo.png --reports s3://reports/brand-scans --since 2026-11-01 --top 20

Searches the rows of scans run with `--embeddings` (exact cosine similarity, with the model
version that wrote each row). Prints JSON: the hits, best first, and what was searched.
Exit status: 0 done (also with no hits), 2 bad input.
"""

from __future__ import annotations

import argparse
import sys

from lxn.cli import run_job
from lxn.config import add_arguments, from_namespace
from lxn.search import SearchConfig, search


def main(argv: list[str] | None = None) -> int:
    return run_job(lambda: _search(argv))


def _search(argv: list[str] | None):
    parser = add_arguments(argparse.ArgumentParser(description=__doc__,
                                                   formatter_class=argparse.RawDescriptionHelpFormatter), SearchConfig)
    return search(from_namespace(SearchConfig, parser.parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
