"""DiffAugment (Zhao et al. 2020, "Differentiable Augmentation for Data-Efficient GAN Training").

The same random, differentiable transforms are applied to every image the discriminator
sees, real and generated, in both networks' steps, so D cannot memorise the few real
images and G still gets D's gradient through the transform. The three policies of the
paper, on images in [-1, 1]:

- ``color``: brightness + U(-0.5, 0.5); saturation x U(0, 2) around the pixel's channel
  mean; contrast x U(0.5, 1.5) around the image mean;
- ``translation``: a shift of up to 1/8 of the side in each direction, whole pixels,
  zeros (mid-gray) moved in;
- ``cutout``: a square of half the side at a random centre set to zero.

Each sample draws its own parameters from the global torch stream, which checkpoints keep,
so a resumed run augments as the uninterrupted one would.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ganforge.augment.geometry import check_images, gather_pixels, source_grid

POLICIES = ("color", "translation", "cutout")


def _uniform(x: Tensor, low: float, high: float) -> Tensor:
    return torch.rand(x.shape[0], 1, 1, 1, device=x.device, dtype=x.dtype) * (high - low) + low


def color(x: Tensor) -> Tensor:
    x = x + _uniform(x, -0.5, 0.5)
    mean = x.mean(dim=1, keepdim=True)
    x = (x - mean) * _uniform(x, 0.0, 2.0) + mean
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    return (x - mean) * _uniform(x, 0.5, 1.5) + mean


def translation(x: Tensor, ratio: float = 0.125) -> Tensor:
    n, size = x.shape[0], x.shape[-1]
    shift = int(size * ratio + 0.5)
    rows, cols = source_grid(n, size, x.device)
    dy = torch.randint(-shift, shift + 1, (n, 1, 1), device=x.device)
    dx = torch.randint(-shift, shift + 1, (n, 1, 1), device=x.device)
    rows, cols = rows - dy, cols - dx
    valid = (rows >= 0) & (rows < size) & (cols >= 0) & (cols < size)
    return gather_pixels(x, rows, cols, valid)


def cutout(x: Tensor, ratio: float = 0.5) -> Tensor:
    n, size = x.shape[0], x.shape[-1]
    side = int(size * ratio + 0.5)
    top = torch.randint(0, size, (n, 1, 1), device=x.device) - side // 2
    left = torch.randint(0, size, (n, 1, 1), device=x.device) - side // 2
    rows, cols = source_grid(n, size, x.device)
    inside = (rows >= top) & (rows < top + side) & (cols >= left) & (cols < left + side)
    return x * (~inside).unsqueeze(1).to(x.dtype)


_OPS = {"color": color, "translation": translation, "cutout": cutout}


class DiffAugment(nn.Module):
    """Apply the policies in order (default: all three, as the paper's CIFAR-10 runs)."""

    def __init__(self, policy: str | list[str] = "color,translation,cutout") -> None:
        super().__init__()
        names = [p.strip() for p in policy.split(",")] if isinstance(policy, str) else list(policy)
        unknown = [p for p in names if p not in _OPS]
        if unknown or not names:
            raise ValueError(
                f"model.augment_options.policy={policy!r}: unknown {unknown}; "
                f"pick any of {', '.join(POLICIES)}, comma-separated"
            )
        self.policy = names

    def forward(self, x: Tensor) -> Tensor:
        check_images(x, "DiffAugment")
        for name in self.policy:
            x = _OPS[name](x)
        return x

    def extra_repr(self) -> str:
        return f"policy={','.join(self.policy)}"
