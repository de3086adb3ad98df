"""Small helpers shared by the attention layers."""

from __future__ import annotations


def make_divisible(value: float, divisor: int = 8) -> int:
    """Round a channel count to a multiple of `divisor`, never dropping more than 10%.

    The MobileNet rounding rule (torchvision's `_make_divisible`), kept here so the layers do not
    depend on a private torchvision helper.
    """
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    if rounded < 0.9 * value:
        rounded += divisor
    return rounded
