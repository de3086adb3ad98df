r"""The review loop: a night's doubtful rows out to a labelling tool, and the person's answers
back in as a dataset the next training run takes.

    python jobs/review.py export --scans s3://reports/brand-scans --night 2026-11-30 --out review/2026-11-30
    python jobs/review.py import --export review/2026-11-30 --labels project-1-at-2026-12-01.json --out reviewed/2026-11-30
    python jobs/prepare.py --format coco --source scenes/ reviewed/2026-11-30 --out prepared-next

`export` writes the rows near the threshold, unknown marks, prototype hits and an audit sample of
confident hits: the images as lxn saw them, Label Studio tasks with the model's boxes as
pre-annotations (tasks.json, label_config.xml) and COCO for CVAT (annotations.json + images/).
`import` reads the tool's JSON export (Label Studio JSON, or COCO) against that export and writes
the reviewed images with the person's boxes as a COCO folder; it prints what the round changed.
Both print JSON. Exit status: 0 done, 2 bad input (nothing written).
"""

from __future__ import annotations

import argparse
import sys

from lxn.cli import run_job
from lxn.config import add_arguments, from_namespace


def parse_config(argv: list[str] | None = None):
    from lxn.review.export import ExportConfig
    from lxn.review.ingest import ImportConfig

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True, metavar="{export,import}")
    configs = {"export": ExportConfig, "import": ImportConfig}
    helps = {"export": "a night's rows to review, as Label Studio tasks and COCO",
             "import": "the labelling tool's export, back as a COCO dataset"}
    for name, cls in configs.items():
        add_arguments(commands.add_parser(name, help=helps[name],
                                          description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter), cls)
    namespace = parser.parse_args(argv)
    command = namespace.command
    del namespace.command
    return command, from_namespace(configs[command], namespace)


def main(argv: list[str] | None = None) -> int:
    return run_job(lambda: _review(argv))


def _review(argv: list[str] | None) -> dict:
    from lxn.review.export import export
    from lxn.review.ingest import ingest

    command, config = parse_config(argv)
    return export(config) if command == "export" else ingest(config)


if __name__ == "__main__":
    sys.exit(main())
