"""The embedded demo dataset: generated, prepared once, reused by later demo runs."""

from __future__ import annotations

import logging
from pathlib import Path

from lxn.data.synthetic import SyntheticConfig

__all__ = ["DEMO_DATA", "prepare_demo_dataset"]

log = logging.getLogger(__name__)

# 8 brands (two confusable pairs) and a no-logo class; small enough to generate, prepare and
# train on a laptop CPU in a few minutes, hard enough that the confusable pairs show up in the
# confusion matrix.
DEMO_DATA = SyntheticConfig(num_brands=8, images_per_brand=80, no_logo_images=80, image_size=160, seed=0)


def prepare_demo_dataset(demo_dir: str | Path) -> str:
    """Generate the synthetic images and prepare them under `demo_dir`; returns the prepared URI.

    Both steps are skipped when their output is already complete (the generator writes its
    metadata last, the prepare job its manifest last), so a second demo run starts training.
    """
    from lxn.data.prepare import PrepareConfig, run
    from lxn.data.synthetic import write_imagefolder

    root = Path(demo_dir).resolve()
    images, prepared = root / "images", root / "prepared"
    if not (images / "synthetic.json").exists():
        log.info("generating the synthetic demo dataset in %s", images)
        write_imagefolder(DEMO_DATA, images)
    if not (prepared / "manifest.json").exists():
        log.info("preparing %s into %s", images, prepared)
        run(PrepareConfig(source=[str(images)], out=str(prepared)))
    return str(prepared)
