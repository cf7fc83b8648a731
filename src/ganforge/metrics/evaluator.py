"""From a generator and a datamodule to FID, IS and KID under one fixed protocol.

Real statistics come from ``prepare`` (cached, see ``real_stats``). ``evaluate``
draws this rank's share of ``num_fake`` images, ceil(num_fake / world_size), from a
CPU ``torch.Generator`` seeded ``seed + rank`` (stylegan2-ada offsets seeds by rank
the same way), so the numbers are reproducible and the training noise stream is
left alone; torchmetrics then synchronises the states across ranks. The shuffles
of IS and KID use NumPy generators seeded ``seed``.
"""

from __future__ import annotations

import math
import os
from typing import Protocol

import torch
from torch import Tensor, nn

import ganforge
from ganforge.metrics.extractors import (
    extractor_in_channels,
    extractor_name,
    features_and_logits,
    weights_digest,
)
from ganforge.metrics.protocol import PROTOCOL_VERSION, to_extractor_input
from ganforge.metrics.real_stats import RealStats, make_key, prepare_real_stats
from ganforge.metrics.scores import FidelityScores

QUANTISATION = "uint8 = clamp(x * 127.5 + 128, 0, 255), truncated"


class Sampler(Protocol):
    device: torch.device

    def sample(
        self, n: int, labels: Tensor | None = None, generator: torch.Generator | None = None
    ) -> Tensor: ...


def data_shape(datamodule) -> tuple[int, ...]:
    shape = getattr(datamodule, "data_shape", None)
    if shape is None:
        shape = (datamodule.channels, datamodule.image_size, datamodule.image_size)
    return tuple(int(s) for s in shape)


def data_fingerprint(datamodule) -> str:
    return str(datamodule.fingerprint())


class FidelityEvaluator:
    """FID, IS and KID of a sampler against a datamodule's images, under one fixed protocol.

    Args:
        extractor: features (and logits) from uint8 images; see ``ganforge.metrics.extractors``.
        num_fake: generated images per evaluation, over all ranks.
        num_real: real images for the statistics (None: every training image).
        batch_size: images per generator call and per extractor pass.
        seed: latents of rank r come from ``seed + r``; IS and KID shuffles from ``seed``.
        is_splits: IS is the mean (and std) over this many splits.
        kid_subsets / kid_subset_size: KID is the mean (and std) of the MMD over subsets
            of this size (capped by the samples at hand; torch-fidelity raises instead).
        kid_max_real: real features kept for KID (the first ones, in dataset order); KID
            equals torch-fidelity's on the same images only when n_real <= kid_max_real.
        cache_dir: where real statistics are cached (None: computed every fit).
        split: the images ``real_samples`` gives; datamodules expose their training set.
    """

    def __init__(
        self,
        extractor: nn.Module,
        num_fake: int = 2000,
        num_real: int | None = None,
        batch_size: int = 500,
        seed: int = 0,
        is_splits: int = 10,
        kid_subsets: int = 100,
        kid_subset_size: int = 1000,
        kid_max_real: int = 10000,
        cache_dir: str | os.PathLike | None = None,
        split: str = "train",
    ) -> None:
        for name, value in (
            ("num_fake", num_fake),
            ("batch_size", batch_size),
            ("kid_max_real", kid_max_real),
        ):
            if int(value) < 1:
                raise ValueError(f"metrics.{name} must be a positive integer, got {value}")
        if split != "train":
            raise ValueError(
                f"metrics.split={split!r}: datamodules give their training images only (split=train)"
            )
        if num_real is not None and int(num_real) < 2:
            raise ValueError(f"metrics.num_real must be >= 2 or null (all), got {num_real}")
        self.extractor = extractor.eval().requires_grad_(False)
        self.num_fake, self.num_real = int(num_fake), None if num_real is None else int(num_real)
        self.batch_size, self.seed = int(batch_size), int(seed)
        self.is_splits, self.kid_subsets, self.kid_subset_size = (
            int(is_splits),
            int(kid_subsets),
            int(kid_subset_size),
        )
        self.kid_max_real = int(kid_max_real)
        self.cache_dir, self.split = cache_dir, split
        num_features = getattr(extractor, "num_features", None)
        if num_features is None:  # probe with one mid-gray image, as torchmetrics would
            probe = torch.full((1, extractor_in_channels(extractor), 32, 32), 128, dtype=torch.uint8)
            with torch.no_grad():
                num_features = features_and_logits(extractor, probe)[0].shape[-1]
        self.num_features = int(num_features)
        self.scores = FidelityScores(
            self.num_features,
            with_inception_score=hasattr(extractor, "features_and_logits"),
            is_splits=self.is_splits,
            kid_subsets=self.kid_subsets,
            kid_subset_size=self.kid_subset_size,
            seed=self.seed,
        )
        self.real: RealStats | None = None
        self.shape: tuple[int, ...] | None = None
        self.n_fake = 0

    # ------------------------------------------------------------------ real side
    def prepare(
        self, datamodule, device: torch.device | str, rank: int = 0, world_size: int = 1, barrier=None
    ) -> RealStats:
        """Load (or compute and cache) the real statistics and move everything to ``device``."""
        device = torch.device(device)
        self.extractor.to(device)
        self.scores.to(device)
        self.shape = data_shape(datamodule)
        key = make_key(
            data_fingerprint(datamodule),
            self.split,
            self.shape,
            self.num_real,
            self.extractor,
            self.kid_max_real,
        )
        self.real = prepare_real_stats(
            datamodule.real_samples,
            key,
            self.extractor,
            cache_dir=self.cache_dir,
            batch_size=self.batch_size,
            kid_max_real=self.kid_max_real,
            device=device,
            rank=rank,
            barrier=barrier,
        )
        r = self.real
        self.scores.load_real(r.feature_sum, r.outer_sum, r.count, r.kid_features, rank, world_size)
        return r

    # ------------------------------------------------------------------ fake side
    @torch.no_grad()
    def update(self, images: Tensor) -> None:
        """Add generated images (float, [-1, 1]) to this rank's fake statistics."""
        x = to_extractor_input(images.to(self.scores.fid.device), extractor_in_channels(self.extractor))
        features, logits = features_and_logits(self.extractor, x)
        self.scores.update(features.float(), None if logits is None else logits.float())

    @torch.no_grad()
    def evaluate(self, sampler: Sampler, rank: int = 0, world_size: int = 1) -> dict[str, float]:
        """This rank's share of generated images in, the synchronised metrics out (same on every rank)."""
        if self.real is None:
            raise RuntimeError("call prepare(datamodule, device) before evaluate()")
        self.scores.reset_fake()
        share = math.ceil(self.num_fake / world_size)
        g = torch.Generator().manual_seed(self.seed + rank)
        for start in range(0, share, self.batch_size):
            self.update(sampler.sample(min(self.batch_size, share - start), labels=None, generator=g))
        self.n_fake = share * world_size
        return self.compute()

    def compute(self) -> dict[str, float]:
        results = self.scores.compute()
        self.scores.reset_fake()  # the gathered features are not kept between evaluations
        return results

    # ------------------------------------------------------------------ record
    def protocol(self) -> dict:
        """Everything a number depends on, for metrics.jsonl and metrics.json."""
        return {
            "extractor": extractor_name(self.extractor),
            "extractor_weights": weights_digest(self.extractor),
            "n_real": None if self.real is None else self.real.count,
            "n_fake": self.n_fake,
            "split": self.split,
            "resolution": list(self.shape) if self.shape else None,
            "seed": self.seed,
            "quantisation": QUANTISATION,
            "channels": "gray repeated to RGB" if extractor_in_channels(self.extractor) == 3 else "as is",
            "resize": getattr(self.extractor, "resize", "by the extractor"),
            "is_splits": self.is_splits,
            "kid_subsets": self.kid_subsets,
            "kid_subset_size": self.scores.kid.last_subset_size or self.kid_subset_size,
            "kid_n_real": None if self.real is None else len(self.real.kid_features),
            "protocol": PROTOCOL_VERSION,
            "ganforge": ganforge.__version__,
        }
