"""Adversarial objectives against values worked out by hand on fixed logits."""

from __future__ import annotations

import math

import pytest
import torch

from ganforge.losses import (
    HingeLoss,
    LeastSquaresLoss,
    RelativisticAverageLoss,
    RelativisticPairingLoss,
    VanillaLoss,
    WassersteinLoss,
    needs_real_logits_for_g,
)

# fixed logits: the discriminator's scores on three real and three generated samples
REAL = [2.0, 0.5, -1.0]
FAKE = [-3.0, -0.5, 1.5]


def logits(values):
    return torch.tensor(values, dtype=torch.float64)


def mean(values):
    return sum(values) / len(values)


def sigmoid(x):
    return 1.0 / (1.0 + math.exp(-x))


def approx(expected):
    return pytest.approx(expected, rel=1e-9, abs=1e-12)


ALL_LOSSES = [
    VanillaLoss,
    HingeLoss,
    WassersteinLoss,
    LeastSquaresLoss,
    RelativisticAverageLoss,
    RelativisticPairingLoss,
]


# ----------------------------------------------------------------------------- values
def test_vanilla_matches_hand_computation():
    loss = VanillaLoss()
    # D: -log sigmoid(real) - log(1 - sigmoid(fake)), each averaged over its batch
    d = mean([-math.log(sigmoid(r)) for r in REAL]) + mean([-math.log(1 - sigmoid(f)) for f in FAKE])
    # G, non-saturating: -log sigmoid(fake)
    g = mean([-math.log(sigmoid(f)) for f in FAKE])
    assert loss.d_loss(logits(REAL), logits(FAKE)).item() == approx(d)
    assert loss.g_loss(logits(FAKE)).item() == approx(g)


def test_vanilla_written_out_for_one_logit():
    # a single logit of 0: sigmoid = 1/2, so every term is log 2
    zero = logits([0.0])
    assert VanillaLoss().d_loss(zero, zero).item() == approx(2 * math.log(2))
    assert VanillaLoss().g_loss(zero).item() == approx(math.log(2))


def test_vanilla_is_finite_for_extreme_logits():
    # log(sigmoid(x) + eps) would clip at -log(eps); the exact value at x = -100 is ~100
    loss = VanillaLoss()
    huge = torch.tensor([100.0, -100.0])
    assert loss.g_loss(torch.tensor([-100.0])).item() == pytest.approx(100.0, rel=1e-6)
    assert torch.isfinite(loss.d_loss(huge, huge))
    assert torch.isfinite(loss.g_loss(huge))


def test_hinge_matches_hand_computation():
    loss = HingeLoss()
    # relu(1 - r) for r = 2, 0.5, -1 is 0, 0.5, 2; relu(1 + f) for f = -3, -0.5, 1.5 is 0, 0.5, 2.5
    d = (0.0 + 0.5 + 2.0) / 3 + (0.0 + 0.5 + 2.5) / 3
    g = -(-3.0 - 0.5 + 1.5) / 3
    assert loss.d_loss(logits(REAL), logits(FAKE)).item() == approx(d)
    assert loss.g_loss(logits(FAKE)).item() == approx(g)


def test_hinge_is_zero_beyond_the_margin():
    loss = HingeLoss()
    assert loss.d_loss(logits([1.0, 3.0]), logits([-1.0, -5.0])).item() == approx(0.0)


def test_wasserstein_matches_hand_computation():
    loss = WassersteinLoss()
    d = (-3.0 - 0.5 + 1.5) / 3 - (2.0 + 0.5 - 1.0) / 3
    g = -(-3.0 - 0.5 + 1.5) / 3
    assert loss.d_loss(logits(REAL), logits(FAKE)).item() == approx(d)
    assert loss.g_loss(logits(FAKE)).item() == approx(g)


def test_least_squares_matches_hand_computation():
    loss = LeastSquaresLoss()
    # 0-1 coding with the factor 1/2: D pulls real to 1 and fake to 0, G pulls fake to 1
    d = 0.5 * ((2.0 - 1) ** 2 + (0.5 - 1) ** 2 + (-1.0 - 1) ** 2) / 3
    d += 0.5 * ((-3.0) ** 2 + (-0.5) ** 2 + 1.5**2) / 3
    g = 0.5 * ((-3.0 - 1) ** 2 + (-0.5 - 1) ** 2 + (1.5 - 1) ** 2) / 3
    assert loss.d_loss(logits(REAL), logits(FAKE)).item() == approx(d)
    assert loss.g_loss(logits(FAKE)).item() == approx(g)


def test_relativistic_average_matches_hand_computation():
    loss = RelativisticAverageLoss()
    mean_real = (2.0 + 0.5 - 1.0) / 3  # 0.5
    mean_fake = (-3.0 - 0.5 + 1.5) / 3  # -2/3
    # D: real should look more real than the average fake, fake less real than the average real
    d = mean([-math.log(sigmoid(r - mean_fake)) for r in REAL])
    d += mean([-math.log(1 - sigmoid(f - mean_real)) for f in FAKE])
    # G: the same with the roles of real and fake swapped
    g = mean([-math.log(sigmoid(f - mean_real)) for f in FAKE])
    g += mean([-math.log(1 - sigmoid(r - mean_fake)) for r in REAL])
    assert loss.d_loss(logits(REAL), logits(FAKE)).item() == approx(d)
    assert loss.g_loss(logits(FAKE), logits(REAL)).item() == approx(g)


def test_relativistic_generator_needs_real_logits():
    with pytest.raises(ValueError, match="real_logits"):
        RelativisticAverageLoss().g_loss(logits(FAKE))


def test_relativistic_pairing_matches_hand_computation():
    loss = RelativisticPairingLoss()
    # pairs (2, -3), (0.5, -0.5), (-1, 1.5): D wants each real above its own fake
    d = mean([-math.log(sigmoid(r - f)) for r, f in zip(REAL, FAKE)])
    g = mean([-math.log(sigmoid(f - r)) for r, f in zip(REAL, FAKE)])
    assert loss.d_loss(logits(REAL), logits(FAKE)).item() == approx(d)
    assert loss.g_loss(logits(FAKE), logits(REAL)).item() == approx(g)


def test_relativistic_pairing_depends_on_the_pairing_not_only_the_means():
    # the average loss sees only batch means; shuffling the fakes changes the pairs
    loss = RelativisticPairingLoss()
    shuffled = [FAKE[2], FAKE[0], FAKE[1]]
    assert loss.d_loss(logits(REAL), logits(FAKE)).item() != approx(
        loss.d_loss(logits(REAL), logits(shuffled)).item()
    )
    # and a shift of both sides by the same amount changes nothing
    shift = [x + 7.0 for x in REAL], [x + 7.0 for x in FAKE]
    assert loss.d_loss(logits(shift[0]), logits(shift[1])).item() == pytest.approx(
        loss.d_loss(logits(REAL), logits(FAKE)).item(), rel=1e-6
    )


def test_relativistic_pairing_refuses_unpaired_batches():
    with pytest.raises(ValueError, match="pairs each real logit"):
        RelativisticPairingLoss().d_loss(logits(REAL), logits(FAKE[:2]))
    with pytest.raises(ValueError, match="real_logits"):
        RelativisticPairingLoss().g_loss(logits(FAKE))


def test_only_the_relativistic_losses_ask_for_real_logits_in_the_generator_step():
    assert needs_real_logits_for_g(RelativisticAverageLoss())
    assert needs_real_logits_for_g(RelativisticPairingLoss())
    for cls in (VanillaLoss, HingeLoss, WassersteinLoss, LeastSquaresLoss):
        assert not needs_real_logits_for_g(cls())


# ----------------------------------------------------------------------------- directions
def _grad(fn, x):
    x = x.clone().requires_grad_(True)
    fn(x).backward()
    return x.grad


@pytest.mark.parametrize("cls", ALL_LOSSES)
def test_generator_loss_falls_as_fake_logits_rise(cls):
    loss = cls()
    real = logits(REAL)
    fake = logits(FAKE)  # all below 1, where LSGAN's target lies
    values = [loss.g_loss(fake + shift, real).item() for shift in (-1.0, -0.5, 0.0)]
    assert values[0] > values[1] > values[2]
    grad = _grad(lambda f: loss.g_loss(f, real), fake - 1.0)
    assert (grad < 0).all()


@pytest.mark.parametrize("cls", ALL_LOSSES)
def test_discriminator_loss_rewards_separating_real_from_fake(cls):
    loss = cls()
    # inside every margin (real below 1, fake between 0 and 1): raising real logits and
    # lowering fake logits both help D
    real, fake = logits([0.2, 0.3, 0.4]), logits([0.1, 0.2, 0.3])
    grad_real = _grad(lambda r: loss.d_loss(r, fake), real)
    grad_fake = _grad(lambda f: loss.d_loss(real, f), fake)
    assert (grad_real < 0).all()
    assert (grad_fake > 0).all()
    assert loss.d_loss(real + 0.1, fake - 0.1).item() < loss.d_loss(real, fake).item()


def test_non_saturating_generator_gradient_does_not_vanish():
    # when D confidently rejects the fakes (logit -20) the gradient per sample is still ~ -1/N
    n = 4
    grad = _grad(VanillaLoss().g_loss, torch.full((n,), -20.0, dtype=torch.float64))
    assert grad.tolist() == pytest.approx([-(1 - sigmoid(-20.0)) / n] * n, rel=1e-9)


@pytest.mark.parametrize("cls", ALL_LOSSES)
def test_losses_are_scalars_and_keep_the_graph(cls):
    fake = torch.randn(5, requires_grad=True)
    real = torch.randn(5, requires_grad=True)
    for value in (cls().d_loss(real, fake), cls().g_loss(fake, real)):
        assert value.shape == ()
        assert value.requires_grad
