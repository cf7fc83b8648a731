"""Mode coverage of samples from a 2-D Gaussian mixture.

Protocol of VEEGAN (Srivastava et al. 2017) and PacGAN (Lin et al. 2018, sec. 5):
2,500 samples; a sample is *high quality* when it lies within 3 standard
deviations of its nearest mode; a mode is *covered* when at least 20 of the 2,500
(0.8 %) high-quality samples fall on it; KL is the divergence of the histogram of
nearest modes from the uniform one. For a perfect sampler in 2-D the
high-quality fraction is 1 - exp(-4.5) = 98.9 %, not 99.7 %.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
from torch import Tensor

PERFECT_HQ_FRACTION_2D = 1.0 - math.exp(-4.5)
MIN_FRACTION_PER_MODE = 20 / 2500


@dataclass(frozen=True)
class Coverage:
    modes: int  # modes covered
    num_modes: int
    hq_fraction: float  # samples within 3 std of their nearest mode
    kl: float  # KL(histogram of nearest modes || uniform), nats

    @property
    def shortfall(self) -> float:
        """One number for a search to minimise: the share of samples off every mode plus the
        share of modes missed. 0 is unreachable (a perfect 2-D sampler leaves 1.1 % beyond
        3 std); a missed mode costs as much as 1/num_modes of the samples straying."""
        return (1.0 - self.hq_fraction) + (self.num_modes - self.modes) / self.num_modes

    def as_dict(self) -> dict:
        return {**asdict(self), "shortfall": self.shortfall}


def mode_coverage(samples: Tensor, modes: Tensor, std: float, min_count: int | None = None) -> Coverage:
    if len(samples) == 0:  # the fractions below would be 0/0
        raise ValueError("mode_coverage needs at least one sample, got 0")
    samples = samples.detach().float().cpu().reshape(len(samples), -1)
    modes = modes.float().cpu()
    if samples.shape[1] != modes.shape[1]:
        raise ValueError(f"samples have dimension {samples.shape[1]}, modes {modes.shape[1]}")
    n, k = len(samples), len(modes)
    dist, nearest = torch.cdist(samples, modes).min(dim=1)
    hq = dist <= 3.0 * std
    hq_counts = torch.bincount(nearest[hq], minlength=k)
    threshold = min_count if min_count is not None else max(1, round(MIN_FRACTION_PER_MODE * n))
    p = torch.bincount(nearest, minlength=k).double() / n
    nz = p > 0
    kl = float((p[nz] * torch.log(p[nz] * k)).sum())
    return Coverage(
        modes=int((hq_counts >= threshold).sum()),
        num_modes=k,
        hq_fraction=float(hq.double().mean()),
        kl=kl,
    )
