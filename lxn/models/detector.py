"""LogoXpertNet as a detector: torchvision's FCOS over the classifier's attended feature maps.

    image -> MobileNetV3-Large -> C3 (stride 8), C4 (stride 16), C5 = FA-CBAM(HSE-SAB(CLFF(C3', C5')))
          -> feature pyramid P3..P6 -> FCOS head (class, box, centre-ness at every position)

The backbone is the classifier's own modules under the same names (`features`, `clff`,
`hse_sab`, `fa_cbam`), so a LogoXpertNet classifier checkpoint, or torchvision's ImageNet
MobileNetV3-Large weights, initialise it (`load_classifier_backbone`). Losses, matching and the
reference decoding are torchvision's FCOS (anchor-free, centre sampling, focal + GIoU losses).

In evaluation the model returns a fixed number of candidates per image, (B, N, 6) rows of
(x0, y0, x1, y1, score, label): the `topk` best class-position pairs of every pyramid level,
boxes decoded and clipped, their FCOS scores. One tensor, a graph that `torch.export` captures
whole (and MLflow's pyfunc can serve); `select_detections` then applies the score threshold and
class-wise NMS outside it, where shapes may depend on the data. The two together give what
torchvision's `FCOS.postprocess_detections` gives (tests/unit/test_detector.py checks it).

Choices, and why:

* Strides 8-64: a mark at 5% of a 640 px short side is 24-32 px; FCOS gives boxes up to 8
  strides across to P3 (stride 8), so small marks are P3's, not lost at stride 32.
* The pyramid is narrow (96 channels) and the head has 3 convolutions, not FCOS's 256 and 4:
  the backbone is a mobile one and a scan runs on CPUs too.
"""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torchvision.models.detection import FCOS
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.fcos import FCOSHead
from torchvision.ops import FeaturePyramidNetwork, batched_nms, clip_boxes_to_image
from torchvision.ops.feature_pyramid_network import LastLevelMaxPool

from lxn.models._registry import register_model
from lxn.models.logoxpertnet import LogoXpertNet, load_backbone_weights

__all__ = ["LogoXpertDet", "load_classifier_backbone", "select_detections", "logoxpertnet_det",
           "logoxpertnet_backbone_det", "DETECTOR_STRIDES"]

DETECTOR_STRIDES = (8, 16, 32, 64)
_C4_INDEX = 12  # features[12]: the last bottleneck at output stride 16 (112 channels)


class _Backbone(nn.Module):
    """The classifier's feature extractor, tapped at strides 8 and 16, its attended map at 32,
    and a feature pyramid over the three (plus a stride-64 level by max pooling)."""

    def __init__(self, net: LogoXpertNet, out_channels: int) -> None:
        super().__init__()
        self.features, self.clff, self.hse_sab, self.fa_cbam = net.features, net.clff, net.hse_sab, net.fa_cbam
        self.c3_index = 6  # the last bottleneck at stride 8, also the classifier's CLFF early tap
        widths = [self.features[self.c3_index].out_channels, self.features[_C4_INDEX].out_channels, net.num_features]
        self.fpn = FeaturePyramidNetwork(widths, out_channels, extra_blocks=LastLevelMaxPool())
        self.out_channels = out_channels

    def forward(self, x: torch.Tensor) -> "OrderedDict[str, torch.Tensor]":
        taps = {}
        for i, layer in enumerate(self.features):
            x = layer(x)
            if i in (self.c3_index, _C4_INDEX):
                taps[i] = x
        if self.clff is not None:
            x = self.clff(taps[self.c3_index], x)
        deep = self.fa_cbam(self.hse_sab(x))
        return self.fpn(OrderedDict([("c3", taps[self.c3_index]), ("c4", taps[_C4_INDEX]), ("c5", deep)]))


class LogoXpertDet(FCOS):
    """FCOS on LogoXpertNet. `forward(x, targets)` in training returns torchvision's FCOS losses
    {"classification", "bbox_regression", "bbox_ctrness"}; in evaluation, `forward(x)` returns
    the (B, num_candidates, 6) candidates (box in input pixels, score, label) for
    `select_detections`.

    `x` is a normalised float batch (B, 3, S, S) at the model's `image_size` (the preset's
    preprocessing runs before, as for the classifier); `targets` is one {"boxes": (n, 4) xyxy in
    input pixels, "labels": (n,) in [0, num_classes)} per image, possibly with no boxes.

    Args:
        num_classes: the brands (no background class: a position with no brand above the
            threshold is background).
        image_size: the square input side S the candidates' shapes are fixed for.
        fpn_channels, head_convs: width of the pyramid and depth of the head's two towers.
        topk: candidates kept per pyramid level before NMS (torchvision's `topk_candidates`).
        score_thresh, nms_thresh, detections_per_img: `select_detections`' defaults, and
            torchvision's reference decoding's.
        **backbone: LogoXpertNet's switches (clff, hse_sab, fa_cbam, width_mult, ...).
    """

    task = "detect"  # what lxn.tracking.log_model records: its output is candidates, not logits

    def __init__(self, num_classes: int, *, image_size: int = 512, fpn_channels: int = 96, head_convs: int = 3,
                 topk: int = 100, score_thresh: float = 0.05, nms_thresh: float = 0.5, detections_per_img: int = 100,
                 **backbone: Any) -> None:
        if num_classes < 1:
            raise ValueError(f"num_classes must be positive, got {num_classes}")
        if backbone.pop("early_stride", 8) != 8:
            raise ValueError("the detector's P3 is the stride-8 map, which is also CLFF's early input: early_stride must be 8")
        if image_size % DETECTOR_STRIDES[-1]:
            raise ValueError(f"image_size must be a multiple of {DETECTOR_STRIDES[-1]}, got {image_size}")
        if fpn_channels % 32:
            raise ValueError(f"fpn_channels must be a multiple of 32 (the head's GroupNorm), got {fpn_channels}")
        self.backbone_config = dict(backbone)
        body = _Backbone(LogoXpertNet(1, early_stride=8, **backbone), fpn_channels)
        anchors = AnchorGenerator(sizes=tuple((s,) for s in DETECTOR_STRIDES), aspect_ratios=((1.0,),) * len(DETECTOR_STRIDES))
        head = FCOSHead(fpn_channels, 1, num_classes, num_convs=head_convs)
        # torchvision ends the box branch in a ReLU and starts its bias at 0: half the outputs
        # start dead, and a few large early steps can push all of them below zero, after which
        # no box ever learns (GIoU loss stuck at 1.0, seen here in a few hundred steps at lr 2e-3).
        # Starting at one anchor size per side (a box twice the stride) keeps every output alive.
        nn.init.constant_(head.regression_head.bbox_reg.bias, 1.0)
        # The transform is never used (forward normalises nothing and resizes nothing); torchvision
        # builds one regardless.
        super().__init__(body, num_classes, min_size=image_size, max_size=image_size, anchor_generator=anchors,
                         head=head, score_thresh=score_thresh, nms_thresh=nms_thresh,
                         detections_per_img=detections_per_img, topk_candidates=topk)
        self.num_classes = num_classes
        self.image_size = image_size
        sides = [image_size // s for s in DETECTOR_STRIDES]
        self.level_sizes = [side * side for side in sides]
        # Every position's anchor box (stride-sized, centred on the position), fixed for S x S.
        centres = []
        for stride, side in zip(DETECTOR_STRIDES, sides):
            ys, xs = torch.meshgrid(torch.arange(side) * stride, torch.arange(side) * stride, indexing="ij")
            centre = torch.stack([xs, ys, xs, ys], -1).reshape(-1, 4).float()
            centres.append(centre + torch.tensor([-stride / 2, -stride / 2, stride / 2, stride / 2]))
        self.register_buffer("anchors", torch.cat(centres), persistent=False)
        self.num_candidates = sum(min(topk, size * num_classes) for size in self.level_sizes)

    # ------------------------------------------------------------------ training

    def forward(self, x: torch.Tensor, targets: list[dict[str, torch.Tensor]] | None = None):
        self._check_input(x)
        features = list(self.backbone(x).values())
        outputs = self.head(features)
        if self.training:
            if targets is None or len(targets) != x.shape[0]:
                raise ValueError("training needs one target dict per image")
            anchors = [self.anchors] * x.shape[0]
            return self.compute_loss(targets, outputs, anchors, self.level_sizes)
        return self._candidates(outputs)

    def _check_input(self, x: torch.Tensor) -> None:
        if x.dim() != 4 or tuple(x.shape[1:]) != (3, self.image_size, self.image_size):
            raise ValueError(f"expected images (B, 3, {self.image_size}, {self.image_size}), got {tuple(x.shape)}")

    # ------------------------------------------------------------------ inference

    def _candidates(self, outputs: dict[str, torch.Tensor]) -> torch.Tensor:
        """The `topk` best (position, class) pairs of every level, as FCOS scores them
        (sqrt(class probability x centre-ness)), with their decoded, clipped boxes."""
        scores = torch.sqrt(torch.sigmoid(outputs["cls_logits"]) * torch.sigmoid(outputs["bbox_ctrness"]))
        batch, _, classes = scores.shape
        boxes, kept, labels, start = [], [], [], 0
        for size in self.level_sizes:
            level = scores[:, start:start + size].reshape(batch, -1)
            top, index = level.topk(min(self.topk_candidates, size * classes), dim=1)
            position = torch.div(index, classes, rounding_mode="floor") + start
            regression = torch.gather(outputs["bbox_regression"], 1, position.unsqueeze(-1).expand(-1, -1, 4))
            anchor = self.anchors[position]
            boxes.append(self.box_coder.decode(regression, anchor))
            kept.append(top)
            labels.append(index % classes)
            start += size
        boxes = clip_boxes_to_image(torch.cat(boxes, 1), (self.image_size, self.image_size))
        return torch.cat([boxes, torch.cat(kept, 1).unsqueeze(-1), torch.cat(labels, 1).unsqueeze(-1).to(boxes.dtype)], -1)

    def reference_detections(self, x: torch.Tensor) -> list[dict[str, torch.Tensor]]:
        """torchvision's own FCOS decoding of the same head outputs (what the tests compare with)."""
        self._check_input(x)
        features = list(self.backbone(x).values())
        outputs = self.head(features)
        split = {k: list(v.split(self.level_sizes, dim=1)) for k, v in outputs.items()}
        anchors = [list(self.anchors.split(self.level_sizes))] * x.shape[0]
        return self.postprocess_detections(split, anchors, [(self.image_size, self.image_size)] * x.shape[0])


def select_detections(candidates: torch.Tensor, *, score_thresh: float = 0.05, nms_thresh: float = 0.5,
                      max_detections: int = 100) -> list[dict[str, torch.Tensor]]:
    """Per image of (B, N, 6) candidates (the model's or the exported graph's output, a tensor or
    an array): those above `score_thresh`, class-wise NMS at `nms_thresh`, the best
    `max_detections` by score, as {"boxes", "scores", "labels"}."""
    candidates = torch.as_tensor(candidates)
    results = []
    for row in candidates:
        b, s, c = row[:, :4], row[:, 4], row[:, 5].round().long()
        keep = s > score_thresh
        b, s, c = b[keep], s[keep], c[keep]
        order = batched_nms(b.float(), s.float(), c, nms_thresh)[:max_detections]
        results.append({"boxes": b[order], "scores": s[order], "labels": c[order]})
    return results


def load_classifier_backbone(model: LogoXpertDet, path: str | Path) -> dict[str, list[str]]:
    """Initialise the detector's backbone from a local file: a LogoXpertNet classifier state dict
    (`features`, `clff`, `hse_sab`, `fa_cbam` copied; its classifier head has no place here) or
    torchvision's MobileNetV3-Large weights (`features` only). Read with `weights_only=True`.
    Returns {"loaded": [...], "skipped": [...]}, names as in the file."""
    shell = LogoXpertNet(1, early_stride=8, **model.backbone_config)
    # The shell shares the detector's modules, so what loads into it loads into the detector.
    shell.features, shell.clff, shell.hse_sab, shell.fa_cbam = (model.backbone.features, model.backbone.clff,
                                                                model.backbone.hse_sab, model.backbone.fa_cbam)
    return load_backbone_weights(shell, path)


def _build(num_classes: int, backbone_weights: str | Path | None, **kwargs: Any) -> LogoXpertDet:
    model = LogoXpertDet(num_classes, **kwargs)
    if backbone_weights is not None:
        load_classifier_backbone(model, backbone_weights)
    return model


@register_model(task="detect")
def logoxpertnet_det(*, num_classes: int = 194, backbone_weights=None, **kwargs: Any) -> LogoXpertDet:
    """FCOS on the full LogoXpertNet (CLFF + HSE-SAB + FA-CBAM on the stride-32 level)."""
    return _build(num_classes, backbone_weights, **kwargs)


@register_model(task="detect")
def logoxpertnet_backbone_det(*, num_classes: int = 194, backbone_weights=None, **kwargs: Any) -> LogoXpertDet:
    """FCOS on MobileNetV3-Large alone: the detector's ablation baseline."""
    return _build(num_classes, backbone_weights, clff=False, hse_sab=False, fa_cbam=False, **kwargs)
