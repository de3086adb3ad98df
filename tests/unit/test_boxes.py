"""The box contract (lxn.data.boxes), COCO folders (lxn.data.coco) and box-labelled scenes
(lxn.data.scenes): every unusable box is named, nothing is dropped in silence."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
from PIL import Image

from lxn.data.boxes import BoxError, check_box, clean_boxes, scale_boxes
from lxn.data.coco import coco_document, read_coco
from lxn.data.readers import NO_LOGO
from lxn.data.scenes import SceneConfig, detection_scene, scene_classes, write_scenes
from lxn.data.synthetic import SyntheticConfig


@pytest.mark.parametrize("box, kind", [
    ([10, 10, 5, 20], "degenerate"),
    ([10, 20, 30, 10], "degenerate"),
    ([10, 10, 10, 20], "empty"),
    ([10, 10, 30, 10], "empty"),
    ([-3, 0, 20, 20], "outside"),
    ([0, 0, 20, 52], "outside"),
    ([0, 0, "x", 5], "not_numbers"),
    ([0, 0, float("nan"), 5], "not_numbers"),
    ([0, 0, 5], "not_numbers"),
    (None, "not_numbers"),
])
def test_each_kind_of_unusable_box_is_named(box, kind):
    clipped, found, detail = check_box(box, 40, 50)
    assert clipped is None and found == kind and detail


def test_a_box_within_a_pixel_of_the_edge_is_clipped_not_refused():
    assert check_box([-0.5, -1, 40.8, 51], 40, 50) == ([0.0, 0.0, 40.0, 50.0], None, "")
    assert check_box([1, 2, 3, 4], 40, 50)[0] == [1.0, 2.0, 3.0, 4.0]


def test_clean_boxes_keeps_the_good_names_the_bad_and_knows_the_classes():
    kept, problems = clean_boxes("a.jpg", [
        {"label": "adidas", "box": [1, 1, 9, 9]},
        {"id": 7, "label": "nike", "box": [1, 1, 9, 9]},
        {"id": 8, "label": "adidas", "box": [5, 5, 5, 9]},
    ], 10, 10, {"adidas"})
    assert kept == [{"label": "adidas", "box": [1.0, 1.0, 9.0, 9.0]}]
    assert [(p.where, p.kind) for p in problems] == [("a.jpg (annotation 7)", "unknown_class"),
                                                     ("a.jpg (annotation 8)", "empty")]


def test_boxes_follow_a_resize_by_hand():
    boxes = [{"label": "a", "box": [10, 20, 30, 60]}]
    assert scale_boxes(boxes, (100, 200), (50, 50)) == [{"label": "a", "box": [5.0, 5.0, 15.0, 15.0]}]


# ---------------------------------------------------------------------------- COCO


def _jpeg(width: int, height: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (90, 90, 90)).save(buffer, format="JPEG")
    return buffer.getvalue()


def _coco_folder(tmp_path, document: dict) -> str:
    (tmp_path / "images").mkdir(exist_ok=True)
    for image in document.get("images", []):
        path = tmp_path / "images" / image["file_name"].removeprefix("images/")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(_jpeg(image["width"], image["height"]))
    (tmp_path / "annotations.json").write_text(json.dumps(document))
    return str(tmp_path)


# As COCO's documentation writes the instances format: bbox is [x, y, width, height] in pixels.
DOCUMENTED = {
    "info": {"description": "fixture"},
    "images": [{"id": 1, "file_name": "street.jpg", "width": 640, "height": 480},
               {"id": 2, "file_name": "images/shop/front.jpg", "width": 320, "height": 240},
               {"id": 3, "file_name": "empty.jpg", "width": 100, "height": 100}],
    "annotations": [
        {"id": 11, "image_id": 1, "category_id": 2, "bbox": [100, 50, 40, 30], "area": 1200, "iscrowd": 0},
        {"id": 12, "image_id": 1, "category_id": 1, "bbox": [300, 200, 120, 90], "area": 10800, "iscrowd": 0},
        {"id": 13, "image_id": 2, "category_id": 2, "bbox": [0, 0, 320.4, 240], "area": 1, "iscrowd": 0},
        {"id": 14, "image_id": 1, "category_id": 1, "bbox": [0, 0, 640, 480], "area": 1, "iscrowd": 1},
    ],
    "categories": [{"id": 1, "name": "adidas", "supercategory": "logo"}, {"id": 2, "name": "nike"}],
}


def test_a_documented_coco_folder_reads_with_boxes_in_lxns_form(tmp_path):
    samples = {s.uri.rsplit("images/", 1)[1]: s for s in read_coco(_coco_folder(tmp_path, DOCUMENTED))}
    street = samples["street.jpg"]
    assert street.label == "adidas"  # the larger total box area names the image
    assert street.extra["labels"] == ["adidas", "nike"]
    assert street.extra["boxes"] == [{"label": "nike", "box": [100.0, 50.0, 140.0, 80.0]},
                                     {"label": "adidas", "box": [300.0, 200.0, 420.0, 290.0]}]  # crowd skipped
    assert (street.extra["width"], street.extra["height"]) == (640, 480)
    front = samples["shop/front.jpg"]  # `images/` in file_name, as exports write it
    assert front.extra["boxes"] == [{"label": "nike", "box": [0.0, 0.0, 320.0, 240.0]}]  # 0.4 px over: clipped
    assert samples["empty.jpg"].label == NO_LOGO and samples["empty.jpg"].extra["boxes"] == []


def test_every_bad_box_in_a_coco_file_is_counted_and_nothing_is_read(tmp_path):
    document = json.loads(json.dumps(DOCUMENTED))
    document["annotations"] += [
        {"id": 21, "image_id": 1, "category_id": 1, "bbox": [600, 400, 100, 20]},   # outside
        {"id": 22, "image_id": 1, "category_id": 1, "bbox": [10, 10, 0, 20]},       # empty
        {"id": 23, "image_id": 1, "category_id": 1, "bbox": [10, 10, -5, 20]},      # degenerate
        {"id": 24, "image_id": 3, "category_id": 9, "bbox": [1, 1, 5, 5]},          # unknown class
        {"id": 25, "image_id": 3, "category_id": 1, "bbox": [1, 1, 5]},             # not numbers
    ]
    with pytest.raises(BoxError) as caught:
        list(read_coco(_coco_folder(tmp_path, document)))
    error = caught.value
    assert error.counts == {"outside": 1, "empty": 1, "degenerate": 1, "unknown_class": 1, "not_numbers": 1}
    assert "street.jpg (annotation 21): outside box" in str(error) and "labelling tool" in str(error)


@pytest.mark.parametrize("change, message", [
    (lambda d: d["annotations"].append({"id": 9, "image_id": 99, "category_id": 1, "bbox": [0, 0, 1, 1]}),
     "image_id 99 is not in images"),
    (lambda d: d["images"].append({"id": 4, "file_name": "../etc/passwd", "width": 5, "height": 5}),
     "must be a relative path inside images/"),
    (lambda d: d["images"].append({"id": 1, "file_name": "again.jpg", "width": 5, "height": 5}), "listed twice"),
    (lambda d: d["categories"].append({"id": 3, "name": "no-logo"}), "cannot be a brand"),
    (lambda d: d["categories"].append({"id": 4, "name": "nike"}), "share a name"),
    (lambda d: d.pop("categories"), "needs 'categories'"),
    (lambda d: d["images"][0].update(width="640"), "needs 'width' as int"),
])
def test_a_malformed_coco_file_is_a_clear_error(tmp_path, change, message):
    document = json.loads(json.dumps(DOCUMENTED))
    change(document)
    (tmp_path / "annotations.json").write_text(json.dumps(document))
    with pytest.raises(ValueError, match=message):
        list(read_coco(str(tmp_path)))


def test_a_folder_without_annotations_or_with_broken_json_says_so(tmp_path):
    with pytest.raises(FileNotFoundError, match="annotations.json not found"):
        list(read_coco(str(tmp_path)))
    (tmp_path / "annotations.json").write_text("{not json")
    with pytest.raises(ValueError, match="is not JSON"):
        list(read_coco(str(tmp_path)))


def test_coco_document_writes_xywh_with_one_based_categories():
    document = coco_document([{"file_name": "a.jpg", "width": 10, "height": 10,
                               "boxes": [{"label": "b", "box": [1, 2, 4, 8]}]}], ["a", "b"])
    assert document["annotations"] == [{"id": 1, "image_id": 1, "category_id": 2, "bbox": [1, 2, 3, 6], "area": 18,
                                        "iscrowd": 0}]
    assert document["categories"] == [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}]


# ---------------------------------------------------------------------------- scenes


def test_scenes_round_trip_through_a_coco_folder_with_their_boxes(tmp_path):
    config, scenes = SyntheticConfig(num_brands=5), SceneConfig(scenes=8, width=320, height=240)
    root = write_scenes(config, scenes, str(tmp_path / "coco"))
    samples = sorted(read_coco(root), key=lambda s: s.uri)
    assert len(samples) == 8
    for index, sample in enumerate(samples):
        data, boxes = detection_scene(config, scenes, index)
        assert (tmp_path / "coco" / "images" / f"scene-{index:06d}.jpg").read_bytes() == data
        assert sample.extra["boxes"] == boxes
        assert Image.open(io.BytesIO(data)).size == (320, 240)


def test_scenes_hold_different_brands_at_many_scales_overlapping_little():
    config = SyntheticConfig(num_brands=6)
    scenes = SceneConfig(scenes=40, width=400, height=300, min_marks=1, max_marks=3, min_scale=0.05, max_scale=0.4)
    counts, sides = [], []
    for index in range(scenes.scenes):
        _, boxes = detection_scene(config, scenes, index)
        labels = [b["label"] for b in boxes]
        assert len(set(labels)) == len(labels) and set(labels) <= set(scene_classes(config))
        counts.append(len(boxes))
        for i, a in enumerate(boxes):
            x0, y0, x1, y1 = a["box"]
            assert 0 <= x0 < x1 <= 400 and 0 <= y0 < y1 <= 300
            sides.append(max(x1 - x0, y1 - y0) / 300)
            for b in boxes[i + 1:]:
                w = min(x1, b["box"][2]) - max(x0, b["box"][0])
                h = min(y1, b["box"][3]) - max(y0, b["box"][1])
                smaller = min((x1 - x0) * (y1 - y0), (b["box"][2] - b["box"][0]) * (b["box"][3] - b["box"][1]))
                assert max(0, w) * max(0, h) <= 0.2 * smaller + 1e-6
    assert set(counts) == {1, 2, 3}
    assert min(sides) < 0.1 and max(sides) > 0.3  # small marks and large ones
    again = [detection_scene(config, scenes, i) for i in (3, 7)]
    assert again == [detection_scene(config, scenes, i) for i in (3, 7)]  # deterministic


def test_a_mark_is_where_its_box_says():
    """The pixels inside a box differ from the same frame without its marks, and nothing else does
    (plates off: a sign under a mark reaches beyond the mark)."""
    config = SyntheticConfig(num_brands=4, occlusion_prob=0.0, max_noise=0.0, max_blur=0.0, clutter=0, plate_prob=0.0)
    with_marks = SceneConfig(scenes=1, width=320, height=240, min_marks=2, max_marks=2)
    without = SceneConfig(scenes=1, width=320, height=240, min_marks=0, max_marks=0)
    for index in range(5):
        data, boxes = detection_scene(config, with_marks, index)
        empty, _ = detection_scene(config, without, index)
        a = np.asarray(Image.open(io.BytesIO(data)).convert("L"), np.float32)
        b = np.asarray(Image.open(io.BytesIO(empty)).convert("L"), np.float32)
        changed = np.abs(a - b) > 30
        for box in boxes:
            x0, y0, x1, y1 = (int(v) for v in box["box"])
            inside = changed[y0:y1, x0:x1].mean()
            assert inside > 0.15, (index, box, inside)
        outside = changed.copy()
        for box in boxes:
            x0, y0, x1, y1 = (int(v) for v in box["box"])
            outside[max(0, y0 - 3):y1 + 3, max(0, x0 - 3):x1 + 3] = False
        assert outside.mean() < 0.02


def test_scene_settings_are_checked():
    with pytest.raises(ValueError, match="min_marks <= max_marks"):
        SceneConfig(min_marks=3, max_marks=1)
    with pytest.raises(ValueError, match="min_scale <= max_scale"):
        SceneConfig(min_scale=0.5, max_scale=0.2)
    with pytest.raises(ValueError, match="32..8192"):
        SceneConfig(width=16)


def test_prepare_moves_boxes_to_the_stored_copy_and_quarantines_what_does_not_fit():
    from lxn.data.prepare import _BadBoxes, _stored_boxes
    from lxn.images import DecodedImage

    # a 4000x3000 JPEG decoded at 1/8 (draft) and stored with its shorter side at 300
    decoded = DecodedImage(np.zeros((375, 500, 3), np.uint8), 4000, 3000, "JPEG", "RGB", 1)
    boxes = [{"label": "a", "box": [400, 300, 800, 900]}]
    assert _stored_boxes("x.jpg", boxes, (4000, 3000), decoded, 300) == [{"label": "a", "box": [40.0, 30.0, 80.0, 90.0]}]
    assert _stored_boxes("x.jpg", boxes, (None, None), decoded, 300)[0]["box"] == [40.0, 30.0, 80.0, 90.0]
    with pytest.raises(_BadBoxes, match="annotations are for a 3000x4000 image") as caught:
        _stored_boxes("x.jpg", boxes, (3000, 4000), decoded, 300)
    assert caught.value.kind == "size_mismatch"
    with pytest.raises(_BadBoxes, match="x.jpg: outside box") as caught:  # BelgaLogos gives no size: checked here
        _stored_boxes("x.jpg", [{"label": "a", "box": [3900, 0, 4100, 50]}], (None, None), decoded, 300)
    assert caught.value.kind == "bad_boxes"
