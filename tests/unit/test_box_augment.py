"""Boxes move with the pixels (lxn.train.box_augment, lxn.presets.model_input): flip, crop and
resize checked by hand, then the whole pipeline checked against the marks it moved."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from PIL import Image
from scipy import ndimage
from torchvision import tv_tensors
from torchvision.transforms import v2

from lxn.data.boxes import scale_boxes
from lxn.presets import Preset, model_input
from lxn.train.box_augment import augment_detection

S = 64


def _target(*boxes, labels=None):
    return {"boxes": torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4),
            "labels": torch.tensor(labels if labels is not None else [1] * len(boxes))}


def test_flip_crop_and_resize_by_hand():
    image = tv_tensors.Image(torch.zeros(3, 100, 200, dtype=torch.uint8))
    boxes = tv_tensors.BoundingBoxes([[10, 20, 30, 40]], format="XYXY", canvas_size=(100, 200))
    _, flipped = v2.RandomHorizontalFlip(p=1.0)(image, boxes)
    assert flipped.tolist() == [[170, 20, 190, 40]]  # x -> 200 - x
    cropped = v2.functional.crop(boxes, top=10, left=5, height=50, width=100)
    assert cropped.tolist() == [[5, 10, 25, 30]]  # shifted by (-left, -top)
    _, resized = v2.Resize((50, 50))(image, boxes)
    assert resized.tolist() == [[2.5, 10, 7.5, 20]] or resized.tolist() == [[2, 10, 7, 20]]
    # the same rule lxn applies to a stored copy
    assert scale_boxes([{"label": "a", "box": [10, 20, 30, 40]}], (200, 100), (50, 50))[0]["box"] == [2.5, 10, 7.5, 20]


def test_model_input_gives_the_size_a_box_is_scaled_from():
    buffer = io.BytesIO()
    Image.new("RGB", (320, 240), (10, 20, 30)).save(buffer, format="JPEG")
    pixels, size = model_input(buffer.getvalue(), Preset(image_size=S))
    assert pixels.shape == (S, S, 3) and size == (320, 240)


def _marked(boxes: list[list[int]]) -> torch.Tensor:
    """A grey S x S image with each box filled in white."""
    image = np.full((S, S, 3), 60, np.uint8)
    for x0, y0, x1, y1 in boxes:
        image[y0:y1, x0:x1] = 255
    return torch.from_numpy(image)


def test_after_the_whole_pipeline_every_box_still_frames_its_mark():
    preset = Preset(image_size=S, brightness=0.0, color_jitter=0.0, crop_scale_min=0.5, hflip_p=0.5)
    boxes = [[8, 8, 24, 30], [36, 30, 60, 56]]
    images = torch.stack([_marked(boxes)] * 12)
    out, targets = augment_detection(images, [_target(*boxes, labels=[0, 1]) for _ in range(12)], preset,
                                     torch.Generator().manual_seed(0), zoom_out_p=0.5, crop_p=0.5)
    assert out.shape == (12, 3, S, S) and out.dtype == torch.float32 and 0 <= out.min() and out.max() <= 1
    changed = 0
    for image, target, original in zip(out, targets, [_target(*boxes, labels=[0, 1])] * 12):
        white = image[0] > 0.8
        changed += not torch.equal(target["boxes"], original["boxes"])
        for box in target["boxes"]:
            x0, y0, x1, y1 = (int(round(float(v))) for v in box)
            inner = white[y0 + 1:y1 - 1, x0 + 1:x1 - 1]
            assert inner.numel() and inner.float().mean() > 0.9  # the box is on its mark...
        covered = torch.zeros_like(white)
        for box in target["boxes"]:
            x0, y0, x1, y1 = (int(round(float(v))) for v in box)
            covered[max(0, y0 - 1):y1 + 1, max(0, x0 - 1):x1 + 1] = True
        # ...and a mark without a box is one the crop cut through its middle (SSD's rule: a box
        # whose centre leaves the crop goes), so it touches the border; never one in full view
        loose, count = ndimage.label((white & ~covered).numpy())
        for k in range(1, count + 1):
            ys, xs = np.nonzero(loose == k)
            assert ys.min() == 0 or xs.min() == 0 or ys.max() == S - 1 or xs.max() == S - 1
    assert changed >= 6  # the draws do move things


def test_seeded_runs_repeat_and_an_image_without_marks_passes():
    preset = Preset(image_size=S)
    images = torch.stack([_marked([[8, 8, 30, 30]]), _marked([])])
    targets = [_target([8, 8, 30, 30]), _target()]
    first = augment_detection(images, targets, preset, torch.Generator().manual_seed(3))
    second = augment_detection(images, targets, preset, torch.Generator().manual_seed(3))
    assert torch.equal(first[0], second[0])
    assert all(torch.equal(a["boxes"], b["boxes"]) for a, b in zip(first[1], second[1]))
    assert first[1][1]["boxes"].shape == (0, 4) and first[1][1]["labels"].shape == (0,)


@pytest.mark.parametrize("seed", range(3))
def test_labels_stay_with_their_boxes(seed):
    preset = Preset(image_size=S, crop_scale_min=0.3)
    boxes = [[2, 2, 20, 20], [40, 40, 62, 62]]
    _, (target,) = augment_detection(torch.stack([_marked(boxes)]), [_target(*boxes, labels=[3, 7])], preset,
                                     torch.Generator().manual_seed(seed), crop_p=1.0)
    # the two marks are far apart: whatever the crop keeps, each label keeps its own (left-right
    # order may flip, size order may not, since both were cropped and scaled alike)
    if len(target["boxes"]) == 2:
        assert sorted(target["labels"].tolist()) == [3, 7]
    assert set(target["labels"].tolist()) <= {3, 7}


def test_without_the_crop_no_mark_is_ever_left_without_its_box():
    preset = Preset(image_size=S, brightness=0.0, color_jitter=0.0)
    boxes = [[8, 8, 24, 30], [36, 30, 60, 56]]
    out, targets = augment_detection(torch.stack([_marked(boxes)] * 8), [_target(*boxes)] * 8, preset,
                                     torch.Generator().manual_seed(1), zoom_out_p=0.7, crop_p=0.0)
    for image, target in zip(out, targets):
        assert len(target["boxes"]) == 2
        covered = torch.zeros(S, S, dtype=torch.bool)
        for box in target["boxes"]:
            x0, y0, x1, y1 = (int(round(float(v))) for v in box)
            covered[max(0, y0 - 1):y1 + 1, max(0, x0 - 1):x1 + 1] = True
        assert not ((image[0] > 0.8) & ~covered).any()
