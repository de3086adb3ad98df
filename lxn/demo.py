"""The embedded demo dataset: generated, prepared once, reused by later demo runs."""

from __future__ import annotations

import logging
from pathlib import Path

from lxn.data.synthetic import SyntheticConfig

__all__ = ["DEMO_DATA", "DEMO_SCENES", "prepare_demo_dataset", "prepare_demo_scenes", "nightly_images"]

log = logging.getLogger(__name__)

# 8 brands (two confusable pairs) and a no-logo class, 1,350 images: small enough to generate,
# prepare and train on a 2-core CPU in about 3 minutes (test top-1 about 0.6 after 10 epochs at
# 96 px, against 0.11 by chance), hard enough that the confusable pairs show in the confusion matrix.
DEMO_DATA = SyntheticConfig(num_brands=8, images_per_brand=150, no_logo_images=150, image_size=160, seed=0)


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


# The detector's demo: 400 scenes of the same brands, 0-3 marks each at 12-45% of the short side.
DEMO_SCENES = {"scenes": 400, "width": 256, "height": 192, "min_marks": 0, "max_marks": 3, "min_scale": 0.12,
               "max_scale": 0.45}


def prepare_demo_scenes(demo_dir: str | Path) -> str:
    """The detector demo's box-labelled scenes (a COCO folder), prepared once; returns the URI."""
    from lxn.data.prepare import PrepareConfig, run
    from lxn.data.scenes import SceneConfig, write_scenes

    root = Path(demo_dir).resolve()
    scenes, prepared = root / "scenes", root / "prepared-scenes"
    if not (scenes / "annotations.json").exists():  # written last
        log.info("generating the demo's box-labelled scenes in %s", scenes)
        write_scenes(DEMO_DATA, SceneConfig(**DEMO_SCENES), str(scenes))
    if not (prepared / "manifest.json").exists():
        log.info("preparing %s into %s", scenes, prepared)
        run(PrepareConfig(source=[str(scenes)], out=str(prepared), format="coco"))
    return str(prepared)


def nightly_images(demo_dir: str | Path, count_per_class: int = 12) -> str:
    """A folder standing in for last night's bucket: new scenes of the demo brands (another scene
    seed, bigger and not square), no-logo scenes, and the bad objects real buckets hold."""
    import dataclasses
    import io

    from PIL import Image

    from lxn.data.synthetic import class_names, generate_image, write_local_atomic

    root = Path(demo_dir).resolve() / "nightly"
    done = root / ".complete"
    if done.exists():
        return str(root)
    nightly = dataclasses.replace(DEMO_DATA, seed=DEMO_DATA.seed + 1, image_size=320, size_jitter=0.3)
    for name in class_names(nightly):
        for i in range(count_per_class):
            write_local_atomic(str(root / "media" / f"{name}-{i:03d}.jpg"), generate_image(nightly, name, i))
    photo = io.BytesIO()
    Image.new("RGB", (64, 48), (200, 40, 40)).save(photo, "JPEG")
    bad = {
        "empty.jpg": b"",
        "not-found.jpg": b"<!doctype html><html><body>404 Not Found</body></html>",
        "truncated.jpg": photo.getvalue()[: len(photo.getvalue()) // 2],
    }
    for name, data in bad.items():
        write_local_atomic(str(root / "media" / "broken" / name), data)
    done.write_text("ok\n")
    return str(root)
