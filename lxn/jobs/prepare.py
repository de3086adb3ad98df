"""Prepare a logo dataset for training: validate, deduplicate, split, re-encode into Parquet.

    python jobs/prepare.py --source s3://bucket/FlickrLogos-v2 --format flickrlogos32 --out s3://bucket/prepared/fl32
    python jobs/prepare.py --source /data/part_1 /data/part_2 --format weblogo2m --out /data/prepared/wl2m --seed 0

Writes OUT/split={train,val,test}/*.parquet, OUT/quarantine.json and, last, OUT/manifest.json.
"""

from __future__ import annotations

import argparse
import sys

from lxn.cli import print_json, run_job
from lxn.config import add_arguments, from_namespace
from lxn.data.prepare import PrepareConfig
from lxn.preflight import check_reach


def parse_config(argv: list[str] | None = None) -> PrepareConfig:
    parser = add_arguments(
        argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter), PrepareConfig
    )
    return from_namespace(PrepareConfig, parser.parse_args(argv))


def main(argv: list[str] | None = None) -> int:
    return run_job(lambda: _prepare(argv), lambda done: print_json(_summary(*done)))


def _prepare(argv: list[str] | None):
    config = parse_config(argv)
    check_reach(config, uses_tracking=config.embedding_model is not None)  # multi-node: nothing node-local
    from lxn.data.prepare import run
    from lxn.ray_utils import init_ray

    init_ray()
    return config, run(config)


def _summary(config, manifest) -> dict:
    return {
        "out": config.out,
        "classes": manifest.num_classes,
        "images": {split: manifest.split_size(split) for split in ("train", "val", "test")},
        "quarantined": manifest.quarantined,
        "duplicates": {k: v for k, v in manifest.duplicates.items() if not isinstance(v, (dict, list))},
        "leakage": manifest.duplicates.get("leakage", {}),
        "mean": [round(v, 4) for v in manifest.mean],
        "std": [round(v, 4) for v in manifest.std],
    }


if __name__ == "__main__":
    sys.exit(main())
