"""The one definition of preprocessing, shared by prepare, training, evaluation and the scan:
the preset and the CPU stages (no torch here: Ray Data's decode tasks import this module, and
every worker process that does not need torch saves its import). The device stage is
`lxn.preprocess`.

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
2. `lxn.preprocess.Preprocess` on the model's device, per batch: uint8 NHWC -> float NCHW in
   [0, 1] -> Gaussian denoising -> per-dataset mean/std normalisation, inside the exported graph.

The preset itself (`to_dict`) travels in the model's metadata for stage 1.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Sequence

import numpy as np
from PIL import Image

__all__ = ["Preset", "decode", "decode_side", "model_input", "model_pixels", "store_copy", "stored_size",
           "STORE_MAX_ASPECT"]

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
