"""Training-time augmentation that GANs use: random horizontal flips.

Flips act on whole batches as tensors (one ``torch.where``), never per PIL image,
so they cost the same on the CPU path and on the accelerator. The datamodule applies
them after the batch reached the training step's device (``on_after_batch_transfer``).
"""

from __future__ import annotations

import torch
from torch import Tensor


def random_hflip(x: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """Mirror each image of an NCHW batch left-right with probability 1/2."""
    flip = torch.rand(x.shape[0], device=x.device, generator=generator) < 0.5
    return torch.where(flip.view(-1, 1, 1, 1), x.flip(-1), x)
