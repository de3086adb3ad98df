"""The one definition of preprocessing, shared by training, evaluation and the nightly scan.

An image goes through two stages:

1. `Preset.resize` on the CPU, per image, where the bytes were decoded (a Ray Data map stage):
   an RGB uint8 array of any size -> `image_size` x `image_size` uint8 (the paper resizes to
   224 x 224 without keeping the aspect ratio; PIL's resampling is antialiased on downscale).
2. `Preprocess` on the model's device, per batch: uint8 NHWC -> float NCHW in [0, 1] ->
   Gaussian denoising (the paper's Gaussian filter; sigma 0 turns it off) -> per-dataset
   mean/std normalisation. Training inserts `augment` (random rotation, horizontal flip and
   brightness, each with p = 0.5, as in the paper) between the [0, 1] conversion and the
   denoising.

`Preprocess` is an `nn.Module` with its constants as buffers, so the registered model
(`InferenceModel`) carries its own normalisation inside the exported graph: a consumer feeds
uint8 images at the preset size and gets logits, and cannot normalise differently from training.
The preset itself (`to_dict`) travels in the model's metadata for stage 1.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

__all__ = ["Preset", "Preprocess", "InferenceModel", "augment", "to_float_nchw"]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclasses.dataclass(frozen=True)
class Preset:
    """Preprocessing settings; `to_dict`/`from_dict` make it JSON for checkpoints and models.

    mean/std default to ImageNet's; training replaces them with the dataset's own from its
    manifest (the paper normalises per dataset).
    """

    image_size: int = 224
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    denoise_sigma: float = 0.5
    # training-time augmentation (the paper: rotation, horizontal flip, brightness, each p = 0.5)
    rotation_degrees: float = 15.0
    rotation_p: float = 0.5
    hflip_p: float = 0.5
    brightness: float = 0.2
    brightness_p: float = 0.5

    def __post_init__(self) -> None:
        if not 32 <= self.image_size <= 1024:
            raise ValueError(f"image_size must be within 32..1024, got {self.image_size}")
        if len(self.mean) != 3 or len(self.std) != 3 or min(self.std) <= 0:
            raise ValueError(f"mean and std need three values each, std positive; got {self.mean}, {self.std}")
        object.__setattr__(self, "mean", tuple(float(v) for v in self.mean))
        object.__setattr__(self, "std", tuple(float(v) for v in self.std))

    def resize(self, pixels: np.ndarray) -> np.ndarray:
        """RGB uint8 (H, W, 3) -> (image_size, image_size, 3) uint8."""
        if pixels.shape[:2] == (self.image_size, self.image_size):
            return np.ascontiguousarray(pixels)
        image = Image.fromarray(pixels).resize((self.image_size, self.image_size), Image.Resampling.BILINEAR)
        return np.asarray(image)

    def to_dict(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Preset":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown preset field(s) {unknown}; the model was saved by a newer lxn?")
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in data.items()})


def to_float_nchw(images: torch.Tensor) -> torch.Tensor:
    """uint8 (B, H, W, 3) -> float32 (B, 3, H, W) in [0, 1], channels_last in memory (free)."""
    return images.permute(0, 3, 1, 2).float().div(255.0)


def _gaussian_kernel(sigma: float) -> torch.Tensor:
    radius = max(1, math.ceil(2 * sigma))
    offsets = torch.arange(-radius, radius + 1, dtype=torch.float64)
    kernel = torch.exp(-(offsets**2) / (2 * sigma**2))
    kernel = kernel / kernel.sum()
    return torch.outer(kernel, kernel).float()


class Preprocess(nn.Module):
    """uint8 NHWC images -> normalised float NCHW (denoised, mean/std), on any device."""

    def __init__(self, preset: Preset) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(preset.mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(preset.std).view(1, 3, 1, 1), persistent=False)
        self.blur_padding = 0
        if preset.denoise_sigma > 0:
            kernel = _gaussian_kernel(preset.denoise_sigma)
            self.blur_padding = kernel.shape[-1] // 2
            self.register_buffer("blur", kernel.expand(3, 1, *kernel.shape).clone(), persistent=False)

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        """float NCHW in [0, 1] -> denoised and normalised."""
        if self.blur_padding:
            p = self.blur_padding
            x = F.conv2d(F.pad(x, (p, p, p, p), mode="reflect"), self.blur.to(x.dtype), groups=3)
        return (x - self.mean) / self.std

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.normalize(to_float_nchw(images))


class InferenceModel(nn.Module):
    """What the registry holds: uint8 (B, S, S, 3) images at the preset size -> logits (B, K)."""

    def __init__(self, model: nn.Module, preset: Preset) -> None:
        super().__init__()
        self.preprocess = Preprocess(preset)
        self.model = model

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.model(self.preprocess(images))


def augment(x: torch.Tensor, preset: Preset, generator: torch.Generator) -> torch.Tensor:
    """Per-image random rotation, horizontal flip and brightness on float NCHW in [0, 1].

    Batched on the model's device; every random draw comes from `generator` (on the CPU), so a
    seeded generator and the same batches give the same result on any device. Rotation samples
    the image with reflection at the borders, so no black corners become a class cue.
    """
    n = x.shape[0]
    draws = torch.rand(n, 6, generator=generator).to(x.device)
    if preset.rotation_p > 0 and preset.rotation_degrees > 0:
        angle = (draws[:, 0] * 2 - 1) * math.radians(preset.rotation_degrees)
        angle = torch.where(draws[:, 1] < preset.rotation_p, angle, torch.zeros_like(angle))
        cos, sin = torch.cos(angle), torch.sin(angle)
        zero = torch.zeros_like(cos)
        theta = torch.stack([torch.stack([cos, -sin, zero], 1), torch.stack([sin, cos, zero], 1)], 1)
        grid = F.affine_grid(theta.to(x.dtype), list(x.shape), align_corners=False)
        x = F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)
    if preset.hflip_p > 0:
        flip = (draws[:, 2] < preset.hflip_p).view(n, 1, 1, 1)
        x = torch.where(flip, x.flip(-1), x)
    if preset.brightness_p > 0 and preset.brightness > 0:
        factor = 1 + (draws[:, 3] * 2 - 1) * preset.brightness
        factor = torch.where(draws[:, 4] < preset.brightness_p, factor, torch.ones_like(factor))
        x = (x * factor.view(n, 1, 1, 1).to(x.dtype)).clamp(0, 1)
    return x
