"""Stand-in classifiers with a known answer, registered like any lxn model, for scan tests."""

from __future__ import annotations

import torch
from torch import nn

from lxn.presets import Preset

__all__ = ["RedSpotter", "REDSPOT_CLASSES", "REDSPOT_PRESET", "register_redspot"]

REDSPOT_CLASSES = ["acme", "globex", "no-logo"]
REDSPOT_PRESET = Preset(image_size=64, mean=(0.5,) * 3, std=(0.5,) * 3, denoise_sigma=0)


class RedSpotter(nn.Module):
    """A classifier with a known answer: 'acme' in proportion to the red area, else 'no-logo'.

    Classes (acme, globex, no-logo). Input is normalised with mean = std = 0.5, so in [-1, 1].
    With a red fraction f the logits are (40 f, 0, 2): no red -> no-logo (p 0.79); 1/9 of the
    frame red -> acme (p 0.91); 1/36 of the frame -> no-logo still (p 0.65).
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        r, g, b = x[:, 0], x[:, 1], x[:, 2]
        red = torch.sigmoid(20 * (r - 0.5)) * torch.sigmoid(20 * (-0.5 - g)) * torch.sigmoid(20 * (-0.5 - b))
        fraction = red.mean(dim=(1, 2))
        return torch.stack([40 * fraction, torch.zeros_like(fraction), torch.full_like(fraction, 2.0)], dim=1)


def register_redspot(tracker, name: str = "redspot", alias: str = "champion"):
    """Log and register a RedSpotter under `name@alias` in `tracker`'s store; returns its ModelRef."""
    from lxn.tracking import log_model

    return log_model(tracker, RedSpotter().eval(), preset=REDSPOT_PRESET, class_names=REDSPOT_CLASSES,
                     model_config={"name": "redspotter"}, registered_model=name, alias=alias)
