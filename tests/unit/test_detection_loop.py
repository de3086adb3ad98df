"""The detector's training step and scoring (lxn.train.detection) on padded batches, without Ray:
padding rows are not marks, boxes reach the metrics in the batch's pixels, and a step learns."""

from __future__ import annotations

import numpy as np
import torch

from lxn.models import create_model
from lxn.presets import Preset
from lxn.preprocess import Preprocess
from lxn.train.decode import decode_detection_batch
from lxn.train.detection import padded_boxes, predict_detections, targets_of, train_one_epoch_detection

S = 64


def _batch():
    images = np.full((2, S, S, 3), 90, dtype=np.uint8)
    images[0, 8:40, 8:40] = (220, 30, 30)
    boxes = np.zeros((2, 3, 4), dtype=np.float32)
    labels = np.full((2, 3), -1, dtype=np.int64)
    boxes[0, 0], labels[0, 0] = (8, 8, 40, 40), 1
    return {"image": torch.from_numpy(images), "boxes": torch.from_numpy(boxes), "box_labels": torch.from_numpy(labels)}


def test_padding_is_not_a_mark_and_crowds_keep_their_largest_boxes():
    first, second = targets_of(_batch())
    assert first["boxes"].tolist() == [[8, 8, 40, 40]] and first["labels"].tolist() == [1]
    assert len(second["boxes"]) == 0
    boxes, labels = padded_boxes([[0, 0, 5, 5], [0, 0, 30, 30], [0, 0, 10, 10]], [0, 1, 2], max_boxes=2)
    assert boxes.tolist() == [[0, 0, 30, 30], [0, 0, 10, 10]] and labels.tolist() == [1, 2]  # in their order


def test_decode_scales_the_stored_boxes_with_the_pixels():
    from lxn.images import encode_jpeg

    stored = np.zeros((100, 200, 3), dtype=np.uint8)  # 200 x 100: x halves to 100, y stays 100 at 100 px
    batch = {"image": np.array([encode_jpeg(stored, quality=90)], dtype=object),
             "boxes": np.array([[{"label": 2, "x0": 20.0, "y0": 10.0, "x1": 60.0, "y1": 50.0}]], dtype=object)}
    out = decode_detection_batch(batch, Preset(image_size=100), detector_class=[-1, 0, 1], max_boxes=2)
    assert out["image"].shape == (1, 100, 100, 3)
    assert out["boxes"][0, 0].tolist() == [10, 10, 30, 50] and out["box_labels"][0].tolist() == [1, -1]


def test_an_epoch_steps_and_scoring_gives_truth_and_detections_by_name():
    torch.manual_seed(0)
    preset = Preset(image_size=S, denoise_sigma=0, crop_scale_min=0.5)
    model = create_model("logoxpertnet_backbone_det", num_classes=2, image_size=S)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    stats = train_one_epoch_detection(model, [_batch(), _batch()], optimizer=optimizer, preprocess=Preprocess(preset),
                                      preset=preset, generator=torch.Generator().manual_seed(0),
                                      device=torch.device("cpu"))
    assert stats.count == 4 and np.isfinite(stats.loss) and stats.correct == 0
    assert any(not torch.equal(before[k], v) for k, v in model.state_dict().items())
    truth, predictions = predict_detections(model, [_batch()], preprocess=Preprocess(preset), device=torch.device("cpu"),
                                            class_names=["acme", "globex"], prefix="r0-", score_thresh=0.0)
    assert truth == {"r0-0": [{"label": "globex", "box": [8.0, 8.0, 40.0, 40.0]}], "r0-1": []}
    assert set(predictions) == {"r0-0", "r0-1"}
    assert all(d["label"] in ("acme", "globex") and 0 <= d["score"] <= 1 for rows in predictions.values() for d in rows)
