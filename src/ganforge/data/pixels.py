"""Pixel conventions shared by the image datasets.

Images are stored as uint8 NCHW (a quarter of float32's memory, and what the files
hold) and become floats in [-1, 1] only when a batch is served.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def to_float_images(x: Tensor) -> Tensor:
    """uint8 {0..255} -> float [-1, 1]; float tensors pass through unchanged."""
    if x.dtype == torch.uint8:
        return x.float().mul_(2.0 / 255.0).sub_(1.0)
    return x


def convert_channels(x: Tensor, channels: int) -> Tensor:
    """uint8 NCHW with 1 or 3 channels -> ``channels``; RGB -> gray by ITU-R 601 luma, as PIL's "L"."""
    c = x.shape[1]
    if c == channels:
        return x
    if c == 1 and channels == 3:
        return x.expand(-1, 3, -1, -1).contiguous()
    if c == 3 and channels == 1:
        w = torch.tensor([299, 587, 114], dtype=torch.int32).view(1, 3, 1, 1)
        return (
            ((x.to(torch.int32) * w).sum(1, keepdim=True) + 500)
            .div(1000, rounding_mode="floor")
            .to(torch.uint8)
        )
    raise ValueError(f"cannot turn {c}-channel images into {channels} channels")


def resize_uint8(x: Tensor, size: int, chunk: int = 4096) -> Tensor:
    """Square uint8 NCHW images -> ``size`` x ``size`` by bilinear interpolation.

    Antialiased when shrinking, so downsampled images do not alias; done in chunks so a
    60,000-image set never needs a full float copy at once.
    """
    if x.shape[-1] == size and x.shape[-2] == size:
        return x
    out = torch.empty((x.shape[0], x.shape[1], size, size), dtype=torch.uint8)
    shrink = size < max(x.shape[-2:])
    for i in range(0, len(x), chunk):
        part = F.interpolate(
            x[i : i + chunk].float(),
            size=(size, size),
            mode="bilinear",
            align_corners=False,
            antialias=shrink,
        )
        out[i : i + chunk] = part.round_().clamp_(0, 255).to(torch.uint8)
    return out
