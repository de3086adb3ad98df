"""Hierarchical Squeeze-Excitation Spatial Attention Block (HSE-SAB), LogoXpertNet Algorithm 2.

    F_pooled = [GAP(F); GMP(F); GMinP(F); LAP_{h x w}(F)]        (flattened and concatenated)
    F_excite = ReLU(W2 ReLU(W1 F_pooled));   F_c = F * sigmoid(F_excite)
    M_s = sigmoid(conv1x1(F));               F_out = F_c * M_s

Notes on the paper:

* The channel gate is implemented as written by default (`gate="paper"`): a sigmoid *after* a
  ReLU, so it is always in [0.5, 1] and can halve a channel but never suppress it. The usual SE
  form, without the second ReLU (gate in (0, 1)), is `gate="sigmoid"`.
* The equations list average, max and local average pooling; the overview and Table 4 also name
  min pooling. All four are on by default; `poolings` selects any subset.
* Local average pooling is adaptive to an h x w grid (default 2 x 2), so h < H, w < W holds for
  every input size the model accepts (the deep map is 3 x 3 at 96 px).
* W1, W2 are fully connected layers on the flattened descriptor without biases, as the equation
  writes them. The spatial map M_s is computed from the input F (not F_c), as the paper says.
"""

from __future__ import annotations

from typing import Literal, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from lxn.layers._utils import make_divisible

__all__ = ["HierarchicalSESpatialAttention"]

_POOLINGS = ("avg", "max", "min", "local")


class HierarchicalSESpatialAttention(nn.Module):
    """HSE-SAB on a C x H x W map; output has the input's shape.

    Args:
        channels: C.
        reduction: W1 maps the pooled descriptor to C / reduction units.
        local_size: (h, w) grid of the local average pooling (an int means h = w).
        poolings: which of "avg", "max", "min", "local" build F_pooled.
        gate: "paper" (sigmoid after ReLU, as written) or "sigmoid" (standard SE gate).
    """

    def __init__(
        self,
        channels: int,
        reduction: int = 8,
        local_size: int | tuple[int, int] = 2,
        poolings: Sequence[str] = _POOLINGS,
        gate: Literal["paper", "sigmoid"] = "paper",
    ) -> None:
        super().__init__()
        unknown = set(poolings) - set(_POOLINGS)
        if unknown or not poolings:
            raise ValueError(f"poolings must be a non-empty subset of {_POOLINGS}, got {poolings}")
        if gate not in ("paper", "sigmoid"):
            raise ValueError(f"gate must be 'paper' or 'sigmoid', got {gate!r}")
        self.poolings = tuple(p for p in _POOLINGS if p in poolings)
        self.local_size = (local_size, local_size) if isinstance(local_size, int) else tuple(local_size)
        self.gate = gate
        descriptors = sum(1 for p in self.poolings if p != "local")
        if "local" in self.poolings:
            descriptors += self.local_size[0] * self.local_size[1]
        hidden = make_divisible(channels / reduction)
        self.fc1 = nn.Linear(descriptors * channels, hidden, bias=False)  # W1
        self.fc2 = nn.Linear(hidden, channels, bias=False)  # W2
        self.spatial = nn.Conv2d(channels, 1, kernel_size=1)  # f^{1x1}

    def pooled(self, x: torch.Tensor) -> torch.Tensor:
        """F_pooled, shape (B, descriptors * C)."""
        parts = []
        for kind in self.poolings:
            if kind == "avg":
                parts.append(x.mean(dim=(2, 3)))
            elif kind == "max":
                parts.append(x.amax(dim=(2, 3)))
            elif kind == "min":
                parts.append(x.amin(dim=(2, 3)))
            else:
                parts.append(F.adaptive_avg_pool2d(x, self.local_size).flatten(1))
        return torch.cat(parts, dim=1)

    def channel_gate(self, x: torch.Tensor) -> torch.Tensor:
        """sigma(F_excite), shape (B, C, 1, 1)."""
        excite = self.fc2(F.relu(self.fc1(self.pooled(x))))
        if self.gate == "paper":
            excite = F.relu(excite)
        return torch.sigmoid(excite)[:, :, None, None]

    def spatial_gate(self, x: torch.Tensor) -> torch.Tensor:
        """M_s = sigmoid(conv1x1(F)), shape (B, 1, H, W)."""
        return torch.sigmoid(self.spatial(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.channel_gate(x) * self.spatial_gate(x)
