"""LogoXpertNet (Mumtaz et al.): MobileNetV3-Large + CLFF + HSE-SAB + FA-CBAM.

    image -> MobileNetV3-Large features (early tap F1, deep map F2)
          -> CLFF(F1, F2) -> HSE-SAB -> FA-CBAM -> GAP -> FC -> Hardswish -> FC -> classes

The backbone is torchvision's own MobileNetV3 (its `InvertedResidual` and `SqueezeExcitation`
blocks, its initialisation), built from the table below, so a torchvision ImageNet state dict
loads into `features` unchanged. The four registered builders are the rows of the paper's
ablation (Table 9); `width_mult` scales every channel count as in MobileNetV3.

Choices the paper leaves open, and why:

* The early CLFF input F1 is the last block at output stride 8 (40 channels at 28 x 28 for a
  224 px input): the first stage with SE, still texture-rich, before semantics dominate. The deep
  input F2 is the 960-channel map after the last 1x1 conv. `early_stride` moves the tap.
* The head keeps MobileNetV3's (Linear to 1280, Hardswish, Dropout, Linear) rather than the
  paper's single FC, so the backbone-only variant *is* torchvision's mobilenet_v3_large and the
  ablation changes only the attention modules. `forward_head(pre_logits=True)` returns the
  1280-d embedding the scan reports.
* The attention modules keep PyTorch's default initialisation; the classifier starts at
  N(0, 0.01) with zero bias, so the loss at initialisation is ln(num_classes).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torchvision.models.mobilenetv3 import InvertedResidualConfig, MobileNetV3

from lxn.layers import CrossLayerFeatureFusion, FrequencyAwareCBAM, HierarchicalSESpatialAttention
from lxn.models._registry import register_model

__all__ = [
    "MIN_INPUT_SIZE",
    "LogoXpertNet",
    "load_backbone_weights",
    "logoxpertnet_backbone",
    "logoxpertnet_clff",
    "logoxpertnet_clff_hsesab",
    "logoxpertnet",
]

log = logging.getLogger(__name__)

# MobileNetV3-Large bottlenecks, Table 1 of Howard et al. 2019, "Searching for MobileNetV3":
# input channels, kernel, expanded channels, output channels, SE, activation, stride.
_LARGE_BNECKS = [
    (16, 3, 16, 16, False, "RE", 1),
    (16, 3, 64, 24, False, "RE", 2),
    (24, 3, 72, 24, False, "RE", 1),
    (24, 5, 72, 40, True, "RE", 2),
    (40, 5, 120, 40, True, "RE", 1),
    (40, 5, 120, 40, True, "RE", 1),  # <- output stride 8: the default CLFF early tap
    (40, 3, 240, 80, False, "HS", 2),
    (80, 3, 200, 80, False, "HS", 1),
    (80, 3, 184, 80, False, "HS", 1),
    (80, 3, 184, 80, False, "HS", 1),
    (80, 3, 480, 112, True, "HS", 1),
    (112, 3, 672, 112, True, "HS", 1),
    (112, 5, 672, 160, True, "HS", 2),
    (160, 5, 960, 160, True, "HS", 1),
    (160, 5, 960, 160, True, "HS", 1),
]
_LAST_CHANNEL = 1280  # width of the head's hidden layer
_DEEP_STRIDE = 32     # output stride of the deep map F2
# Below 64 px the deep map is 2 x 2 or less: HSE-SAB's 2 x 2 local pooling and FA-CBAM's 7x7 and
# 3x3 convolutions see padding, not image. Presets refuse smaller inputs for these models.
MIN_INPUT_SIZE = 64


def _mobilenet_v3_features(width_mult: float) -> tuple[nn.Sequential, int]:
    """torchvision's MobileNetV3-Large `features` at a width multiplier, and its hidden width."""
    setting = [InvertedResidualConfig(*row, dilation=1, width_mult=width_mult) for row in _LARGE_BNECKS]
    last_channel = InvertedResidualConfig.adjust_channels(_LAST_CHANNEL, width_mult)
    # Only `features` is kept; torchvision's classifier is built for one class and dropped.
    return MobileNetV3(setting, last_channel, num_classes=1).features, last_channel


def _early_tap_index(early_stride: int) -> int:
    """Index in `features` of the last bottleneck whose output stride is `early_stride`."""
    index, stride = None, 2  # features[0] is the stride-2 stem; features[i] is bottleneck i - 1
    for i, row in enumerate(_LARGE_BNECKS, start=1):
        stride *= row[-1]
        if stride == early_stride:
            index = i
    if index is None or early_stride >= stride:  # the last stride belongs to F2 itself
        raise ValueError(f"early_stride must be one of 2, 4, 8, 16 (below the deep map's {stride}), got {early_stride}")
    return index


class LogoXpertNet(nn.Module):
    """The LogoXpertNet family; the attention modules are switched on one by one (Table 9).

    Args:
        num_classes: K, the number of brands (plus no-logo, when the dataset has it).
        width_mult: MobileNetV3 width multiplier, applied to every channel count.
        clff, hse_sab, fa_cbam: which attention modules follow the backbone.
        early_stride: output stride of the CLFF early map F1 (2, 4, 8 or 16).
        clff_mode: "concat" or "add" (see `CrossLayerFeatureFusion`).
        clff_early: how CLFF brings F1 down to F2: "avgpool" (default), "space_to_depth" or "conv".
        hse_gate: "paper" (sigmoid after ReLU, as written) or "sigmoid" (see `HierarchicalSESpatialAttention`).
        spectrum: FA-CBAM's transform: "real_fft" (the paper's), "centred_fft" or "dct".
        dropout: dropout before the classifier.
        bn_momentum: momentum of every BatchNorm's running statistics (torchvision's MobileNetV3
            uses 0.01, tuned for 600-epoch ImageNet runs; short runs need more, e.g. 0.1, or the
            running statistics used in evaluation lag far behind the weights).
    """

    def __init__(
        self,
        num_classes: int = 194,
        *,
        width_mult: float = 1.0,
        clff: bool = True,
        hse_sab: bool = True,
        fa_cbam: bool = True,
        early_stride: int = 8,
        clff_mode: str = "concat",
        clff_early: str = "avgpool",
        hse_gate: str = "paper",
        spectrum: str = "real_fft",
        dropout: float = 0.2,
        bn_momentum: float = 0.01,
    ) -> None:
        super().__init__()
        if num_classes < 1:
            raise ValueError(f"num_classes must be positive, got {num_classes}")
        self.features, last_channel = _mobilenet_v3_features(width_mult)
        self.early_index = _early_tap_index(early_stride) if clff else -1
        channels = self.features[-1].out_channels
        self.clff = None
        if clff:
            early_channels = self.features[self.early_index].out_channels
            self.clff = CrossLayerFeatureFusion(early_channels, channels, mode=clff_mode, early=clff_early,
                                                ratio=_DEEP_STRIDE // early_stride)
            channels = self.clff.out_channels
        self.hse_sab = HierarchicalSESpatialAttention(channels, gate=hse_gate) if hse_sab else nn.Identity()
        self.fa_cbam = FrequencyAwareCBAM(channels, spectrum=spectrum) if fa_cbam else nn.Identity()
        self.num_features = channels
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.pre_logits = nn.Sequential(
            nn.Linear(channels, last_channel), nn.Hardswish(inplace=True), nn.Dropout(dropout, inplace=True)
        )
        self.embedding_dim = last_channel
        self.classifier = nn.Linear(last_channel, num_classes)
        self.num_classes = num_classes
        for m in (self.pre_logits[0], self.classifier):
            nn.init.normal_(m.weight, 0, 0.01)
            nn.init.zeros_(m.bias)
        for m in self.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.momentum = bn_momentum

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """The attended deep feature map, shape (B, num_features, H / 32, W / 32)."""
        early = x
        for i, layer in enumerate(self.features):
            x = layer(x)
            if i == self.early_index:
                early = x
        if self.clff is not None:
            x = self.clff(early, x)
        return self.fa_cbam(self.hse_sab(x))

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """Logits, or with `pre_logits=True` the embedding_dim-wide embedding before the classifier."""
        x = self.pre_logits(torch.flatten(self.avgpool(x), 1))
        return x if pre_logits else self.classifier(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))

    def get_classifier(self) -> nn.Linear:
        """The last layer: logits = get_classifier()(forward_head(x, pre_logits=True))."""
        return self.classifier

    def reset_classifier(self, num_classes: int) -> None:
        """Replace the classifier with a freshly initialised one for `num_classes` classes."""
        self.classifier = nn.Linear(self.embedding_dim, num_classes)
        nn.init.normal_(self.classifier.weight, 0, 0.01)
        nn.init.zeros_(self.classifier.bias)
        self.num_classes = num_classes


# torchvision's MobileNetV3 head keys -> ours (its classifier is Sequential(Linear, HS, Dropout, Linear)).
_TORCHVISION_HEAD_KEYS = {"classifier.0.": "pre_logits.0.", "classifier.3.": "classifier."}


def load_backbone_weights(model: LogoXpertNet, path: str | Path) -> dict[str, list[str]]:
    """Initialise `model` from a local torchvision MobileNetV3-Large state dict (e.g. ImageNet).

    Every tensor whose name and shape match is copied; the rest (the classifier for another class
    count, the wider head input of CLFF variants) keeps its initialisation. The file is read with
    `weights_only=True`, so it cannot execute code. Returns {"loaded": [...], "skipped": [...]}.
    """
    state = torch.load(Path(path), map_location="cpu", weights_only=True)
    for key in ("state_dict", "model"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    renamed = {}
    for name, tensor in state.items():
        for old, new in _TORCHVISION_HEAD_KEYS.items():
            if name.startswith(old):
                name = new + name[len(old):]
        renamed[name] = tensor
    own = model.state_dict()
    # A layer is copied whole or not at all: a head whose weight does not fit keeps its bias too
    # (copying the bias alone would pair ImageNet's offsets with a fresh random weight).
    layers: dict[str, list[str]] = {}
    for key in own:
        layers.setdefault(key.rpartition(".")[0], []).append(key)
    matched = {k: renamed[k] for keys in layers.values()
               if all(k in renamed and renamed[k].shape == own[k].shape for k in keys) for k in keys}
    if not any(k.startswith("features.") for k in matched):
        raise ValueError(
            f"{path} holds no MobileNetV3-Large backbone tensors matching this model "
            f"(width_mult must match the file's); first keys: {list(renamed)[:3]}"
        )
    model.load_state_dict(matched, strict=False)
    skipped = sorted(set(renamed) - set(matched))
    log.info("loaded %d tensors from %s; kept initialisation for %d", len(matched), path, len(skipped))
    return {"loaded": sorted(matched), "skipped": skipped}


def _build(num_classes: int, backbone_weights: str | Path | None, **kwargs: Any) -> LogoXpertNet:
    model = LogoXpertNet(num_classes, **kwargs)
    if backbone_weights is not None:
        load_backbone_weights(model, backbone_weights)
    return model


@register_model
def logoxpertnet_backbone(*, num_classes: int = 194, backbone_weights=None, **kwargs: Any) -> LogoXpertNet:
    """Table 9, row 1: MobileNetV3-Large alone (torchvision's mobilenet_v3_large, layer for layer)."""
    return _build(num_classes, backbone_weights, clff=False, hse_sab=False, fa_cbam=False, **kwargs)


@register_model
def logoxpertnet_clff(*, num_classes: int = 194, backbone_weights=None, **kwargs: Any) -> LogoXpertNet:
    """Table 9, row 2: backbone + CLFF."""
    return _build(num_classes, backbone_weights, clff=True, hse_sab=False, fa_cbam=False, **kwargs)


@register_model
def logoxpertnet_clff_hsesab(*, num_classes: int = 194, backbone_weights=None, **kwargs: Any) -> LogoXpertNet:
    """Table 9, row 3: backbone + CLFF + HSE-SAB."""
    return _build(num_classes, backbone_weights, clff=True, hse_sab=True, fa_cbam=False, **kwargs)


@register_model
def logoxpertnet(*, num_classes: int = 194, backbone_weights=None, **kwargs: Any) -> LogoXpertNet:
    """Table 9, row 4: the full LogoXpertNet (backbone + CLFF + HSE-SAB + FA-CBAM)."""
    return _build(num_classes, backbone_weights, clff=True, hse_sab=True, fa_cbam=True, **kwargs)
