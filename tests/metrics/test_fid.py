"""FID: the callback's path agrees with SciPy and torch-fidelity, is ~0 on identical sets, rises with noise."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import scipy.linalg
import torch
from metrics_stubs import ImageData, PixelFeatures, StubSampler, quantised
from torch_fidelity.metric_fid import fid_features_to_statistics, fid_statistics_to_metric

from ganforge.metrics.evaluator import FidelityEvaluator
from ganforge.metrics.scores import FidelityScores


def frechet_scipy(a: np.ndarray, b: np.ndarray) -> float:
    """||mu_a - mu_b||^2 + Tr(S_a + S_b - 2 (S_a S_b)^(1/2)), the matrix root by scipy.linalg.sqrtm."""
    mu_a, mu_b = a.mean(0), b.mean(0)
    s_a, s_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    root = scipy.linalg.sqrtm(s_a @ s_b).real
    return float(((mu_a - mu_b) ** 2).sum() + np.trace(s_a) + np.trace(s_b) - 2 * np.trace(root))


def correlated_images(n: int, seed: int, shift: float = 0.0) -> torch.Tensor:
    """(n, 1, 4, 4) images in [-1, 1] whose 16 pixels are correlated."""
    g = torch.Generator().manual_seed(seed)
    mix = torch.randn(16, 16, generator=g) / 4
    z = torch.randn(n, 16, generator=g)
    return torch.tanh(z @ mix + shift).reshape(n, 1, 4, 4)


def test_fid_through_the_callback_path_equals_scipy(tmp_path):
    real, fake = correlated_images(400, seed=1), correlated_images(300, seed=2, shift=0.3)
    ev = FidelityEvaluator(PixelFeatures(16), num_fake=300, batch_size=64, kid_subsets=2, cache_dir=tmp_path)
    ev.prepare(ImageData(real), "cpu")
    got = ev.evaluate(StubSampler(fake, in_order=True))["fid"]
    want = frechet_scipy(quantised(real).numpy(), quantised(fake).numpy())
    assert want > 100  # far from zero, so the relative check means something
    assert got == pytest.approx(want, rel=1e-4)


def test_fid_equals_torch_fidelity_on_the_same_features():
    g = torch.Generator().manual_seed(0)
    real = torch.randn(500, 32, generator=g) @ torch.randn(32, 32, generator=g)
    fake = torch.randn(400, 32, generator=g) @ torch.randn(32, 32, generator=g) + 0.5
    scores = FidelityScores(32, with_inception_score=False, kid_subsets=1, kid_subset_size=50)
    r = real.double()
    scores.load_real(r.sum(0), r.T @ r, len(r), real)
    scores.update(fake)
    got = scores.compute()["fid"]
    stats = [fid_features_to_statistics(x.double()) for x in (real, fake)]
    want = fid_statistics_to_metric(*stats, verbose=False)["frechet_inception_distance"]
    assert got == pytest.approx(want, rel=1e-6)
    assert got == pytest.approx(frechet_scipy(real.double().numpy(), fake.double().numpy()), rel=1e-4)


def test_fid_of_a_set_against_itself_is_zero(digits, digits_extractor, tmp_path):
    ev = FidelityEvaluator(digits_extractor, num_fake=len(digits), kid_subsets=1, cache_dir=tmp_path)
    ev.prepare(ImageData(digits), "cpu")
    fid = ev.evaluate(StubSampler(digits, in_order=True))["fid"]
    assert abs(fid) < 1e-6


def test_fid_rises_monotonically_with_noise(digits, digits_extractor, tmp_path):
    ev = FidelityEvaluator(digits_extractor, num_fake=1000, kid_subsets=1, cache_dir=tmp_path)
    ev.prepare(ImageData(digits), "cpu")
    fids = [ev.evaluate(StubSampler(digits, noise=s))["fid"] for s in (0.0, 0.1, 0.2, 0.4, 0.8)]
    assert all(a < b for a, b in itertools.pairwise(fids)), fids
    assert fids[0] < 2 and fids[-1] > 100 * fids[0]
