"""LogoXpertNet as a detector (lxn.models.detector): torchvision's FCOS is the reference for the
decoding, a few training steps on constructed scenes must find the planted marks, the graph
exports whole, and a classifier checkpoint initialises the backbone."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.image_list import ImageList
from torchvision.ops import box_iou

from lxn.models import LogoXpertDet, create_model, select_detections
from lxn.models.detector import DETECTOR_STRIDES, load_classifier_backbone
from lxn.presets import Preset
from lxn.preprocess import InferenceModel

S = 128


def _decode_both(model: LogoXpertDet, x: torch.Tensor):
    with torch.no_grad():
        ours = select_detections(model(x), score_thresh=model.score_thresh, nms_thresh=model.nms_thresh,
                                 max_detections=model.detections_per_img)
        return ours, model.reference_detections(x)


def test_anchors_are_torchvisions_for_the_fixed_input():
    model = create_model("logoxpertnet_det", num_classes=2, image_size=S).eval()
    features = [torch.zeros(1, 1, S // s, S // s) for s in DETECTOR_STRIDES]
    generator = AnchorGenerator(sizes=tuple((s,) for s in DETECTOR_STRIDES), aspect_ratios=((1.0,),) * 4)
    expected = generator(ImageList(torch.zeros(1, 3, S, S), [(S, S)]), features)[0]
    assert torch.equal(model.anchors, expected)


def test_fixed_shape_candidates_then_nms_give_torchvisions_fcos_detections():
    torch.manual_seed(0)
    model = create_model("logoxpertnet_det", num_classes=3, image_size=S, topk=50).eval()
    x = torch.randn(3, 3, S, S)
    candidates = model(x)
    assert candidates.shape == (3, 50 * 2 + 16 * 3 + 4 * 3, 6) == (3, model.num_candidates, 6)  # P5 holds 16 positions, P6 4
    ours, reference = _decode_both(model, x)
    for mine, theirs in zip(ours, reference):
        assert len(theirs["boxes"]) > 10  # an untrained head still scores above 0.05: the comparison has content
        order = torch.argsort(theirs["scores"], descending=True)
        assert torch.allclose(mine["boxes"], theirs["boxes"][order], atol=1e-4)
        assert torch.equal(mine["labels"], theirs["labels"][order])
        assert torch.allclose(mine["scores"], theirs["scores"][order])


def test_select_detections_thresholds_suppresses_within_a_class_and_caps():
    candidates = torch.tensor([[[0, 0, 10, 10, 0.9, 0], [1, 1, 10, 10, 0.8, 0], [0, 0, 10, 10, 0.7, 1],
                                [50, 50, 60, 60, 0.04, 0], [70, 70, 80, 80, 0.6, 0]]])
    (kept,) = select_detections(candidates, score_thresh=0.05, nms_thresh=0.5)
    # the 0.8 box overlaps the 0.9 one of its class (IoU 0.81); the other class's box stays; 0.04 is below
    assert kept["scores"].tolist() == pytest.approx([0.9, 0.7, 0.6])
    assert kept["labels"].tolist() == [0, 1, 0]
    (capped,) = select_detections(candidates, max_detections=2)
    assert capped["scores"].tolist() == pytest.approx([0.9, 0.7])
    (none,) = select_detections(candidates.numpy(), score_thresh=0.95)
    assert len(none["boxes"]) == 0


def _scene(rng: np.random.Generator):
    """A noisy background with one or two non-overlapping marks: class 0 a red square with a
    white diagonal, class 1 a blue disc, 20-48 px wide."""
    image = Image.fromarray((rng.random((S, S, 3)) * 120 + 60).astype(np.uint8))
    draw = ImageDraw.Draw(image)
    boxes: list[list[int]] = []
    labels: list[int] = []
    for _ in range(int(rng.integers(1, 3))):
        for _ in range(50):
            w = int(rng.integers(20, 48))
            x0, y0 = int(rng.integers(0, S - w)), int(rng.integers(0, S - w))
            box = [x0, y0, x0 + w, y0 + w]
            if all(min(box[2], b[2]) <= max(box[0], b[0]) or min(box[3], b[3]) <= max(box[1], b[1]) for b in boxes):
                break
        else:
            continue
        label = int(rng.integers(0, 2))
        if label == 0:
            draw.rectangle(box, fill=(220, 30, 30))
            draw.line(box, fill=(255, 255, 255), width=3)
        else:
            draw.ellipse(box, fill=(30, 60, 220))
        boxes.append(box)
        labels.append(label)
    return np.asarray(image).copy(), {"boxes": torch.tensor(boxes, dtype=torch.float32), "labels": torch.tensor(labels)}


def test_a_few_training_steps_find_the_planted_marks_with_tight_boxes():
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    preset = Preset(image_size=S)
    model = create_model("logoxpertnet_det", num_classes=2, image_size=S, bn_momentum=0.1)
    wrapped = InferenceModel(model, preset)  # the preprocessing the exported graph holds
    optimizer = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=1e-4)
    model.train()
    for _ in range(60):  # 26 of the 27 marks found, 26 boxes (120 steps: 27, 29), at half the cost
        scenes = [_scene(rng) for _ in range(8)]
        x = wrapped.preprocess(torch.from_numpy(np.stack([s[0] for s in scenes])))
        loss = sum(model(x, [s[1] for s in scenes]).values())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    wrapped.eval()
    rng = np.random.default_rng(99)
    scenes = [_scene(rng) for _ in range(16)]
    with torch.no_grad():
        found = select_detections(wrapped(torch.from_numpy(np.stack([s[0] for s in scenes]))), score_thresh=0.3)
    marks = hits = 0
    for (_, truth), detections in zip(scenes, found):
        for box, label in zip(truth["boxes"], truth["labels"]):
            marks += 1
            same = detections["labels"] == label
            hits += bool(same.any() and (box_iou(box[None], detections["boxes"][same])[0] >= 0.5).any())
    predicted = sum(len(d["boxes"]) for d in found)
    assert hits >= 0.85 * marks, (hits, marks)
    assert predicted <= 1.2 * marks, (predicted, marks)  # one box per mark, not a cloud of them


def test_images_without_marks_train_and_training_needs_targets():
    model = create_model("logoxpertnet_backbone_det", num_classes=2, image_size=S).train()
    empty = {"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.int64)}
    one = {"boxes": torch.tensor([[10.0, 10, 50, 60]]), "labels": torch.tensor([1])}
    losses = model(torch.randn(2, 3, S, S), [empty, one])
    assert set(losses) == {"classification", "bbox_regression", "bbox_ctrness"}
    assert all(torch.isfinite(v) for v in losses.values())
    with pytest.raises(ValueError, match="one target dict per image"):
        model(torch.randn(2, 3, S, S))


def test_the_exported_graph_takes_uint8_images_of_any_batch_and_matches_eager(tmp_path):
    torch.manual_seed(0)
    wrapped = InferenceModel(create_model("logoxpertnet_det", num_classes=3, image_size=S), Preset(image_size=S)).eval()
    images = torch.randint(0, 256, (2, S, S, 3), dtype=torch.uint8)
    program = torch.export.export(wrapped, (images,), dynamic_shapes={"images": {0: torch.export.Dim("batch", max=1024)}})
    torch.export.save(program, tmp_path / "det.pt2")
    loaded = torch.export.load(tmp_path / "det.pt2").module()
    with torch.no_grad():
        eager = wrapped(images)
        exported = loaded(torch.cat([images, images[:1]]))
    assert exported.shape == (3, *eager.shape[1:])
    assert torch.allclose(eager, exported[:2], atol=1e-4)


def test_a_classifier_checkpoint_initialises_the_backbone(tmp_path):
    classifier = create_model("logoxpertnet", num_classes=7)
    torch.save({"model": classifier.state_dict()}, tmp_path / "classifier.pt")
    detector = create_model("logoxpertnet_det", num_classes=2, image_size=S,
                            backbone_weights=str(tmp_path / "classifier.pt"))
    own = detector.backbone.state_dict()
    for name, tensor in classifier.state_dict().items():
        if name.split(".")[0] in ("features", "clff", "hse_sab", "fa_cbam"):
            assert torch.equal(own[name], tensor), name
    report = load_classifier_backbone(detector, tmp_path / "classifier.pt")
    assert any(k.startswith("classifier.") for k in report["skipped"])  # the brand head has no place here

    torch.save({"head.weight": torch.zeros(3, 3)}, tmp_path / "unrelated.pt")
    with pytest.raises(ValueError, match="no MobileNetV3-Large backbone tensors"):
        load_classifier_backbone(detector, tmp_path / "unrelated.pt")


def test_bad_shapes_and_settings_are_refused_clearly():
    model = create_model("logoxpertnet_det", num_classes=2, image_size=S).eval()
    with pytest.raises(ValueError, match=r"expected images \(B, 3, 128, 128\)"):
        model(torch.randn(1, 3, 96, 96))
    with pytest.raises(ValueError, match="multiple of 64"):
        create_model("logoxpertnet_det", num_classes=2, image_size=100)
    with pytest.raises(ValueError, match="early_stride must be 8"):
        create_model("logoxpertnet_det", num_classes=2, image_size=S, early_stride=16)
    with pytest.raises(ValueError, match="multiple of 32"):
        create_model("logoxpertnet_det", num_classes=2, image_size=S, fpn_channels=40)
