"""Training recipes: every ingredient of how a model is trained, by name, resolved once.

    paper  the LogoXpertNet paper: Adam (lr 1e-3, L2 5e-4), step decay every 10 epochs, random
           rotation (15 degrees), horizontal flip and brightness (0.2), each with p = 0.5,
           Gaussian denoising (sigma 0.5), 150 epochs. The paper gives no decay factor; it is
           chosen so the learning rate ends at 1% of its start (x0.72 per step over 150 epochs),
           where a factor of 0.5 would leave it at 6e-8 for the last third of the run.
    lxn    the default, measured on real brand marks (README, `benchmark.py accuracy`): AdamW,
           linear warm-up then cosine decay, random resized crops (logos appear at every scale),
           colour jitter, label smoothing, weight EMA, no denoising blur, no mirror images.
    plain  a plain PyTorch script's textbook settings, the reference to beat: AdamW (lr 3e-3 at
           the peak, decay 5e-4), a one-cycle schedule (torch's OneCycleLR defaults: up from 1/25
           of the peak over the first 30% of the run, then down to 1/25e4 of it, both halves
           cosine), random resized crops of 60-100% of the area, brightness and colour jitter 0.3
           on every image, label smoothing 0.1; no EMA, rotation, mirror images or blur.

`resolve(config)` starts from the named recipe and replaces each ingredient that the config
sets explicitly (every one is a `jobs/train.py` flag); the result is what the run logs and what
the registered model's metadata records.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Literal

__all__ = ["Recipe", "RECIPES", "resolve"]


@dataclasses.dataclass(frozen=True)
class Recipe:
    name: str
    optimizer: Literal["adam", "adamw"]
    lr: float
    weight_decay: float                 # Adam: an L2 penalty in the gradient; AdamW: decoupled
    schedule: Literal["step", "cosine", "onecycle"]
    warmup_epochs: float                # linear warm-up from 1% of lr (onecycle: its own rise, so 0)
    lr_step_epochs: int                 # step: decay every this many epochs
    lr_final_fraction: float            # the lr at the end, as a fraction of lr (step: after the last decay)
    label_smoothing: float
    ema_decay: float                    # 0: off; else evaluate and register an exponential moving average
    rotation_degrees: float
    augment_p: float                    # probability of each of rotation, flip, brightness
    hflip: bool
    brightness: float
    crop_scale_min: float               # random resized crop: smallest area kept (1: no crop)
    color_jitter: float                 # contrast and saturation up to +-this, hue up to +-this / 10
    denoise_sigma: float                # Gaussian blur before normalisation, in training and inference
    onecycle_peak: float = 0.3          # onecycle: where the peak is, as a fraction of the run

    def __post_init__(self) -> None:
        checks = [
            (self.lr > 0, "lr must be positive"),
            (self.weight_decay >= 0, "weight_decay must be >= 0"),
            (self.warmup_epochs >= 0 and self.lr_step_epochs >= 1, "warmup_epochs >= 0 and lr_step_epochs >= 1"),
            (0 < self.lr_final_fraction <= 1, "lr_final_fraction must be within (0, 1]"),
            (0 <= self.label_smoothing < 1, "label_smoothing must be within [0, 1)"),
            (0 <= self.ema_decay < 1, "ema_decay must be within [0, 1)"),
            (0 <= self.augment_p <= 1, "augment_p must be within [0, 1]"),
            (0 < self.crop_scale_min <= 1, "crop_scale_min must be within (0, 1]"),
            (0 <= self.color_jitter < 1 and 0 <= self.brightness < 1, "color_jitter and brightness within [0, 1)"),
            (self.denoise_sigma >= 0 and self.rotation_degrees >= 0, "denoise_sigma and rotation_degrees >= 0"),
            (0 < self.onecycle_peak < 1, "onecycle_peak must be within (0, 1)"),
            (self.schedule != "onecycle" or not self.warmup_epochs,
             "the onecycle schedule rises by itself (onecycle_peak): warmup_epochs must be 0"),
        ]
        problems = [message for ok, message in checks if not ok]
        if problems:
            raise ValueError(f"recipe {self.name}: " + "; ".join(problems))

    def step_gamma(self, epochs: int) -> float:
        """The step-decay factor that brings lr to `lr_final_fraction` after the run's last step."""
        steps = max(1, math.ceil(epochs / self.lr_step_epochs) - 1)
        return self.lr_final_fraction ** (1.0 / steps)

    def lr_factor(self, epoch: float, epochs: int) -> float:
        """The learning rate at (fractional) `epoch` of `epochs`, as a fraction of `lr`."""
        if self.warmup_epochs and epoch < self.warmup_epochs:
            return 0.01 + 0.99 * epoch / self.warmup_epochs
        if self.schedule == "step":
            return self.step_gamma(epochs) ** math.floor(epoch / self.lr_step_epochs)
        if self.schedule == "onecycle":
            peak = self.onecycle_peak * epochs
            if epoch < peak:
                return _cosine(ONECYCLE_START, 1.0, epoch / peak)
            return _cosine(1.0, self.lr_final_fraction, (epoch - peak) / max(epochs - peak, 1e-9))
        span = max(epochs - self.warmup_epochs, 1e-9)
        return _cosine(1.0, self.lr_final_fraction, (epoch - self.warmup_epochs) / span)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def shaping(self) -> dict[str, Any]:
        """`to_dict` less the ingredient added with the onecycle schedule where the schedule is
        another: it shapes nothing there, and runs named before it existed keep their names."""
        values = self.to_dict()
        if self.schedule != "onecycle":
            values.pop("onecycle_peak")
        return values


ONECYCLE_START = 1 / 25  # torch.optim.lr_scheduler.OneCycleLR's div_factor


def _cosine(start: float, end: float, t: float) -> float:
    """Half a cosine from `start` (t = 0) to `end` (t = 1), flat outside."""
    t = min(1.0, max(0.0, t))
    return end + (start - end) * 0.5 * (1 + math.cos(math.pi * t))


RECIPES: dict[str, Recipe] = {
    "paper": Recipe(name="paper", optimizer="adam", lr=1e-3, weight_decay=5e-4, schedule="step", warmup_epochs=0,
                    lr_step_epochs=10, lr_final_fraction=0.01, label_smoothing=0.0, ema_decay=0.0,
                    rotation_degrees=15.0, augment_p=0.5, hflip=True, brightness=0.2, crop_scale_min=1.0,
                    color_jitter=0.0, denoise_sigma=0.5),
    "lxn": Recipe(name="lxn", optimizer="adamw", lr=2e-3, weight_decay=0.05, schedule="cosine", warmup_epochs=2,
                  lr_step_epochs=10, lr_final_fraction=0.01, label_smoothing=0.1, ema_decay=0.998,
                  rotation_degrees=10.0, augment_p=0.5, hflip=False, brightness=0.3, crop_scale_min=0.35,
                  color_jitter=0.3, denoise_sigma=0.0),
    "plain": Recipe(name="plain", optimizer="adamw", lr=3e-3, weight_decay=5e-4, schedule="onecycle", warmup_epochs=0,
                    lr_step_epochs=10, lr_final_fraction=ONECYCLE_START / 1e4, label_smoothing=0.1, ema_decay=0.0,
                    rotation_degrees=0.0, augment_p=1.0, hflip=False, brightness=0.3, crop_scale_min=0.6,
                    color_jitter=0.3, denoise_sigma=0.0, onecycle_peak=0.3),
}

INGREDIENTS = tuple(f.name for f in dataclasses.fields(Recipe) if f.name != "name")


def resolve(config: Any) -> Recipe:
    """The recipe `config.recipe` with every ingredient `config` sets (not None) replaced."""
    if config.recipe not in RECIPES:
        raise ValueError(f"unknown recipe {config.recipe!r}; known: {', '.join(RECIPES)}")
    overrides = {name: getattr(config, name) for name in INGREDIENTS if getattr(config, name, None) is not None}
    return dataclasses.replace(RECIPES[config.recipe], **overrides)
