"""Prepare a logo dataset for training: validate, deduplicate, split, re-encode into Parquet.

    python jobs/prepare.py --source s3://bucket/FlickrLogos-v2 --format flickrlogos32 --out s3://bucket/prepared/fl32
    python jobs/prepare.py --source /data/part_1 /data/part_2 --format weblogo2m --out /data/prepared/wl2m --seed 0

Writes OUT/split={train,val,test}/*.parquet, OUT/quarantine.json and, last, OUT/manifest.json.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys

from lxn.config import add_arguments, from_namespace
from lxn.data.prepare import PrepareConfig


def main(argv: list[str] | None = None) -> int:
    parser = add_arguments(
        argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter), PrepareConfig
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s", force=True)  # a job owns its process
    try:
        config = from_namespace(PrepareConfig, args)
        from lxn.data.prepare import run
        from lxn.ray_utils import init_ray

        init_ray()
        manifest = run(config)
    except (ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    summary = {
        "out": config.out,
        "classes": manifest.num_classes,
        "images": {split: manifest.split_size(split) for split in ("train", "val", "test")},
        "quarantined": manifest.quarantined,
        "duplicates": {k: v for k, v in manifest.duplicates.items() if not isinstance(v, (dict, list))},
        "leakage": manifest.duplicates.get("leakage", {}),
        "mean": [round(v, 4) for v in manifest.mean],
        "std": [round(v, 4) for v in manifest.std],
    }
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
