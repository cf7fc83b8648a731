"""Gradient penalties on critics whose input gradient is known in closed form.

A linear critic D(x) = w.x + b has grad D = w everywhere, so the WGAN-GP penalty is
(||w|| - center)^2 exactly, whatever the random interpolation. D(x) = a/2 ||x||^2
has grad D = a x, so R1 = 1/2 a^2 E||x||^2.
"""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from ganforge.regularizers import (
    BalancedConsistency,
    GradientPenalty,
    LeCam,
    R1Penalty,
    R2Penalty,
    Regularizer,
    shift_and_flip,
)


def linear_critic(w, b=0.0):
    w = torch.as_tensor(w, dtype=torch.float64)
    return lambda x: (x.flatten(1) * w.flatten()).sum(1) + b


def quadratic_critic(a):
    return lambda x: 0.5 * a * x.flatten(1).pow(2).sum(1)


# ----------------------------------------------------------------------------- gradient penalty
def test_gradient_penalty_of_a_linear_critic_on_2d_points():
    torch.manual_seed(0)
    real, fake = torch.randn(16, 2, dtype=torch.float64), torch.randn(16, 2, dtype=torch.float64)
    critic = linear_critic([3.0, 4.0], b=0.7)  # ||w|| = 5
    assert GradientPenalty()(critic, real, fake).item() == pytest.approx((5.0 - 1.0) ** 2, rel=1e-12)
    # zero-centred variant: ||w||^2
    assert GradientPenalty(center=0.0)(critic, real, fake).item() == pytest.approx(25.0, rel=1e-12)


def test_gradient_penalty_vanishes_for_a_1_lipschitz_linear_critic():
    real, fake = torch.zeros(4, 2, dtype=torch.float64), torch.ones(4, 2, dtype=torch.float64)
    critic = linear_critic([0.6, -0.8])  # ||w|| = 1
    assert GradientPenalty()(critic, real, fake).item() == pytest.approx(0.0, abs=1e-12)


def test_gradient_penalty_on_image_shaped_input():
    torch.manual_seed(0)
    shape = (3, 4, 4)  # C, H, W
    real = torch.randn(8, *shape, dtype=torch.float64)
    fake = torch.randn(8, *shape, dtype=torch.float64)
    w = torch.full(shape, 0.5, dtype=torch.float64)  # ||w|| = 0.5 * sqrt(48) = sqrt(12)
    critic = linear_critic(w)
    expected = (math.sqrt(0.25 * 48) - 1.0) ** 2
    assert GradientPenalty()(critic, real, fake).item() == pytest.approx(expected, rel=1e-12)
    assert GradientPenalty(center=0.0)(critic, real, fake).item() == pytest.approx(12.0, rel=1e-12)


def test_gradient_penalty_draws_one_interpolation_weight_per_sample():
    torch.manual_seed(0)
    seen = []

    def critic(x):
        seen.append(x.detach().clone())
        return x.flatten(1).sum(1)

    real = torch.zeros(32, 2, 3, 3)
    fake = torch.ones(32, 2, 3, 3)
    GradientPenalty()(critic, real, fake)
    (x_hat,) = seen
    # between real (0) and fake (1), x_hat is alpha itself: one value per sample, in [0, 1]
    alpha = x_hat.flatten(1)
    assert torch.equal(alpha, alpha[:, :1].expand_as(alpha))
    assert (alpha >= 0).all() and (alpha <= 1).all()
    assert alpha[:, 0].unique().numel() > 1  # different samples, different weights


def test_gradient_penalty_passes_labels_to_a_conditional_critic():
    # D(x, y) = w_y . x: the penalty averages (||w_y|| - 1)^2 over the batch
    w = torch.tensor([[3.0, 4.0], [0.0, 2.0]], dtype=torch.float64)  # norms 5 and 2

    def critic(x, labels):
        return (x * w[labels]).sum(1)

    labels = torch.tensor([0, 1, 1, 1])
    real, fake = torch.zeros(4, 2, dtype=torch.float64), torch.ones(4, 2, dtype=torch.float64)
    expected = ((5.0 - 1) ** 2 + 3 * (2.0 - 1) ** 2) / 4
    assert GradientPenalty()(critic, real, fake, labels).item() == pytest.approx(expected, rel=1e-12)


def test_gradient_penalty_backpropagates_to_the_critic_weights():
    # d/dw (||w|| - 1)^2 = 2 (||w|| - 1) w / ||w||; for w = (3, 4): 2 * 4 * (0.6, 0.8)
    critic = nn.Linear(2, 1).double()
    with torch.no_grad():
        critic.weight.copy_(torch.tensor([[3.0, 4.0]]))
    real, fake = torch.randn(8, 2, dtype=torch.float64), torch.randn(8, 2, dtype=torch.float64)
    GradientPenalty()(lambda x: critic(x).squeeze(1), real, fake).backward()
    assert critic.weight.grad.flatten().tolist() == pytest.approx([4.8, 6.4], rel=1e-9)


def test_gradient_penalty_leaves_inputs_alone():
    real = torch.randn(4, 2, requires_grad=True)
    fake = torch.randn(4, 2, requires_grad=True)
    critic = nn.Linear(2, 1)
    GradientPenalty()(lambda x: critic(x).squeeze(1), real, fake).backward()
    # the penalty trains the critic; the samples (and so the generator) get no gradient
    assert critic.weight.grad is not None
    assert real.grad is None and fake.grad is None


# ----------------------------------------------------------------------------- R1 / R2
def test_r1_of_a_quadratic_critic():
    a = 2.0
    real = torch.tensor([[1.0, 2.0], [3.0, 0.0]], dtype=torch.float64)  # ||x||^2 = 5, 9
    fake = torch.full((2, 2), 100.0, dtype=torch.float64)  # R1 must not look at fakes
    expected = 0.5 * a**2 * (5.0 + 9.0) / 2  # 14
    assert R1Penalty()(quadratic_critic(a), real, fake).item() == pytest.approx(expected, rel=1e-12)


def test_r1_on_images_and_r2_on_fakes():
    a = 0.5
    real = torch.ones(3, 1, 2, 2, dtype=torch.float64)  # ||x||^2 = 4
    fake = 2 * torch.ones(3, 1, 2, 2, dtype=torch.float64)  # ||x||^2 = 16
    critic = quadratic_critic(a)
    assert R1Penalty()(critic, real, fake).item() == pytest.approx(0.5 * a**2 * 4, rel=1e-12)
    assert R2Penalty()(critic, real, fake).item() == pytest.approx(0.5 * a**2 * 16, rel=1e-12)


# ----------------------------------------------------------------------------- weight / interval
@pytest.mark.parametrize("cls", [GradientPenalty, R1Penalty, R2Penalty])
def test_negative_weight_is_rejected(cls):
    with pytest.raises(ValueError, match=r"weight must be >= 0, got -1"):
        cls(weight=-1.0)


@pytest.mark.parametrize("cls", [GradientPenalty, R1Penalty, R2Penalty])
def test_interval_below_one_is_rejected(cls):
    with pytest.raises(ValueError, match=r"interval must be >= 1, got 0"):
        cls(interval=0)


def test_defaults_and_stored_settings():
    gp = GradientPenalty()
    assert (gp.weight, gp.interval, gp.center) == (10.0, 1, 1.0)
    r1 = R1Penalty(weight=0.0, interval=16)
    assert (r1.weight, r1.interval) == (0.0, 16)


def test_due_every_interval_steps():
    lazy = Regularizer(weight=1.0, interval=4)
    assert [step for step in range(13) if lazy.due(step)] == [0, 4, 8, 12]
    every = Regularizer(weight=1.0, interval=1)
    assert all(every.due(step) for step in range(5))


def test_under_fp16_autocast_the_loss_scale_keeps_the_input_gradient_from_underflowing():
    # a critic whose last op scales by 1e-6: in float16 (smallest subnormal 6e-8) the input
    # gradient is rounded to a few subnormal steps on its way back (here 2.5x too large a
    # penalty), unless the output is scaled before differentiating and the gradient unscaled
    # after, as torch's AMP gradient-penalty recipe does
    torch.manual_seed(0)
    first, last = torch.nn.Linear(2, 16), torch.nn.Linear(16, 1)

    def critic(x):
        return last(first(x)) * 1e-6

    x = torch.randn(16, 2)
    exact = R1Penalty()(critic, x, x)
    with torch.autocast("cpu", dtype=torch.float16):
        plain = R1Penalty()(critic, x, x)
        scaled = R1Penalty()(critic, x, x, grad_scale=torch.tensor(1024.0))
    assert exact > 0 and abs(float(plain) - float(exact)) > 0.5 * float(exact)
    assert float(scaled) == pytest.approx(float(exact), rel=2e-2)


# ----------------------------------------------------------------------------- LeCam
def test_lecam_one_sided_against_hand_computed_values():
    reg = LeCam(weight=1.0, decay=0.5)
    real, fake = torch.tensor([1.0, 3.0]), torch.tensor([-1.0, 0.0])
    # first call: anchors take the batch means, a_R = 2, a_F = -0.5
    # relu(real - a_F) = (1.5, 3.5) -> (2.25 + 12.25) / 2; relu(a_R - fake) = (3, 2) -> (9 + 4) / 2
    first = reg(None, None, None, logits=(real, fake))
    assert float(first) == pytest.approx(7.25 + 6.5)
    # second call: a_R = 0.5 * 2 + 0.5 * 0 = 1, a_F = 0.5 * -0.5 + 0 = -0.25
    # relu(0 + 0.25)^2 = 0.0625; relu(1 - 0)^2 = 1
    second = reg(None, None, None, logits=(torch.zeros(2), torch.zeros(2)))
    assert float(second) == pytest.approx(1.0625)


def test_lecam_two_sided_is_the_papers_equation_and_its_anchors_resume():
    reg = LeCam(weight=1.0, decay=0.5, one_sided=False)
    reg(None, None, None, logits=(torch.tensor([1.0, 3.0]), torch.tensor([-1.0, 0.0])))
    resumed = LeCam(weight=1.0, decay=0.5, one_sided=False)
    resumed.load_rank_state(reg.rank_state())
    # this batch moves the anchors (2, -0.5) halfway to its means (0.25, -1): a_R = 1.125, a_F = -0.75;
    # (real - a_F)^2 = (1.75^2, 0.25^2), (a_R - fake)^2 = (1.125^2, 3.125^2), no relu
    batch = (torch.tensor([1.0, -0.5]), torch.tensor([0.0, -2.0]))
    want = (3.0625 + 0.0625) / 2 + (1.265625 + 9.765625) / 2
    assert float(reg(None, None, None, logits=batch)) == pytest.approx(want)
    assert float(resumed(None, None, None, logits=batch)) == pytest.approx(want)


def test_lecam_differentiates_through_the_logits():
    logits = torch.tensor([2.0, 0.0], requires_grad=True)
    reg = LeCam(decay=0.0)  # anchors: this batch's means, a_R = 1, a_F = -1
    (grad,) = torch.autograd.grad(reg(None, None, None, logits=(logits, -logits)), logits)
    # d/dr mean(relu(r + 1)^2) = (r + 1) = (3, 1); d/dr of mean(relu(1 + r)^2) over fake = -r: (3, 1)
    torch.testing.assert_close(grad, torch.tensor([3.0, 1.0]) + torch.tensor([3.0, 1.0]))


# ----------------------------------------------------------------------------- bCR
def test_bcr_against_hand_computed_values():
    critic = lambda x, labels=None: x.flatten(1).sum(1)  # noqa: E731
    real = torch.ones(2, 1, 2, 2) * torch.tensor([1.0, 2.0]).view(2, 1, 1, 1)  # sums 4, 8
    fake = torch.full((2, 1, 2, 2), -1.0)  # sums -4
    halve = lambda x: x * 0.5  # noqa: E731
    reg = BalancedConsistency(weight=1.0, real=1.0, fake=0.5, transform=halve)
    # real: (4 - 2)^2, (8 - 4)^2 -> 10; fake: (-4 + 2)^2 -> 4, times 0.5 -> 2
    assert float(reg(critic, real, fake)) == pytest.approx(10 + 2)
    logits = (critic(real), critic(fake))
    assert float(reg(critic, real, fake, logits=logits)) == pytest.approx(12)


def test_bcr_default_transform_shifts_within_an_eighth_and_keeps_an_unshifted_image_consistent():
    torch.manual_seed(0)
    x = torch.rand(64, 1, 16, 16) + 1.0
    moved = shift_and_flip(x, translate=0.125)
    kept = (moved != 0).flatten(1).sum(1)
    assert kept.min() >= 14 * 14 and bool((kept == 256).any())  # up to 2 of 16 pixels each way
    critic = lambda x, labels=None: x.flatten(1).mean(1)  # noqa: E731
    assert float(BalancedConsistency(translate=0.0)(critic, x, x)) == 0.0
