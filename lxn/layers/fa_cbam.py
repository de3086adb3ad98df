"""Feature-Aware Convolutional Block Attention Module (FA-CBAM), LogoXpertNet Algorithm 3.

    M_c  = sigmoid(MLP(AvgPool(F)) + MLP(MaxPool(F)));      F_c = M_c * F      (shared MLP)
    M_s  = sigmoid(conv7x7([mean_c(F_c); max_c(F_c)]))
    F_f  = Re(FFT2(F))                                      (the paper's stand-in for a DCT)
    F_f' = conv(F_f)
    M_sf = sigmoid(conv3x3([M_s; F_f']));                   F_out = M_sf * F_c

Choices the paper leaves open:

* The FFT is 2-D over the spatial axes of each channel, with orthonormal scaling
  (`norm="ortho"`), so F_f has the scale of F whatever the map size (3 x 3 at 96 px input,
  16 x 16 at 512 px) rather than growing with H * W.
* It runs in float32 even under autocast or on a half-precision model: cuFFT's half-precision
  transforms only accept power-of-two sizes, and a 7 x 7 map is not one.
* conv(F_f) is a bias-free 1x1 conv from C channels to `freq_channels` (default 1) maps, so
  that [M_s; F_f'] is a small stack like CBAM's [avg; max] (the fusion conv after it has a bias).
  A 1x1 conv mixes channels and the FFT mixes positions within a channel; both are linear, so
  they commute: W Re(FFT2(F)) = Re(FFT2(W F)). The module applies W first and transforms
  `freq_channels` maps instead of C: the same F_f', at 1/C of the FFT work (on a 1000-channel
  7 x 7 map, the whole block went from 1.5 ms to under 0.5 ms on one CPU thread).
* `spectrum` picks the transform. "real_fft" is the paper's. Its DC term sits in one corner of
  the map, and the 3x3 fusion conv that reads it treats positions as spatial neighbours, so
  "centred_fft" shifts DC to the centre (fftshift), and "dct" is an exact orthonormal DCT-II
  (the transform the paper names its FFT a stand-in for), as D_H F D_W^T with the DCT matrices
  built from the map's size. Both are linear per channel, so the 1x1 conv still goes first.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
from torch import nn

from lxn.layers._utils import make_divisible

__all__ = ["FrequencyAwareCBAM", "real_fft2", "dct2", "SPECTRA"]

SPECTRA = ("real_fft", "centred_fft", "dct")


def real_fft2(x: torch.Tensor) -> torch.Tensor:
    """Re(FFT2(x)) over the last two axes, orthonormal, computed in float32; returns x's dtype."""
    return torch.fft.fft2(x.float(), norm="ortho").real.to(x.dtype)


def _dct_matrix(n: int, device: torch.device) -> torch.Tensor:
    """The orthonormal DCT-II matrix: D[k, j] = sqrt(2 / n) c_k cos(pi (2j + 1) k / (2n)), c_0 = 1/sqrt(2)."""
    k = torch.arange(n, device=device, dtype=torch.float32)[:, None]
    j = torch.arange(n, device=device, dtype=torch.float32)[None, :]
    d = torch.cos(math.pi * (2 * j + 1) * k / (2 * n)) * math.sqrt(2.0 / n)
    return torch.cat([d[:1] / math.sqrt(2.0), d[1:]], dim=0)


def dct2(x: torch.Tensor) -> torch.Tensor:
    """Orthonormal 2-D DCT-II over the last two axes (D_H x D_W^T), in float32; returns x's dtype."""
    h, w = x.shape[-2:]
    return (_dct_matrix(h, x.device) @ x.float() @ _dct_matrix(w, x.device).T).to(x.dtype)


def _spectrum(x: torch.Tensor, kind: str) -> torch.Tensor:
    if kind == "real_fft":
        return real_fft2(x)
    if kind == "centred_fft":
        return torch.fft.fftshift(real_fft2(x), dim=(-2, -1))
    return dct2(x)


class FrequencyAwareCBAM(nn.Module):
    """FA-CBAM on a C x H x W map; output has the input's shape.

    Args:
        channels: C.
        reduction: the shared channel MLP maps C to C / reduction units.
        spatial_kernel: kernel of the spatial conv f^{7x7}.
        freq_channels: maps produced by conv(F_f).
        fusion_kernel: kernel of the fusion conv f^{3x3}.
        spectrum: "real_fft" (the paper's), "centred_fft" or "dct" (see the module notes).
    """

    def __init__(
        self,
        channels: int,
        reduction: int = 16,
        spatial_kernel: int = 7,
        freq_channels: int = 1,
        fusion_kernel: int = 3,
        spectrum: Literal["real_fft", "centred_fft", "dct"] = "real_fft",
    ) -> None:
        super().__init__()
        if spectrum not in SPECTRA:
            raise ValueError(f"spectrum must be one of {SPECTRA}, got {spectrum!r}")
        self.spectrum = spectrum
        hidden = make_divisible(channels / reduction)
        self.mlp = nn.Sequential(nn.Linear(channels, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, channels))
        self.spatial = nn.Conv2d(2, 1, spatial_kernel, padding=spatial_kernel // 2)
        self.freq = nn.Conv2d(channels, freq_channels, 1, bias=False)
        self.fusion = nn.Conv2d(1 + freq_channels, 1, fusion_kernel, padding=fusion_kernel // 2)

    def channel_gate(self, x: torch.Tensor) -> torch.Tensor:
        """M_c, shape (B, C, 1, 1)."""
        # One pass of the shared MLP over the stacked [avg; max] descriptors instead of two.
        both = self.mlp(torch.stack([x.mean(dim=(2, 3)), x.amax(dim=(2, 3))], dim=1))  # (B, 2, C)
        return torch.sigmoid(both.sum(dim=1))[:, :, None, None]

    def spatial_gate(self, refined: torch.Tensor) -> torch.Tensor:
        """M_s from F_c, shape (B, 1, H, W)."""
        stats = torch.cat([refined.mean(dim=1, keepdim=True), refined.amax(dim=1, keepdim=True)], dim=1)
        return torch.sigmoid(self.spatial(stats))

    def fused_gate(self, x: torch.Tensor, refined: torch.Tensor) -> torch.Tensor:
        """M_sf from M_s(F_c) and F_f', shape (B, 1, H, W)."""
        return torch.sigmoid(self.fusion(torch.cat([self.spatial_gate(refined), self.frequency_features(x)], dim=1)))

    def frequency_features(self, x: torch.Tensor) -> torch.Tensor:
        """F_f' = conv(T(F)), computed as T(conv(F)) (equal: both linear; see the module notes)."""
        return _spectrum(self.freq(x), self.spectrum)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        refined = self.channel_gate(x) * x
        return self.fused_gate(x, refined) * refined
