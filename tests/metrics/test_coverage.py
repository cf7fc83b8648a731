"""Mode coverage on hand-built sample sets whose answer is known."""

from __future__ import annotations

import math

import pytest
import torch

from ganforge.data.toy2d import grid_modes, ring_modes
from ganforge.metrics.coverage import PERFECT_HQ_FRACTION_2D, mode_coverage

RING = ring_modes(8, 1.0)
STD = 0.01


def mixture(modes, std, n, seed=0, only=None):
    """n samples from the equal-weight mixture (restricted to the modes in ``only``)."""
    g = torch.Generator().manual_seed(seed)
    choices = torch.arange(len(modes)) if only is None else torch.tensor(only)
    k = choices[torch.randint(len(choices), (n,), generator=g)]
    return modes[k] + std * torch.randn(n, 2, generator=g)


def test_perfect_samples_cover_every_ring_mode():
    n = 100_000
    cov = mode_coverage(mixture(RING, STD, n), RING, STD)
    assert (cov.modes, cov.num_modes) == (8, 8)
    # in 2-D, |x - mu| / std is Rayleigh: P(r <= 3) = 1 - exp(-9/2) = 0.9889, not the
    # 1-D 0.9973 (8.4e-3 away); binomial sd sqrt(p (1 - p) / n) = 3.3e-4
    assert cov.hq_fraction == pytest.approx(1 - math.exp(-4.5), abs=2e-3)
    # the constant the module exports for this number is the fraction measured here
    assert cov.hq_fraction == pytest.approx(PERFECT_HQ_FRACTION_2D, abs=2e-3)
    # KL of the empirical histogram from uniform ~ (k - 1) / 2n = 3.5e-5
    assert cov.kl == pytest.approx(0.0, abs=1e-3)


def test_perfect_samples_cover_the_grid_at_the_protocol_size():
    modes, std = grid_modes(5, 2.0), 0.05
    cov = mode_coverage(mixture(modes, std, 2500), modes, std)
    assert (cov.modes, cov.num_modes) == (25, 25)
    assert cov.hq_fraction == pytest.approx(1 - math.exp(-4.5), abs=0.015)
    assert cov.kl == pytest.approx(0.0, abs=0.03)


def test_three_of_eight_modes_equally():
    # 3 modes with 1/3 each: KL(p || uniform) = 3 * 1/3 * log((1/3) / (1/8)) = log(8/3)
    x = torch.cat([RING[k].expand(300, 2) for k in (0, 3, 5)])
    cov = mode_coverage(x, RING, STD)
    assert cov.modes == 3
    assert cov.hq_fraction == pytest.approx(1.0)
    assert cov.kl == pytest.approx(math.log(8 / 3), rel=1e-6)


def test_three_of_eight_modes_from_noisy_samples():
    x = mixture(RING, STD, 3000, only=[1, 2, 6])
    cov = mode_coverage(x, RING, STD)
    assert cov.modes == 3
    assert cov.kl == pytest.approx(math.log(8 / 3), abs=0.01)


def test_unequal_shares():
    # 100 / 200 / 300 samples on three modes: p = 1/6, 1/3, 1/2
    x = torch.cat([RING[0].expand(100, 2), RING[1].expand(200, 2), RING[2].expand(300, 2)])
    expected = (
        (1 / 6) * math.log((1 / 6) * 8) + (1 / 3) * math.log((1 / 3) * 8) + (1 / 2) * math.log((1 / 2) * 8)
    )
    cov = mode_coverage(x, RING, STD)
    assert cov.modes == 3
    assert cov.kl == pytest.approx(expected, rel=1e-6)


def test_far_away_noise_covers_nothing():
    g = torch.Generator().manual_seed(0)
    x = torch.tensor([100.0, 100.0]) + torch.randn(2500, 2, generator=g)
    cov = mode_coverage(x, RING, STD)
    assert cov.modes == 0
    assert cov.hq_fraction == 0.0
    # every sample's nearest mode is the one at 45 degrees: one bin, KL = log 8
    assert cov.kl == pytest.approx(math.log(8), rel=1e-6)


def test_high_quality_means_within_three_std():
    # half the samples at 2.9 std from a mode, half at 3.1 std
    x = torch.cat(
        [
            RING[0] + torch.tensor([2.9 * STD, 0.0]).expand(50, 2),
            RING[0] + torch.tensor([0.0, 3.1 * STD]).expand(50, 2),
        ]
    )
    cov = mode_coverage(x, RING, STD)
    assert cov.hq_fraction == pytest.approx(0.5)


def test_a_mode_needs_20_of_2500_high_quality_samples():
    counts = {0: 19, 1: 20, 2: 2500 - 39}
    x = torch.cat([RING[k].expand(c, 2) for k, c in counts.items()])
    assert mode_coverage(x, RING, STD).modes == 2  # modes 1 and 2, not mode 0
    assert mode_coverage(x, RING, STD, min_count=19).modes == 3


def test_low_quality_samples_do_not_count_towards_a_mode():
    # 500 samples near mode 0 but 5 std away: nearest to mode 0, yet not covering it
    x = torch.cat([(RING[0] * (1 + 5 * STD)).expand(500, 2), RING[4].expand(500, 2)])
    cov = mode_coverage(x, RING, STD)
    assert cov.modes == 1
    assert cov.hq_fraction == pytest.approx(0.5)
    assert cov.kl == pytest.approx(math.log(8 / 2), rel=1e-6)


def test_as_dict():
    cov = mode_coverage(RING.repeat(10, 1), RING, STD)
    assert cov.as_dict() == {
        "modes": 8,
        "num_modes": 8,
        "hq_fraction": 1.0,
        "kl": pytest.approx(0.0, abs=1e-9),
        "shortfall": 0.0,
    }


def test_shortfall_adds_stray_samples_and_missed_modes():
    # 3 of 8 modes, every sample on a mode: 5/8 missed; then a quarter of the samples far away
    on_three = torch.cat([RING[k].expand(300, 2) for k in (0, 3, 5)])
    assert mode_coverage(on_three, RING, STD).shortfall == pytest.approx(5 / 8)
    stray = torch.cat([on_three, torch.full((300, 2), 5.0)])
    assert mode_coverage(stray, RING, STD).shortfall == pytest.approx(0.25 + 5 / 8)


def test_dimension_mismatch_is_refused():
    with pytest.raises(ValueError, match=r"samples have dimension 3, modes 2"):
        mode_coverage(torch.zeros(10, 3), RING, STD)


def test_no_samples_is_refused():
    with pytest.raises(ValueError, match=r"at least one sample, got 0"):
        mode_coverage(torch.zeros(0, 2), RING, STD)
