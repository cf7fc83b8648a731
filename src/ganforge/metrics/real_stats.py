"""Real-image statistics, computed once per key and cached on disk.

The key holds everything the statistics depend on (stylegan2-ada hashes its
options the same way, but keys the dataset by path; here it is the datamodule's
content fingerprint): the data fingerprint, split, image shape, the number of real
images asked for, the extractor's name and a hash of its weights, the KID feature
cap and the preprocessing protocol version, and, only when per-class sums are kept (for
conditional models), their number of classes: the keys of unconditional statistics
are the same as before per-class sums existed. A changed key is a different file, so
stale statistics are never read. Files are written to a temporary name and moved
into place with ``os.replace``, so a reader sees a whole file or none.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor, nn

from ganforge.checkpoint_io import atomic_torch_save
from ganforge.metrics.conditional import class_sums
from ganforge.metrics.extractors import (
    extractor_in_channels,
    extractor_name,
    features_and_logits,
    weights_digest,
)
from ganforge.metrics.protocol import PROTOCOL_VERSION, to_extractor_input

log = logging.getLogger("ganforge")


@dataclass
class RealStats:
    """Sum, sum of outer products (float64) and count of real features, and the first KID features.

    With per-class statistics (conditional models) also the same sums per class:
    (C, D), (C, D, D) and the (C,) counts; None otherwise.
    """

    key: dict
    feature_sum: Tensor
    outer_sum: Tensor
    count: int
    kid_features: Tensor
    class_feature_sum: Tensor | None = None
    class_outer_sum: Tensor | None = None
    class_count: Tensor | None = None

    def as_dict(self) -> dict:
        out = {
            "key": self.key,
            "feature_sum": self.feature_sum,
            "outer_sum": self.outer_sum,
            "count": self.count,
            "kid_features": self.kid_features,
        }
        if self.class_count is not None:
            out |= {
                "class_feature_sum": self.class_feature_sum,
                "class_outer_sum": self.class_outer_sum,
                "class_count": self.class_count,
            }
        return out


def make_key(
    fingerprint: str,
    split: str,
    shape: tuple[int, ...],
    num_real: int | None,
    extractor: nn.Module,
    kid_max_real: int,
    num_classes: int = 0,
) -> dict:
    key = {
        "protocol": PROTOCOL_VERSION,
        "data": str(fingerprint),
        "split": str(split),
        "shape": [int(s) for s in shape],
        "num_real": "all" if num_real is None else int(num_real),
        "extractor": extractor_name(extractor),
        "extractor_weights": weights_digest(extractor),
        "kid_max_real": int(kid_max_real),
    }
    if num_classes:  # only then: unconditional keys (and their cache files) stay as they were
        key["class_stats"] = int(num_classes)
    return key


def cache_file(cache_dir: str | os.PathLike, key: dict) -> Path:
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:20]
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", key["extractor"])
    return Path(cache_dir) / f"real-{name}-{digest}.pt"


@torch.no_grad()
def compute_real_stats(
    images: Tensor,
    extractor: nn.Module,
    key: dict,
    batch_size: int,
    kid_max_real: int,
    device: torch.device,
    labels: Tensor | None = None,
) -> RealStats:
    """Stream float images in [-1, 1] through the extractor; keep float64 sums and the first KID features.

    With ``labels`` (and ``key["class_stats"]`` classes) the sums are kept per class too.
    """
    in_channels = extractor_in_channels(extractor)
    num_classes = int(key.get("class_stats", 0))
    if num_classes and (labels is None or len(labels) != len(images)):
        got = "none" if labels is None else len(labels)
        raise ValueError(
            f"per-class statistics need one label per real image: {len(images)} images, {got} labels"
        )
    feature_sum = outer_sum = None
    per_class = None
    kid_parts, kept = [], 0
    for start in range(0, len(images), batch_size):
        x = to_extractor_input(images[start : start + batch_size].to(device), in_channels)
        features = features_and_logits(extractor, x)[0].float()
        f64 = features.double()
        feature_sum = f64.sum(0) if feature_sum is None else feature_sum + f64.sum(0)
        outer_sum = f64.T @ f64 if outer_sum is None else outer_sum + f64.T @ f64
        if num_classes:
            y = labels[start : start + batch_size].to(features.device)
            sums = class_sums(features, y, num_classes)
            per_class = sums if per_class is None else tuple(a + b for a, b in zip(per_class, sums))
        if kept < kid_max_real:
            kid_parts.append(features[: kid_max_real - kept].cpu())
            kept += len(kid_parts[-1])
    if feature_sum is None:
        raise ValueError("no real images to compute statistics from")
    class_parts = (None, None, None) if per_class is None else tuple(t.cpu() for t in per_class)
    return RealStats(key, feature_sum.cpu(), outer_sum.cpu(), len(images), torch.cat(kid_parts), *class_parts)


def save_atomic(stats: RealStats, path: Path) -> None:
    atomic_torch_save(stats.as_dict(), path)  # fsynced and renamed, as checkpoints are


def load(path: Path, key: dict) -> RealStats | None:
    """The cached statistics when the file exists and was written for exactly this key."""
    if not path.is_file():
        return None
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # a damaged file is recomputed, not trusted
        log.warning("ignoring unreadable metrics cache %s: %s", path, err)
        return None
    if data.get("key") != key:
        log.warning("ignoring metrics cache %s: written for another key", path)
        return None
    return RealStats(**data)


def prepare_real_stats(
    real_samples: Callable[[int | None], Tensor],
    key: dict,
    extractor: nn.Module,
    *,
    cache_dir: str | os.PathLike | None,
    batch_size: int,
    kid_max_real: int,
    device: torch.device,
    rank: int = 0,
    barrier: Callable[[], None] | None = None,
    real_labels: Callable[[int | None], Tensor] | None = None,
) -> RealStats:
    """Rank 0 reads the cache or computes and writes it; the other ranks wait, then read.

    Without a cache directory every rank computes for itself. A rank that cannot see
    rank 0's file (no shared file system) computes too. ``real_labels(n)``: the labels of
    ``real_samples(n)``, read after it, for keys with per-class statistics.
    """
    num_real = None if key["num_real"] == "all" else key["num_real"]

    def compute() -> RealStats:
        images = real_samples(num_real)
        labels = None
        if key.get("class_stats"):
            if real_labels is None:
                raise ValueError("per-class real statistics need real_labels")
            labels = real_labels(num_real)
        return compute_real_stats(images, extractor, key, batch_size, kid_max_real, device, labels)

    if cache_dir is None:
        return compute()
    path = cache_file(cache_dir, key)
    stats = None
    if rank == 0:
        stats = load(path, key)
        if stats is None:
            log.info("computing real-image statistics for %s -> %s", key["extractor"], path)
            stats = compute()
            save_atomic(stats, path)
        else:
            log.info("real-image statistics from cache %s", path)
    if barrier is not None:
        barrier()
    if stats is None:
        stats = load(path, key) or compute()
    return stats
