"""How images become extractor input: the part of the protocol every number depends on.

Generated and real images take the same path (stylegan2-ada's fixed map, not a
per-batch min/max stretch as in mimicry): [-1, 1] floats are quantised to uint8 by
``x * 127.5 + 128``, clamped to [0, 255] and truncated, exactly as a PNG writer
would store them; grayscale is repeated to three channels for extractors that
expect RGB. Resizing is the extractor's own business (see ``extractors``).
"""

from __future__ import annotations

import torch
from torch import Tensor

# Bumped whenever the path from images to features changes, so cached real
# statistics computed under an older protocol are never reused.
PROTOCOL_VERSION = "ganforge-fidelity-1"


def quantize_uint8(x: Tensor) -> Tensor:
    """[-1, 1] -> {0..255} by the fixed map x*127.5 + 128, clamped, truncated toward zero."""
    return (x.detach().float() * 127.5 + 128).clamp(0, 255).to(torch.uint8)


def to_extractor_input(x: Tensor, in_channels: int) -> Tensor:
    """Float images in [-1, 1] (N, C, H, W) -> uint8 with the channels the extractor takes."""
    if x.dim() != 4:
        raise ValueError(f"image metrics need (N, C, H, W) images, got shape {tuple(x.shape)}")
    u8 = quantize_uint8(x)
    channels = u8.shape[1]
    if channels == in_channels:
        return u8
    if channels == 1 and in_channels == 3:
        # gray as RGB: what torch-fidelity's image-folder loader gets from PIL's convert("RGB")
        return u8.expand(-1, 3, -1, -1)
    raise ValueError(
        f"the feature extractor takes {in_channels}-channel images, the data has {channels} channels; "
        "pick an extractor made for this data (metrics=inception for RGB images)"
    )
