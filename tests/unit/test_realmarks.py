"""The real-marks dataset: deterministic scenes of real brand marks, disjoint background pools,
held-out brands outside the label set, press scenes with boxes."""

from __future__ import annotations

import dataclasses
import io
import json

import numpy as np
import pytest
from PIL import Image

from lxn.data.realmarks import (POOLS, RealMarksConfig, all_marks, class_names, generate_image_with_box, held_out,
                                marks, press_scene, render, write_imagefolder)
from lxn.data.synthetic import BACKGROUND_KINDS, NO_LOGO

CONFIG = RealMarksConfig(num_brands=6, images_per_brand=2, no_logo_images=2, image_size=96, held_out_brands=3)


def test_brands_are_real_marks_and_held_out_brands_are_never_classes():
    assert len(all_marks()) > 3000
    names = class_names(CONFIG)
    assert names[-1] == NO_LOGO and len(names) == 7 and names[:-1] == sorted(names[:-1])
    assert {m.slug for m in held_out(CONFIG)}.isdisjoint(names) and len(held_out(CONFIG)) == 3
    # the first brands of a bigger set are the same brands (a prefix of one order)
    bigger = dataclasses.replace(CONFIG, num_brands=12)
    assert {m.slug for m in marks(CONFIG)} <= {m.slug for m in marks(bigger)}


def test_scenes_are_deterministic_and_the_box_holds_the_mark():
    a, box = generate_image_with_box(CONFIG, 1, 3)
    b, same = generate_image_with_box(CONFIG, class_names(CONFIG)[1], 3)
    assert a == b and box == same
    image = Image.open(io.BytesIO(a))
    assert image.size == (96, 96) and 0 <= box[0] < box[2] <= 96 and 0 <= box[1] < box[3] <= 96
    assert generate_image_with_box(CONFIG, NO_LOGO, 0)[1] is None
    assert generate_image_with_box(dataclasses.replace(CONFIG, seed=1), 1, 3)[0] != a


def test_a_class_is_resolved_as_the_synthetic_generator_does():
    """-1 is not the last class (no-logo): an index out of range, as a held-out brand is unknown."""
    with pytest.raises(IndexError, match="out of range"):
        generate_image_with_box(CONFIG, -1, 0)
    with pytest.raises(KeyError, match="unknown class"):
        generate_image_with_box(CONFIG, held_out(CONFIG)[0].slug, 0)


def test_train_and_test_backgrounds_are_disjoint_pools():
    assert set(POOLS["train"]).isdisjoint(POOLS["test"]) and set(POOLS["train"]) | set(POOLS["test"]) == set(BACKGROUND_KINDS)


def test_a_mark_is_rendered_in_its_brand_colour_or_as_a_badge():
    mark = marks(CONFIG)[0]
    colour = np.asarray(render(mark, 128, "colour"))
    ink = colour[colour[..., 3] > 250][:, :3]
    assert len(ink) and np.abs(ink.astype(int) - mark.colour).max() <= 2
    badge = np.asarray(render(mark, 128, "badge"))
    assert badge[..., 3].min() == 0 and (badge[badge[..., 3] > 250][:, :3] == 255).all(axis=1).any()


def test_press_scenes_have_two_or_three_brands_one_of_them_small():
    data, placed = press_scene(CONFIG, 4)
    assert Image.open(io.BytesIO(data)).size == (640, 480)
    assert 2 <= len(placed) <= 3 and len({p["brand"] for p in placed}) == len(placed)
    small = [p for p in placed if p["small"]]
    assert len(small) == 1
    x0, y0, x1, y1 = small[0]["box"]
    assert max(x1 - x0, y1 - y0) <= 0.2 * 480 and press_scene(CONFIG, 4) == (data, placed)


def test_imagefolder_is_written_with_its_metadata_last(tmp_path):
    root = write_imagefolder(CONFIG, tmp_path / "marks")
    meta = json.loads((root / "realmarks.json").read_text())
    assert meta["classes"] == class_names(CONFIG) and meta["backgrounds"] == list(POOLS["train"])
    assert sorted(p.parent.name for p in root.rglob("*.jpg")) == sorted(
        [m.slug for m in marks(CONFIG) for _ in range(2)] + [NO_LOGO] * 2)
    with pytest.raises(ValueError, match="held_out_brands"):
        RealMarksConfig(held_out_brands=-1)


def test_without_the_bench_extra_the_real_marks_say_what_to_install(monkeypatch):
    """simple-icons-pack is the benchmarks' extra (the cluster image leaves it out)."""
    import sys

    from lxn.data import realmarks

    realmarks.all_marks.cache_clear()
    monkeypatch.setitem(sys.modules, "simple_icons_pack", None)  # import fails as if not installed
    try:
        with pytest.raises(ValueError, match=r"pip install 'lxn\[bench\]'"):
            realmarks.all_marks()
    finally:
        realmarks.all_marks.cache_clear()
