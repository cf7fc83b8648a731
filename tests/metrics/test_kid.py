"""KID: the unbiased MMD^2 with k(x, y) = (x.y/d + 1)^3, equal to NumPy and to torch-fidelity."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch_fidelity.metric_kid import kid_features_to_metric

from ganforge.metrics.scores import FidelityScores


def kid_numpy(x: np.ndarray, y: np.ndarray) -> float:
    d, m = x.shape[1], len(x)
    k = lambda a, b: (a @ b.T / d + 1.0) ** 3  # noqa: E731
    kxx, kyy, kxy = k(x, x), k(y, y), k(x, y)
    off = lambda a: a.sum() - np.trace(a)  # noqa: E731
    return float((off(kxx) + off(kyy)) / (m * (m - 1)) - 2 * kxy.sum() / m**2)


def kid(real: torch.Tensor, fake: torch.Tensor, subsets: int, subset_size: int, seed: int = 0, full=None):
    scores = FidelityScores(
        real.shape[1], with_inception_score=False, kid_subsets=subsets, kid_subset_size=subset_size, seed=seed
    )
    scores.kid.full_kernels = full  # True: kernels over all samples once; False: per subset (torchmetrics')
    r = real.double()
    scores.load_real(r.sum(0), r.T @ r, len(r), real)
    scores.update(fake)
    out = scores.compute()
    return out["kid_mean"], out["kid_std"], scores.kid.last_subset_size


def features(n: int, d: int, seed: int, shift: float = 0.0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.relu(torch.randn(n, d, generator=g) + shift)


@pytest.mark.parametrize("full", [True, False])
def test_kid_with_full_subsets_equals_numpy(full):
    real, fake = features(150, 12, seed=0), features(150, 12, seed=1, shift=0.4)
    mean, std, m = kid(real, fake, subsets=3, subset_size=150, full=full)
    assert m == 150
    want = kid_numpy(real.double().numpy(), fake.double().numpy())
    assert want > 0.01
    assert mean == pytest.approx(want, rel=1e-6)
    assert std == pytest.approx(0.0, abs=1e-9)  # every subset is the whole set


@pytest.mark.parametrize("full", [True, False])
def test_kid_equals_torch_fidelity_with_the_same_subsets(full):
    real, fake = features(300, 16, seed=2), features(250, 16, seed=3, shift=0.2)
    mean, std, _ = kid(real, fake, subsets=20, subset_size=100, seed=7, full=full)
    want = kid_features_to_metric(  # torch-fidelity's input1 is the generated set, input2 the real one
        fake.double(), real.double(), kid_subsets=20, kid_subset_size=100, rng_seed=7, verbose=False
    )
    assert mean == pytest.approx(want["kernel_inception_distance_mean"], rel=1e-8)
    assert std == pytest.approx(want["kernel_inception_distance_std"], rel=1e-6)


def test_kid_subset_size_is_capped_by_the_samples_at_hand():
    _, _, m = kid(features(40, 8, seed=4), features(30, 8, seed=5), subsets=2, subset_size=1000)
    assert m == 30


def test_both_ways_of_summing_kernels_agree_across_row_blocks():
    real, fake = features(2100, 4, seed=6), features(900, 4, seed=7, shift=0.1)  # > one 2048-row block
    per_subset = kid(real, fake, subsets=4, subset_size=60, full=False)
    all_pairs = kid(real, fake, subsets=4, subset_size=60, full=True)
    assert all_pairs[0] == pytest.approx(per_subset[0], rel=1e-9)
    assert all_pairs[1] == pytest.approx(per_subset[1], rel=1e-7)
