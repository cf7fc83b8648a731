"""Feature extractors for FID, IS and KID.

An extractor is any ``nn.Module`` whose ``forward`` takes uint8 images
(N, C, H, W) in {0..255} and returns features (N, num_features), which is also what
torchmetrics accepts as a custom ``feature`` network. Optional attributes say more:

- ``features_and_logits(x)``: features and class logits from one pass; without it
  the Inception Score is not computed.
- ``name``: recorded with every number (default: the class path).
- ``in_channels``: 3 (default; gray images are repeated) or 1.
- ``num_features``: the feature size (default: probed with one blank image).
- ``resize``: words for the record on how the extractor resizes its input.
"""

from __future__ import annotations

import hashlib

import torch
from torch import Tensor, nn


def extractor_name(extractor: nn.Module) -> str:
    name = getattr(extractor, "name", None)
    return str(name) if name else f"{type(extractor).__module__}.{type(extractor).__qualname__}"


def extractor_in_channels(extractor: nn.Module) -> int:
    return int(getattr(extractor, "in_channels", 3))


def features_and_logits(extractor: nn.Module, x: Tensor) -> tuple[Tensor, Tensor | None]:
    both = getattr(extractor, "features_and_logits", None)
    if both is not None:
        return both(x)
    return extractor(x), None


def weights_digest(extractor: nn.Module) -> str:
    """Hash of the parameters and buffers: cached statistics follow the weights, not a name."""
    cached = getattr(extractor, "_ganforge_digest", None)
    if cached is not None:
        return cached
    h = hashlib.sha256()
    for key, value in sorted(extractor.state_dict().items()):
        h.update(key.encode())
        h.update(str(value.dtype).encode())
        h.update(value.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    digest = h.hexdigest()[:16]
    extractor._ganforge_digest = digest
    return digest
