"""Stand-in classifiers with a known answer, registered like any lxn model, for scan tests."""

from __future__ import annotations

import torch
from torch import nn

from lxn.presets import Preset

__all__ = ["RedSpotter", "BlueSpotter", "TwoSpotter", "SlowTwoSpotter", "REDSPOT_CLASSES", "REDSPOT_PRESET",
           "register_redspot", "register_spotter"]

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


def _blue_fraction(x: torch.Tensor) -> torch.Tensor:
    r, g, b = x[:, 0], x[:, 1], x[:, 2]
    blue = torch.sigmoid(20 * (-0.5 - r)) * torch.sigmoid(20 * (-0.5 - g)) * torch.sigmoid(20 * (b - 0.5))
    return blue.mean(dim=(1, 2))


class BlueSpotter(nn.Module):
    """Like RedSpotter, for blue and 'globex': it never says 'acme'."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        fraction = _blue_fraction(x)
        return torch.stack([torch.zeros_like(fraction), 40 * fraction, torch.full_like(fraction, 2.0)], dim=1)


class TwoSpotter(nn.Module):
    """Red -> 'acme' and blue -> 'globex': RedSpotter's answers, plus globex."""

    def __init__(self) -> None:
        super().__init__()
        self.red = RedSpotter()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        red = self.red(x)
        return torch.stack([red[:, 0], 40 * _blue_fraction(x), red[:, 2]], dim=1)


class SlowTwoSpotter(TwoSpotter):
    """TwoSpotter's answers at a much higher cost: a stack of convolutions whose output is
    scaled by zero (a constructed latency growth)."""

    def __init__(self) -> None:
        super().__init__()
        self.burden = nn.Sequential(nn.Conv2d(3, 64, 3, padding=1),
                                    *[nn.Conv2d(64, 64, 3, padding=1) for _ in range(6)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x) + 0.0 * self.burden(x).mean(dim=(1, 2, 3)).unsqueeze(1)


def register_spotter(tracker, module: nn.Module, name: str, alias: str | None = None, tags: dict | None = None):
    """Log and register any of the spotters (classes REDSPOT_CLASSES) under `name`; returns its ModelRef."""
    from lxn.tracking import log_model

    return log_model(tracker, module.eval(), preset=REDSPOT_PRESET, class_names=REDSPOT_CLASSES,
                     model_config={"name": type(module).__name__.lower()}, registered_model=name, alias=alias,
                     tags=tags)


def register_redspot(tracker, name: str = "redspot", alias: str = "champion"):
    """Log and register a RedSpotter under `name@alias` in `tracker`'s store; returns its ModelRef."""
    from lxn.tracking import log_model

    return log_model(tracker, RedSpotter().eval(), preset=REDSPOT_PRESET, class_names=REDSPOT_CLASSES,
                     model_config={"name": "redspotter"}, registered_model=name, alias=alias)
