"""``data.subset``: train on a seeded part of a training set (limited-data benchmarks).

A subset is the first n indices of one seeded permutation of the full set, so for one
seed a smaller subset is part of every larger one, and the end of the same
permutation (``held_out_indices``) is disjoint from every subset that leaves room for
it: a benchmark can train on 10 % and score on a held-out 10 % of the same folder.
"""

from __future__ import annotations

import math
import numbers

import torch
from torch import Tensor

HOW = "data.subset takes a fraction in (0, 1] or a count >= 1 of training images (null: all)"


def check_subset(subset: float | int | None) -> float | int | None:
    """The value as given (an int count or a float fraction), or a ValueError that says what fits."""
    if subset is None:
        return None
    # bool is an int to Python; data.subset=true would silently mean "one image"
    if isinstance(subset, bool) or not isinstance(subset, numbers.Real) or not math.isfinite(subset):
        raise ValueError(f"data.subset={subset!r}: {HOW}")
    if subset <= 0:
        raise ValueError(f"data.subset={subset}: {HOW}; use e.g. data.subset=0.1 or data.subset=500")
    if isinstance(subset, numbers.Integral):
        return int(subset)
    if subset <= 1:
        return float(subset)
    if float(subset).is_integer():  # 500.0 from a sweep's arithmetic is the count 500
        return int(subset)
    raise ValueError(f"data.subset={subset}: a fraction must be at most 1 and a count a whole number; {HOW}")


def subset_size(n_total: int, subset: float | int | None) -> int:
    """How many of ``n_total`` images ``subset`` keeps (a fraction rounds to the nearest count)."""
    subset = check_subset(subset)
    if subset is None:
        return n_total
    if isinstance(subset, float):
        return max(1, int(subset * n_total + 0.5))
    if subset > n_total:
        raise ValueError(
            f"data.subset={subset} asks for more images than the training set holds ({n_total}); "
            f"use a count <= {n_total} or a fraction in (0, 1]"
        )
    return subset


def permutation(n_total: int, seed: int = 0) -> Tensor:
    """The seeded order subsets are taken from (CPU generator: the same on every machine and rank)."""
    return torch.randperm(n_total, generator=torch.Generator().manual_seed(int(seed)))


def subset_indices(n_total: int, subset: float | int | None, seed: int = 0) -> Tensor:
    """The indices ``data.subset`` selects: the first n of ``permutation(n_total, seed)``."""
    return permutation(n_total, seed)[: subset_size(n_total, subset)]


def held_out_indices(n_total: int, n: int, seed: int = 0) -> Tensor:
    """The last ``n`` of the same permutation: disjoint from any subset of at most n_total - n."""
    if not 0 <= int(n) <= n_total:
        raise ValueError(f"a held-out set of {n} cannot come from {n_total} images")
    return permutation(n_total, seed)[n_total - int(n) :]
