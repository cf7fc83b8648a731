"""Content hashes of training sets, cheap enough to take at the start of every run.

Metric caches (real-image statistics) are keyed on what the data holds, not on its
path. Hashing every byte of CelebA would take longer than a training epoch, so
large sets are hashed on a fixed, evenly spaced subset plus their length and shape:
any change in size, resolution or preprocessing changes the key, and so does any
edit that touches one of the sampled images.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable

import torch
from torch import Tensor

SUBSET = 2048


def subset_indices(n: int, limit: int = SUBSET) -> Tensor:
    """All of ``range(n)`` when small, else ``limit`` evenly spaced indices."""
    if n <= limit:
        return torch.arange(n)
    return torch.linspace(0, n - 1, limit).round().long().unique()


def fingerprint(
    n: int, fetch: Callable[[Tensor], Tensor], labels: Tensor | None, extra: str = "", limit: int = SUBSET
) -> str:
    """sha1 over the length, ``extra`` (preprocessing), the labels and a subset of the images.

    ``fetch(indices)`` returns those images as a uint8 tensor.
    """
    h = hashlib.sha1(f"n={n};{extra}".encode())
    idx = subset_indices(n, limit)
    h.update(fetch(idx).contiguous().numpy().tobytes())
    if labels is not None:
        h.update(labels.to(torch.int64).contiguous().numpy().tobytes())
    return h.hexdigest()[:16]
