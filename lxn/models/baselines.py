"""Baselines trained and scored by the same lxn pipeline as LogoXpertNet: torchvision's own models,
with the interface lxn expects (`forward_features`, `forward_head(pre_logits=...)`,
`reset_classifier`, `embedding_dim`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import torchvision
from torch import nn

from lxn.models._registry import register_model

__all__ = ["TorchvisionMobileNetV3", "mobilenet_v3_large"]


class TorchvisionMobileNetV3(nn.Module):
    """`torchvision.models.mobilenet_v3_large` itself (its init, BatchNorm eps, head), wrapped."""

    def __init__(self, num_classes: int, width_mult: float = 1.0, bn_momentum: float | None = None) -> None:
        super().__init__()
        self.net = torchvision.models.mobilenet_v3_large(num_classes=num_classes, width_mult=width_mult)
        if bn_momentum is not None:
            for m in self.net.modules():
                if isinstance(m, nn.BatchNorm2d):
                    m.momentum = bn_momentum
        self.embedding_dim = self.net.classifier[0].out_features
        self.num_classes = num_classes

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.net.features(x)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = torch.flatten(self.net.avgpool(x), 1)
        x = self.net.classifier[:-1](x)
        return x if pre_logits else self.net.classifier[-1](x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))

    def get_classifier(self) -> nn.Linear:
        return self.net.classifier[-1]

    def reset_classifier(self, num_classes: int) -> None:
        self.net.classifier[-1] = nn.Linear(self.embedding_dim, num_classes)
        nn.init.normal_(self.net.classifier[-1].weight, 0, 0.01)
        nn.init.zeros_(self.net.classifier[-1].bias)
        self.num_classes = num_classes


@register_model
def mobilenet_v3_large(*, num_classes: int = 194, width_mult: float = 1.0, bn_momentum: float | None = None,
                       backbone_weights: str | Path | None = None, **_: Any) -> TorchvisionMobileNetV3:
    """The baseline: torchvision's mobilenet_v3_large (LogoXpertNet's settings are ignored).
    `backbone_weights`: a torchvision state dict, loaded where names and shapes match."""
    model = TorchvisionMobileNetV3(num_classes, width_mult, bn_momentum)
    if backbone_weights is not None:
        state = torch.load(Path(backbone_weights), map_location="cpu", weights_only=True)
        own = model.net.state_dict()
        model.net.load_state_dict({k: v for k, v in state.items() if k in own and own[k].shape == v.shape}, strict=False)
    return model
