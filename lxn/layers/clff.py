"""Cross-Layer Feature Fusion (CLFF), LogoXpertNet Algorithm 1.

    F_fusion = [F1; F2]  (concatenation, C1 + C2 channels)   or   F1 + F2  (addition)
    z = GAP(F_fusion);  a = sigmoid(W2 ReLU(W1 z + b1) + b2);  F_out = a * F_fusion

Choices the paper leaves open (LogoXpertNet, "CLFF module"):

* Which early layer: the model picks it (`LogoXpertNet(early_stride=...)`); this module takes any.
* How F1 reaches F2's H x W: adaptive average pooling. It has no parameters, it is the
  anti-aliased way to downsample (a strided conv would alias the edge and texture energy the
  fusion is meant to keep), and it works for any input size, including sizes that are not
  multiples of 32 where the stride ratio is not an integer.
  That is `early="avgpool"`. Averaging a 28 x 28 map to 7 x 7 keeps only each 4 x 4 block's
  mean, the very detail the early map is fused for; `early="space_to_depth"` keeps every pixel
  (the 4 x 4 block becomes 16 x C1 channels, then a 1x1 conv + BN back to C1) and `early="conv"`
  learns the reduction (a strided conv + BN). Both first bring F1 to an exact multiple of F2's
  size by adaptive pooling, so any input size works.
* Addition needs C1 == C2; when they differ F1 is first projected by a 1x1 conv + BN (not in the
  paper, which writes F1 + F2 without saying how the channel counts match).

The squeeze-excitation itself is torchvision's `SqueezeExcitation` (ReLU, then sigmoid): exactly
the paper's equation, biases included.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.ops.misc import SqueezeExcitation

from lxn.layers._utils import make_divisible

__all__ = ["CrossLayerFeatureFusion"]


class CrossLayerFeatureFusion(nn.Module):
    """Fuse an early map F1 into a deep map F2, then recalibrate the fused channels with SE.

    Args:
        early_channels: C1, channels of the early map F1.
        deep_channels: C2, channels of the deep map F2.
        mode: "concat" (the paper's first option; output has C1 + C2 channels) or "add"
            (output has C2 channels).
        reduction: SE squeeze ratio r, so W1 maps C to C / r.
        early: how F1 reaches F2's size: "avgpool", "space_to_depth" or "conv" (module notes).
        ratio: F1's size over F2's (4 for the default taps), for the two learned early paths.
    """

    def __init__(
        self,
        early_channels: int,
        deep_channels: int,
        mode: Literal["concat", "add"] = "concat",
        reduction: int = 4,
        early: Literal["avgpool", "space_to_depth", "conv"] = "avgpool",
        ratio: int = 4,
    ) -> None:
        super().__init__()
        if mode not in ("concat", "add"):
            raise ValueError(f"CLFF mode must be 'concat' or 'add', got {mode!r}")
        if early not in ("avgpool", "space_to_depth", "conv") or ratio < 1:
            raise ValueError(f"CLFF early must be 'avgpool', 'space_to_depth' or 'conv' (ratio >= 1), got {early!r}")
        self.mode, self.early, self.ratio = mode, early, ratio
        self.reduce: nn.Module = nn.Identity()
        if early == "space_to_depth":
            self.reduce = nn.Sequential(nn.PixelUnshuffle(ratio), nn.Conv2d(early_channels * ratio**2, early_channels, 1,
                                                                            bias=False), nn.BatchNorm2d(early_channels))
        elif early == "conv":
            self.reduce = nn.Sequential(nn.Conv2d(early_channels, early_channels, ratio, stride=ratio, bias=False),
                                        nn.BatchNorm2d(early_channels))
        self.project: nn.Module = nn.Identity()
        if mode == "add" and early_channels != deep_channels:
            self.project = nn.Sequential(
                nn.Conv2d(early_channels, deep_channels, 1, bias=False),
                nn.BatchNorm2d(deep_channels),
            )
        self.out_channels = early_channels + deep_channels if mode == "concat" else deep_channels
        self.se = SqueezeExcitation(self.out_channels, make_divisible(self.out_channels / reduction))

    def bring_down(self, early: torch.Tensor, size: torch.Size) -> torch.Tensor:
        """F1 at F2's spatial `size`, by the configured early path."""
        if self.early == "avgpool":
            return F.adaptive_avg_pool2d(early, size)
        exact = (size[0] * self.ratio, size[1] * self.ratio)
        if tuple(early.shape[-2:]) != exact:
            early = F.adaptive_avg_pool2d(early, exact)
        return self.reduce(early)

    def fuse(self, early: torch.Tensor, deep: torch.Tensor) -> torch.Tensor:
        """F_fusion: F1 brought to F2's spatial size, then concatenated with or added to F2."""
        early = self.project(self.bring_down(early, deep.shape[-2:]))
        if self.mode == "concat":
            return torch.cat([early, deep], dim=1)
        return early + deep

    def channel_gate(self, fused: torch.Tensor) -> torch.Tensor:
        """a = sigmoid(W2 ReLU(W1 GAP(F_fusion) + b1) + b2), shape (B, C, 1, 1)."""
        return self.se._scale(fused)

    def forward(self, early: torch.Tensor, deep: torch.Tensor) -> torch.Tensor:
        return self.se(self.fuse(early, deep))
