"""Real brand marks in cluttered scenes: a labelled dataset from the ~3,400 marks of
`simple-icons-pack` (CC0 SVGs with each brand's colour; the brands' trademarks are their owners'),
rendered by resvg, placed by the procedural generator's scene machinery (lxn.data.synthetic:
pose, perspective, plates, occlusion, clutter, camera).

* **Brands.** `brand_seed` orders the marks; the first `num_brands` are the classes, the next
  `held_out_brands` are never in the label set (few-shot and open-set evaluation), and no-logo
  scenes show decoys from the rest half of the time. A mark is drawn in its brand colour, white on
  a badge of its brand colour, or black (how marks appear on products, shirts and signs).
* **Domain shift.** `backgrounds="train"` draws backdrops from gradients, photo-like textures and
  bricks; `"test"` from horizons and bokeh only: a model scored on test scenes has never seen
  their backgrounds. Use another `seed` for the test set.
* **Press photos.** `press_scene(config, index)`: a 640 x 480 scene with two or three marks, one of
  them small (about a tenth of the short side), and their boxes: for multi-brand detection.

Deterministic: every image draws its randomness from (seed, stream, brand, index), so the same
config gives byte-identical JPEGs in any order or process (for a given Pillow, libjpeg, resvg).
"""

from __future__ import annotations

import dataclasses
import functools
import io
import json
import os
from pathlib import Path
from typing import Iterator, Literal

import numpy as np
from PIL import Image, ImageDraw

from lxn.config import setting, to_dict
from lxn.data import synthetic
from lxn.data.synthetic import NO_LOGO, SyntheticConfig

__all__ = ["RealMarksConfig", "Mark", "all_marks", "marks", "held_out", "class_names", "render",
           "generate_image_with_box", "generate_image", "press_scene", "write_imagefolder", "POOLS"]

# Disjoint background pools: test scenes show backdrops that no training scene had.
POOLS = {"train": ("gradient", "texture", "bricks"), "test": ("horizon", "bokeh")}
_STREAM_MARK, _STREAM_NO_LOGO, _STREAM_PRESS = 11, 12, 13


@dataclasses.dataclass(frozen=True)
class RealMarksConfig(SyntheticConfig):
    """A real-marks dataset. The scene settings (scale, pose, occlusion, camera) are the synthetic
    generator's; `num_brands`, `images_per_brand`, `no_logo_images`, `seed` and `brand_seed` mean
    what they mean there, with the brands taken from simple-icons-pack."""

    held_out_brands: int = setting(10, "marks after the classes, kept out of the label set (few-shot, open set)")
    backgrounds: Literal["train", "test"] = setting("train", "background pool: train (gradients, textures, bricks) or test (horizons, bokeh)")

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.held_out_brands < 0:
            raise ValueError("held_out_brands must be >= 0")
        if self.num_brands + self.held_out_brands > len(all_marks()) // 2:
            raise ValueError(f"at most {len(all_marks()) // 2} brands and held-out brands (half the marks stay decoys)")


@dataclasses.dataclass(frozen=True)
class Mark:
    slug: str      # simple-icons' id, the class name
    title: str     # the brand's name
    colour: tuple[int, int, int]
    svg: str


@functools.lru_cache(maxsize=1)
def all_marks() -> tuple[Mark, ...]:
    """Every mark of simple-icons-pack, by slug."""
    try:
        import simple_icons_pack
    except ModuleNotFoundError:  # the benchmarks' extra: the cluster image does not carry it
        raise ValueError("the real-marks data needs simple-icons-pack: pip install 'lxn[bench]'") from None

    icons = [getattr(simple_icons_pack, name) for name in dir(simple_icons_pack) if name.startswith("SI_")]
    found = []
    for icon in sorted(icons, key=lambda icon: icon.slug):
        rgb = tuple(int(icon.hex[i:i + 2], 16) for i in (0, 2, 4))
        found.append(Mark(icon.slug, icon.title, rgb, icon.svg))
    return tuple(found)


@functools.lru_cache(maxsize=16)
def _order(brand_seed: int) -> tuple[int, ...]:
    return tuple(int(i) for i in np.random.default_rng(brand_seed).permutation(len(all_marks())))


def marks(config: RealMarksConfig) -> tuple[Mark, ...]:
    """The classes' marks, in class order (slug order)."""
    chosen = [all_marks()[i] for i in _order(config.brand_seed)[: config.num_brands]]
    return tuple(sorted(chosen, key=lambda m: m.slug))


def held_out(config: RealMarksConfig) -> tuple[Mark, ...]:
    """Marks that are never classes of `config` (the next `held_out_brands` of the order)."""
    start = config.num_brands
    chosen = [all_marks()[i] for i in _order(config.brand_seed)[start : start + config.held_out_brands]]
    return tuple(sorted(chosen, key=lambda m: m.slug))


def _decoys(config: RealMarksConfig) -> tuple[int, ...]:
    return _order(config.brand_seed)[config.num_brands + config.held_out_brands :]


def class_names(config: RealMarksConfig) -> list[str]:
    names = [m.slug for m in marks(config)]
    return names + ([NO_LOGO] if config.no_logo_images else [])


@functools.lru_cache(maxsize=4096)
def render(mark: Mark, size: int, style: str) -> Image.Image:
    """The mark as RGBA, `size` px on its longer side, cropped to its ink: "colour" (the brand
    colour), "black", or "badge" (white on a rounded square of the brand colour)."""
    import resvg_py

    fill = {"colour": "#%02x%02x%02x" % mark.colour, "black": "#000000", "badge": "#ffffff"}[style]
    svg = mark.svg.replace("<svg ", f'<svg fill="{fill}" ', 1)
    glyph = Image.open(io.BytesIO(bytes(resvg_py.svg_to_bytes(svg_string=svg, width=size, height=size)))).convert("RGBA")
    box = glyph.getchannel("A").getbbox() or (0, 0, size, size)
    glyph = glyph.crop(box)
    if style != "badge":
        return glyph
    pad = max(2, round(0.18 * max(glyph.size)))
    badge = Image.new("RGBA", (glyph.width + 2 * pad, glyph.height + 2 * pad), (0, 0, 0, 0))
    ImageDraw.Draw(badge).rounded_rectangle((0, 0, badge.width - 1, badge.height - 1), radius=pad,
                                            fill=(*mark.colour, 255))
    badge.alpha_composite(glyph, (pad, pad))
    return badge


def _style(rng: np.random.Generator) -> str:
    return str(rng.choice(["colour", "badge", "black"], p=[0.55, 0.3, 0.15]))


def _renderer(mark: Mark, style: str):
    def draw(side: float) -> Image.Image:
        return render(mark, synthetic._base_size(side), style)

    probe = render(mark, 64, style)
    return draw, probe.width / max(1, probe.height)


def _scene(rng: np.random.Generator, config: RealMarksConfig, width: int, height: int) -> Image.Image:
    scene = synthetic._background(rng, width, height, POOLS[config.backgrounds])
    lo, hi = config.clutter // 2, config.clutter + (config.clutter + 1) // 2
    synthetic._clutter(rng, scene, int(rng.integers(lo, hi + 1)))
    return scene


def _resolve(config: RealMarksConfig, cls: str | int) -> Mark | None:
    return synthetic.resolve_class(class_names(config), cls, {mark.slug: mark for mark in marks(config)})


def generate_image_with_box(config: RealMarksConfig, cls: str | int, index: int) -> tuple[bytes, tuple | None]:
    """JPEG bytes of scene `index` of class `cls` (a slug, the no-logo class, or an index) and the
    mark's box (x0, y0, x1, y1), None for no-logo. Depends only on (config, cls, index)."""
    if index < 0:
        raise ValueError(f"image index must be >= 0, got {index}")
    mark = _resolve(config, cls)
    stream = (_STREAM_NO_LOGO, 0) if mark is None else (_STREAM_MARK, all_marks().index(mark))
    rng = np.random.default_rng([config.seed, *stream, index])
    j = config.size_jitter
    width = max(32, round(config.image_size * synthetic._u(rng, 1 - j, 1 + j))) if j else config.image_size
    height = max(32, round(config.image_size * synthetic._u(rng, 1 - j, 1 + j))) if j else config.image_size
    scene = _scene(rng, config, width, height)
    backdrop = scene.copy()
    box = None
    if mark is not None:
        draw, aspect = _renderer(mark, _style(rng))
        box = synthetic._place(rng, config, scene, draw, aspect)
        if rng.random() < config.occlusion_prob:
            synthetic._occlude(rng, config, scene, backdrop, box)
    elif rng.random() < config.decoy_prob:
        decoys = _decoys(config)
        decoy = all_marks()[decoys[int(rng.integers(len(decoys)))]]
        draw, aspect = _renderer(decoy, _style(rng))
        synthetic._place(rng, config, scene, draw, aspect)
    else:
        synthetic._place(rng, config, scene, None, 2.4 if rng.random() < 0.2 else 1.0)
    return synthetic._camera(rng, config, scene), box


def generate_image(config: RealMarksConfig, cls: str | int, index: int) -> bytes:
    return generate_image_with_box(config, cls, index)[0]


def press_scene(config: RealMarksConfig, index: int, size: tuple[int, int] = (640, 480)) -> tuple[bytes, list[dict]]:
    """A press-photo-like scene of two or three different class marks, one of them small (about a
    tenth of the shorter side), and [{"brand", "box"}] for each (boxes before occlusion)."""
    rng = np.random.default_rng([config.seed, _STREAM_PRESS, index])
    width, height = size
    scene = _scene(rng, config, width, height)
    chosen = rng.choice(len(marks(config)), size=int(rng.integers(2, 4)), replace=False)
    placed = []
    for k, i in enumerate(chosen):
        mark = marks(config)[int(i)]
        small = k == 0
        scale = (0.09, 0.12) if small else (0.18, 0.32)
        scene_config = dataclasses.replace(config, min_logo_scale=scale[0], max_logo_scale=scale[1], plate_prob=0.3)
        draw, aspect = _renderer(mark, _style(rng))
        box = synthetic._place(rng, scene_config, scene, draw, aspect)
        placed.append({"brand": mark.slug, "box": [int(v) for v in box], "small": small})
    return synthetic._camera(rng, config, scene), placed


def _items(config: RealMarksConfig) -> Iterator[tuple[str, int]]:
    for mark in marks(config):
        for i in range(config.images_per_brand):
            yield mark.slug, i
    for i in range(config.no_logo_images):
        yield NO_LOGO, i


def write_imagefolder(config: RealMarksConfig, out: str | os.PathLike) -> Path:
    """`out/<class>/<class>-<index>.jpg` for every image, then `out/realmarks.json` (the config,
    classes and held-out brands) last, so a complete folder is recognisable. Skips images that
    are already there (a killed run resumes)."""
    root = Path(out)
    for cls, index in _items(config):
        path = root / cls / f"{cls}-{index:05d}.jpg"
        if not path.exists():
            synthetic.write_local_atomic(str(path), generate_image(config, cls, index))
    meta = {"config": to_dict(config), "classes": class_names(config),
            "titles": {m.slug: m.title for m in marks(config)},
            "held_out": [m.slug for m in held_out(config)], "backgrounds": POOLS[config.backgrounds]}
    synthetic.write_local_atomic(str(root / "realmarks.json"), json.dumps(meta, indent=1).encode())
    return root
