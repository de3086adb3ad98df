"""Stage 2 of preprocessing (stages 0 and 1, and the preset, are `lxn.presets`'), on the model's
device, per batch: uint8 NHWC -> float NCHW in [0, 1] -> Gaussian denoising (the paper's
Gaussian filter; sigma 0 turns it off) -> per-dataset mean/std normalisation. Training inserts
`augment` (random rotation, horizontal flip and brightness, each with p = 0.5, as in the paper;
lxn's recipe adds resized crops and colour jitter) between the [0, 1] conversion and the
denoising.

`Preprocess` is an `nn.Module` with its constants as buffers, so the registered model
(`InferenceModel`) carries its own normalisation inside the exported graph: a consumer feeds
uint8 images at the preset size and gets logits, and cannot normalise differently from training.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from lxn.presets import Preset

__all__ = ["Preprocess", "InferenceModel", "augment", "to_float_nchw"]


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
    """Per-image random resized crop and rotation (one affine resampling), horizontal flip,
    brightness and colour jitter, on float NCHW in [0, 1].

    Batched on the model's device; every random draw comes from `generator` (on the CPU), so a
    seeded generator and the same batches give the same result on any device. Sampling reflects
    at the borders, so no black corners become a class cue. The crop keeps an area fraction in
    [crop_scale_min, 1] with an aspect ratio in [3/4, 4/3], anywhere in the image (logos appear
    at every scale and position); colour jitter scales contrast and saturation and turns the hue.
    """
    n = x.shape[0]
    draws = torch.rand(n, 13, generator=generator).to(x.device)
    crop = preset.crop_scale_min < 1.0
    rotate = preset.rotation_p > 0 and preset.rotation_degrees > 0
    if crop or rotate:
        angle = torch.zeros(n, device=x.device)
        if rotate:
            angle = (draws[:, 0] * 2 - 1) * math.radians(preset.rotation_degrees)
            angle = torch.where(draws[:, 1] < preset.rotation_p, angle, torch.zeros_like(angle))
        sx = sy = torch.ones(n, device=x.device)
        tx = ty = torch.zeros(n, device=x.device)
        if crop:
            area = preset.crop_scale_min + (1 - preset.crop_scale_min) * draws[:, 5]
            ratio = torch.exp((draws[:, 6] * 2 - 1) * math.log(4 / 3))
            sx, sy = torch.sqrt(area * ratio).clamp(max=1.0), torch.sqrt(area / ratio).clamp(max=1.0)
            tx, ty = (draws[:, 7] * 2 - 1) * (1 - sx), (draws[:, 8] * 2 - 1) * (1 - sy)  # inside the image
        cos, sin = torch.cos(angle), torch.sin(angle)
        # input position = diag(sx, sy) R(angle) output position + (tx, ty), in [-1, 1] coordinates
        theta = torch.stack([torch.stack([sx * cos, -sx * sin, tx], 1), torch.stack([sy * sin, sy * cos, ty], 1)], 1)
        grid = F.affine_grid(theta.to(x.dtype), list(x.shape), align_corners=False)
        x = F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)
    if preset.hflip_p > 0:
        flip = (draws[:, 2] < preset.hflip_p).view(n, 1, 1, 1)
        x = torch.where(flip, x.flip(-1), x)
    if preset.brightness_p > 0 and preset.brightness > 0:
        factor = 1 + (draws[:, 3] * 2 - 1) * preset.brightness
        factor = torch.where(draws[:, 4] < preset.brightness_p, factor, torch.ones_like(factor))
        x = (x * factor.view(n, 1, 1, 1).to(x.dtype)).clamp(0, 1)
    if preset.color_p > 0 and preset.color_jitter > 0:
        x = _color_jitter(x, preset.color_jitter, draws[:, 9:12], draws[:, 12] < preset.color_p)
    return x


# RGB -> YIQ and back: the hue turns as a rotation of the (I, Q) chroma plane.
_YIQ = torch.tensor([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]])
_RGB = torch.linalg.inv(_YIQ)


def _color_jitter(x: torch.Tensor, strength: float, draws: torch.Tensor, apply: torch.Tensor) -> torch.Tensor:
    n = x.shape[0]
    contrast = 1 + (draws[:, 0] * 2 - 1) * strength
    saturation = 1 + (draws[:, 1] * 2 - 1) * strength
    hue = (draws[:, 2] * 2 - 1) * strength / 10 * 2 * math.pi
    one = torch.ones_like(contrast)
    contrast, saturation = torch.where(apply, contrast, one), torch.where(apply, saturation, one)
    hue = torch.where(apply, hue, torch.zeros_like(hue))
    yiq = torch.einsum("ij,njhw->nihw", _YIQ.to(x.device, x.dtype), x)
    luma = yiq[:, :1]
    mean = luma.mean(dim=(2, 3), keepdim=True)
    luma = (luma - mean) * contrast.view(n, 1, 1, 1).to(x.dtype) + mean
    cos, sin = torch.cos(hue).view(n, 1, 1, 1).to(x.dtype), torch.sin(hue).view(n, 1, 1, 1).to(x.dtype)
    i, q = yiq[:, 1:2], yiq[:, 2:3]
    scale = saturation.view(n, 1, 1, 1).to(x.dtype)
    i, q = scale * (cos * i - sin * q), scale * (sin * i + cos * q)
    rgb = torch.einsum("ij,njhw->nihw", _RGB.to(x.device, x.dtype), torch.cat([luma, i, q], 1))
    return rgb.clamp(0, 1)
