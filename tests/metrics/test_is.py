"""Inception Score: equal to torch-fidelity and to the formula; the digits classifier's IS of real digits is near 10."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from metrics_stubs import ImageData, StubSampler
from torch_fidelity.metric_isc import isc_features_to_metric

from ganforge.metrics.evaluator import FidelityEvaluator
from ganforge.metrics.scores import ReferenceInceptionScore


def inception_score(logits: torch.Tensor, splits: int, seed: int) -> tuple[float, float]:
    metric = ReferenceInceptionScore(splits=splits, seed=seed)
    metric.update(logits)
    mean, std = metric.compute()
    return float(mean), float(std)


@pytest.mark.parametrize("n", [500, 1797])  # 1,797 does not split evenly in 10
def test_is_equals_torch_fidelity(n):
    logits = 3 * torch.randn(n, 10, generator=torch.Generator().manual_seed(n))
    mean, std = inception_score(logits, splits=10, seed=2020)
    want = isc_features_to_metric(logits, splits=10, shuffle=True, rng_seed=2020)
    assert mean == pytest.approx(want["inception_score_mean"], rel=1e-10)
    assert std == pytest.approx(want["inception_score_std"], rel=1e-8)


def test_is_with_one_split_is_exp_of_mean_kl():
    logits = 2 * torch.randn(300, 7, generator=torch.Generator().manual_seed(0))
    p = torch.softmax(logits.double(), 1).numpy()
    marginal = p.mean(0)
    want = float(np.exp((p * (np.log(p) - np.log(marginal))).sum(1).mean()))
    assert inception_score(logits, splits=1, seed=0)[0] == pytest.approx(want, rel=1e-10)


def test_is_of_real_digits_is_near_the_number_of_classes(digits, digits_extractor, tmp_path):
    ev = FidelityEvaluator(digits_extractor, num_fake=len(digits), kid_subsets=1, cache_dir=tmp_path)
    ev.prepare(ImageData(digits), "cpu")
    real = ev.evaluate(StubSampler(digits, in_order=True))
    noise = torch.rand(1000, 1, 32, 32, generator=torch.Generator().manual_seed(0)) * 2 - 1
    ev.num_fake = 1000
    on_noise = ev.evaluate(StubSampler(noise, in_order=True))
    assert 7.0 < real["is_mean"] <= 10.0
    assert on_noise["is_mean"] < 2.0
