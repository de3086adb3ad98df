"""Box-labelled scenes for detection: 0-3 marks of the dataset's classes per frame, at many
scales, placed by the classifier datasets' own machinery (pose, perspective, plates, occlusion,
clutter, camera blur and noise), and written as a COCO folder (lxn.data.coco).

`SyntheticConfig` scenes show procedural marks; `RealMarksConfig` scenes show the real SVG marks
over its background pool (`backgrounds="test"` for frames training never saw). Marks in one
scene are different brands and overlap little (`max_overlap` of the smaller box), so every box
shows its mark; boxes are the marks as pasted, before an occluder covers part of one.
Deterministic: scene `index` depends only on (config, scene settings, index).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
from PIL import Image

from lxn.config import setting
from lxn.data import synthetic
from lxn.data.synthetic import SyntheticConfig

__all__ = ["SceneConfig", "detection_scene", "iter_scenes", "write_scenes", "scene_classes"]

_STREAM_SCENE = 21


@dataclasses.dataclass(frozen=True)
class SceneConfig:
    scenes: int = setting(200, "scenes to generate")
    width: int = setting(640, "scene width in pixels")
    height: int = setting(480, "scene height in pixels")
    min_marks: int = setting(0, "fewest marks in a scene (scenes with none teach the model what is not a mark)")
    max_marks: int = setting(3, "most marks in a scene")
    min_scale: float = setting(0.05, "smallest mark, as a fraction of the scene's shorter side")
    max_scale: float = setting(0.4, "largest mark, as a fraction of the scene's shorter side")
    max_overlap: float = setting(0.2, "two marks' boxes may share at most this fraction of the smaller one")

    def __post_init__(self) -> None:
        problems = []
        if self.scenes < 0 or not 0 <= self.min_marks <= self.max_marks <= 8:
            problems.append(f"need scenes >= 0 and 0 <= min_marks <= max_marks <= 8, got {self.scenes}, "
                            f"{self.min_marks}, {self.max_marks}")
        if not 0 < self.min_scale <= self.max_scale <= 0.9:
            problems.append(f"need 0 < min_scale <= max_scale <= 0.9, got {self.min_scale}, {self.max_scale}")
        if not (32 <= min(self.width, self.height) and max(self.width, self.height) <= 8192):
            problems.append(f"width and height must be within 32..8192, got {self.width}x{self.height}")
        if not 0 <= self.max_overlap < 1:
            problems.append(f"max_overlap must be within [0, 1), got {self.max_overlap}")
        if problems:
            raise ValueError("; ".join(problems))


def _is_real(config: SyntheticConfig) -> bool:
    from lxn.data.realmarks import RealMarksConfig

    return isinstance(config, RealMarksConfig)


def scene_classes(config: SyntheticConfig) -> list[str]:
    """The brands a scene can show (the config's classes without no-logo)."""
    if _is_real(config):
        from lxn.data import realmarks

        return [m.slug for m in realmarks.marks(config)]
    return [b.name for b in synthetic.brands(config)]


def _renderer(config: SyntheticConfig, brand: str, rng: np.random.Generator) -> tuple[Callable[[float], Image.Image], float]:
    if _is_real(config):
        from lxn.data import realmarks

        mark = next(m for m in realmarks.marks(config) if m.slug == brand)
        return realmarks._renderer(mark, realmarks._style(rng))
    found = next(b for b in synthetic.brands(config) if b.name == brand)
    return (lambda side: synthetic._render_cached(found, synthetic._base_size(side))), found.aspect


def _backdrop(config: SyntheticConfig, rng: np.random.Generator, width: int, height: int) -> Image.Image:
    if _is_real(config):
        from lxn.data import realmarks

        return realmarks._scene(rng, config, width, height)
    scene = synthetic._background(rng, width, height)
    lo, hi = config.clutter // 2, config.clutter + (config.clutter + 1) // 2
    synthetic._clutter(rng, scene, int(rng.integers(lo, hi + 1)))
    return scene


def _shared(a: tuple, b: tuple) -> float:
    """Intersection of two boxes over the smaller one's area."""
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    if w <= 0 or h <= 0:
        return 0.0
    smaller = min((a[2] - a[0]) * (a[3] - a[1]), (b[2] - b[0]) * (b[3] - b[1]))
    return w * h / max(1, smaller)


def detection_scene(config: SyntheticConfig, scene: SceneConfig, index: int) -> tuple[bytes, list[dict[str, Any]]]:
    """JPEG bytes of scene `index` and its boxes in lxn's form ({"label", "box"}, lxn.data.boxes)."""
    if index < 0:
        raise ValueError(f"scene index must be >= 0, got {index}")
    rng = np.random.default_rng([config.seed, _STREAM_SCENE, index])
    classes = scene_classes(config)
    image = _backdrop(config, rng, scene.width, scene.height)
    backdrop = image.copy()
    count = min(int(rng.integers(scene.min_marks, scene.max_marks + 1)), len(classes))
    placed_config = dataclasses.replace(config, min_logo_scale=scene.min_scale, max_logo_scale=scene.max_scale)
    boxes: list[dict[str, Any]] = []
    for k in rng.choice(len(classes), size=count, replace=False):
        render, aspect = _renderer(config, classes[int(k)], rng)
        for _ in range(20):  # a free spot: marks touch at most, so every box shows its mark
            trial = image.copy()
            box = synthetic._place(rng, placed_config, trial, render, aspect)
            if all(_shared(box, b["box"]) <= scene.max_overlap for b in boxes):
                image = trial
                boxes.append({"label": classes[int(k)], "box": [float(v) for v in box]})
                break
    for b in boxes:
        if rng.random() < config.occlusion_prob:
            synthetic._occlude(rng, config, image, backdrop, tuple(int(v) for v in b["box"]))
    # The camera draws from a stream of its own: the same frame with or without its marks is
    # shot alike, so a mark is exactly what differs.
    camera = np.random.default_rng([config.seed, _STREAM_SCENE, index, 1])
    return synthetic._camera(camera, config, image), boxes


def iter_scenes(config: SyntheticConfig, scene: SceneConfig) -> Iterator[tuple[str, bytes, int, int, list[dict[str, Any]]]]:
    """(file_name, JPEG bytes, width, height, boxes) for every scene: `write_coco`'s items."""
    for index in range(scene.scenes):
        data, boxes = detection_scene(config, scene, index)
        yield f"scene-{index:06d}.jpg", data, scene.width, scene.height, boxes


def write_scenes(config: SyntheticConfig, scene: SceneConfig, out: str) -> str:
    """Generate the scenes into a COCO folder at `out` (local or s3://); returns its URI."""
    from lxn.data.coco import write_coco

    return write_coco(out, iter_scenes(config, scene), scene_classes(config))
