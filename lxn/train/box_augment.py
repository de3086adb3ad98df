"""Augmentation that moves boxes with the pixels, for training detectors: torchvision's
transforms.v2 (boxes as `tv_tensors.BoundingBoxes`), per image on the CPU.

    flip (preset.hflip_p) -> zoom out (small marks the data lacks) -> IoU-constrained crop
    (zoom in, every kept mark mostly inside) -> resize back to the model's size -> brightness
    and colour (preset) -> drop boxes a crop left under 2 px

The classifier's batched `lxn.preprocess.augment` rotates and shears, which would turn a tight box
loose; SSD's recipe (zoom out, IoU crop, flip) keeps boxes exact. Every random draw comes from
`generator`, so a seeded run repeats.
"""

from __future__ import annotations

import functools

import torch
from torchvision import tv_tensors
from torchvision.transforms import v2

from lxn.presets import Preset

__all__ = ["augment_detection", "box_pipeline"]


@functools.lru_cache(maxsize=16)  # built once per setting, not per batch (a Preset is frozen: hashable)
def box_pipeline(preset: Preset, *, zoom_out_p: float = 0.3, max_zoom_out: float = 2.0, crop_p: float = 0.5) -> v2.Compose:
    """The transform for one (image uint8 CHW, {"boxes", "labels"}) pair at `preset.image_size`."""
    size = preset.image_size
    fill = tuple(round(255 * m) for m in preset.mean)  # zoomed-out margins: the data's mean colour
    steps: list[v2.Transform] = [v2.RandomHorizontalFlip(p=preset.hflip_p)]
    if zoom_out_p > 0 and max_zoom_out > 1:
        steps.append(v2.RandomZoomOut(fill={tv_tensors.Image: fill, "others": 0}, side_range=(1.0, max_zoom_out),
                                      p=zoom_out_p))
    if crop_p > 0:
        steps.append(v2.RandomApply([v2.RandomIoUCrop(min_scale=min(preset.crop_scale_min, 0.3))], p=crop_p))
    steps.append(v2.Resize((size, size), antialias=True))
    if preset.brightness > 0 or preset.color_jitter > 0:
        steps.append(v2.RandomApply([v2.ColorJitter(brightness=preset.brightness, contrast=preset.color_jitter,
                                                    saturation=preset.color_jitter, hue=preset.color_jitter / 10)],
                                    p=max(preset.brightness_p, preset.color_p)))
    steps.append(v2.SanitizeBoundingBoxes(min_size=2.0))
    return v2.Compose(steps)


def augment_detection(images: torch.Tensor, targets: list[dict[str, torch.Tensor]], preset: Preset,
                      generator: torch.Generator, **options) -> tuple[torch.Tensor, list[dict[str, torch.Tensor]]]:
    """uint8 (B, S, S, 3) images with their targets ({"boxes": (n, 4) xyxy pixels, "labels": (n,)})
    -> float (B, 3, S, S) in [0, 1] and the targets moved with them. An image without boxes
    skips the IoU crop (it has nothing to keep inside) but is flipped, zoomed and coloured."""
    pipeline = box_pipeline(preset, **options)
    no_crop = box_pipeline(preset, **{**options, "crop_p": 0.0})
    seeds = torch.randint(0, 2**62, (len(targets),), generator=generator).tolist()
    out_images, out_targets = [], []
    with torch.random.fork_rng(devices=[]):  # v2 draws from the global generator: confined here
        for image, target, seed in zip(images, targets, seeds):
            torch.manual_seed(seed)
            chw = tv_tensors.Image(image.permute(2, 0, 1).contiguous())
            boxes = tv_tensors.BoundingBoxes(target["boxes"].reshape(-1, 4).float(), format="XYXY",
                                             canvas_size=tuple(chw.shape[-2:]))
            transform = pipeline if len(boxes) else no_crop
            moved_image, moved = transform(chw, {"boxes": boxes, "labels": target["labels"].reshape(-1)})
            out_images.append(moved_image.float().div(255.0))
            out_targets.append({"boxes": moved["boxes"].as_subclass(torch.Tensor), "labels": moved["labels"]})
    return torch.stack(out_images), out_targets
