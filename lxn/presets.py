"""The one definition of preprocessing, shared by prepare, training, evaluation and the scan.

An image goes through three stages:

0. `decode` (bytes -> RGB pixels): the one path from the bytes of an original or of a stored
   copy to pixels, used by the scan, evaluation, training and prepare alike: `lxn.images`'s safe
   decoder, with JPEGs decoded at the smallest DCT scale that still covers what the preset needs.
   Prepare keeps a copy of each image made by `store_copy`: its *shorter* side brought down to
   `store_side`, so a 2400 x 300 banner is stored 2048 x 256 rather than 320 x 40, and training
   at any image size up to `store_side` sees what the scan sees (PSNR >= 34 dB between the two
   paths for square, 4:1, 1:4 and tiny originals in tests/unit/test_decode_parity.py).
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
from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

__all__ = ["Preset", "Preprocess", "InferenceModel", "augment", "to_float_nchw", "decode", "decode_side",
           "model_input", "model_pixels", "store_copy", "stored_size", "STORE_MAX_ASPECT"]

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
    # training-time augmentation (the paper: rotation, horizontal flip, brightness, each p = 0.5;
    # lxn's recipe adds random resized crops and colour jitter, see lxn.train.recipes)
    rotation_degrees: float = 15.0
    rotation_p: float = 0.5
    hflip_p: float = 0.5
    brightness: float = 0.2
    brightness_p: float = 0.5
    crop_scale_min: float = 1.0       # random resized crop: area kept in [crop_scale_min, 1]; 1: off
    color_jitter: float = 0.0         # contrast and saturation factors in 1 +- j, hue shift +- j / 10 turn
    color_p: float = 0.5

    def __post_init__(self) -> None:
        if not 32 <= self.image_size <= 1024:
            raise ValueError(f"image_size must be within 32..1024, got {self.image_size}")
        if not 0 < self.crop_scale_min <= 1 or not 0 <= self.color_jitter < 1:
            raise ValueError(f"crop_scale_min must be within (0, 1] and color_jitter within [0, 1), got "
                             f"{self.crop_scale_min}, {self.color_jitter}")
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


# ------------------------------------------------------------------------------------------
# Bytes -> pixels: the one path


def decode_side(image_size: int, grids: Sequence[int] = ()) -> int:
    """The shorter side to decode at, so that the model (and, with tiling, the smallest tile: a
    grid-g tile spans 2 / (g + 1) of the side) gets at least `image_size` pixels."""
    if not grids:
        return image_size
    return math.ceil(image_size * (max(grids) + 1) / 2)


def decode(data: bytes | None, image_size: int, *, grids: Sequence[int] = (), **limits: Any):
    """Bytes of an original or a stored copy -> `(DecodedImage, None, None)`, or `(None, kind,
    reason)` for bytes that are not a usable image (see `lxn.images.safe_decode`; `limits` are
    its max_pixels / max_bytes). JPEGs decode at the smallest DCT scale covering `decode_side`."""
    from lxn.images import safe_decode

    return safe_decode(data, target_size=decode_side(image_size, grids), **limits)


def model_input(data: bytes, preset: "Preset", **limits: Any) -> tuple[np.ndarray, tuple[int, int]]:
    """Bytes -> (the (image_size, image_size, 3) uint8 array the model takes, the image's
    displayed (width, height)): what a box in the image's pixels is scaled from. A bad image
    raises `lxn.images.ImageDecodeError`."""
    from lxn.images import ImageDecodeError

    image, kind, reason = decode(data, preset.image_size, **limits)
    if image is None:
        raise ImageDecodeError(kind, reason)
    return preset.resize(image.pixels), (image.width, image.height)


def model_pixels(data: bytes, preset: "Preset", **limits: Any) -> np.ndarray:
    """Bytes -> the (image_size, image_size, 3) uint8 array the model takes (`model_input`)."""
    return model_input(data, preset, **limits)[0]


# A stored copy's longer side is at most this many times `store_side` (a 30:1 strip would
# otherwise be stored 7680 px wide); beyond that aspect the shorter side falls below it.
STORE_MAX_ASPECT = 8


def stored_size(width: int, height: int, store_side: int) -> tuple[int, int]:
    """(width, height) of the stored copy of a `width` x `height` image: the shorter side brought
    down to `store_side` (never enlarged), the longer at most STORE_MAX_ASPECT x `store_side`."""
    scale = min(1.0, store_side / min(width, height), STORE_MAX_ASPECT * store_side / max(width, height))
    return (width, height) if scale >= 1.0 else (max(1, round(width * scale)), max(1, round(height * scale)))


def store_copy(pixels: np.ndarray, store_side: int, *, quality: int = 95) -> bytes:
    """The copy prepare stores: JPEG at `quality`, at `stored_size`, aspect kept. Lanczos with
    `reducing_gap=3`, as sharp as a full Lanczos and several times faster."""
    from lxn.images import encode_jpeg

    height, width = pixels.shape[:2]
    size = stored_size(width, height, store_side)
    return encode_jpeg(pixels, size=None if size == (width, height) else size, quality=quality)


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
