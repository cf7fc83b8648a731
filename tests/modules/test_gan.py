"""GAN through Lightning's Trainer: the D/G schedule, budgets, EMA, penalties, losses, sampling.

Updates are checked against hand computations: with SGD at lr 1 a step moves the
weights by exactly minus the gradient it used, which the tests compute again.
"""

from __future__ import annotations

import functools

import pytest
import torch
from gan_parts import ADAM, SGD, FixedData, PointGenerator, fit, flat, make_data, make_gan

from ganforge.losses import AdversarialLoss, HingeLoss, RelativisticAverageLoss
from ganforge.nets import cdcgan
from ganforge.regularizers import Regularizer


def test_one_generator_step_per_n_critic_discriminator_steps():
    gan = make_gan(n_critic=3)
    trainer = fit(gan, make_data())  # 10 batches of 32
    assert gan.d_steps == 10
    assert gan.g_steps == 10 // 3
    assert trainer.global_step == gan.g_steps  # global_step counts generator steps
    assert gan.images_seen == 320 and gan.kimg == pytest.approx(0.32)


def test_loader_batches_are_split_into_minibatches():
    gan = make_gan(minibatch_size=8, n_critic=2)
    fit(gan, make_data(batch_size=32))  # 10 loader batches, 4 minibatches each
    assert (gan.d_steps, gan.g_steps, gan.images_seen) == (40, 20, 320)


@pytest.mark.parametrize("minibatch_size", [None, 8])
def test_max_steps_counts_generator_steps_exactly(minibatch_size):
    gan = make_gan(minibatch_size=minibatch_size)
    trainer = fit(gan, make_data(samples_per_epoch=3200), max_steps=7, max_epochs=-1)
    assert gan.g_steps == 7 and trainer.global_step == 7


def test_max_kimg_stops_after_that_many_real_images():
    gan = make_gan(max_kimg=0.128)  # 128 images = 4 batches of 32
    fit(gan, make_data(samples_per_epoch=3200), max_epochs=-1)
    assert gan.images_seen == 128


def test_each_step_updates_only_its_network_with_its_own_gradient():
    # SGD at lr 1: a step moves the weights by minus the gradient it used. After one D and
    # one G step, each network's .grad must be exactly what moved it: G's backward through
    # D left D's gradients alone, and D's step (fakes drawn without grad) gave G none.
    gan = make_gan(g_optimizer=SGD, d_optimizer=SGD)
    g0, d0 = flat(gan.generator), flat(gan.discriminator)
    fit(gan, make_data(), max_steps=1)
    d_grad = torch.cat([p.grad.flatten() for p in gan.discriminator.parameters()])
    g_grad = torch.cat([p.grad.flatten() for p in gan.generator.parameters()])
    torch.testing.assert_close(d0 - flat(gan.discriminator), d_grad, rtol=0, atol=1e-6)
    torch.testing.assert_close(g0 - flat(gan.generator), g_grad, rtol=0, atol=1e-6)
    assert d_grad.abs().sum() > 0 and g_grad.abs().sum() > 0
    assert all(p.requires_grad for p in gan.discriminator.parameters())  # unfrozen after G's step


def test_gradients_do_not_accumulate_from_one_step_to_the_next():
    import lightning as L

    class Before(L.Callback):
        def on_train_batch_start(self, trainer, gan, batch, batch_idx):
            self.d, self.g = flat(gan.discriminator), flat(gan.generator)

    before = Before()
    gan = make_gan(g_optimizer=SGD, d_optimizer=SGD)
    fit(gan, make_data(), max_steps=3, callbacks=[before])
    # the last step's update is minus its own gradient only
    d_grad = torch.cat([p.grad.flatten() for p in gan.discriminator.parameters()])
    g_grad = torch.cat([p.grad.flatten() for p in gan.generator.parameters()])
    torch.testing.assert_close(before.d - flat(gan.discriminator), d_grad, rtol=0, atol=1e-6)
    torch.testing.assert_close(before.g - flat(gan.generator), g_grad, rtol=0, atol=1e-6)


def test_a_frozen_discriminator_parameter_stays_frozen_through_generator_steps():
    gan = make_gan()
    first = gan.discriminator.net[0]
    first.weight.requires_grad_(False)  # e.g. a pretrained feature layer the user froze
    before = first.weight.detach().clone()
    fit(gan, make_data(), max_steps=3)
    assert not first.weight.requires_grad and torch.equal(first.weight, before)
    assert first.bias.requires_grad and not torch.equal(first.bias, torch.zeros_like(first.bias))


def test_relativistic_generator_step_uses_the_real_logits():
    # G(z) = p for every z, so G's step is a function of p, D and the real batch only
    real = torch.randn(16, 2)
    gan = make_gan(
        generator=PointGenerator(), g_optimizer=SGD, loss=RelativisticAverageLoss(), ema_decay=None
    )
    p0 = gan.generator.p.detach().clone()
    fit(gan, FixedData(real), max_steps=1)
    p = p0.clone().requires_grad_(True)
    d = gan.discriminator  # D does not change in G's step
    loss = RelativisticAverageLoss().g_loss(d(p.expand(16, 2)), d(real))
    (grad,) = torch.autograd.grad(loss, p)
    torch.testing.assert_close(gan.generator.p.detach(), p0 - grad, rtol=0, atol=1e-6)


class _NoLoss(AdversarialLoss):
    def d_loss(self, real_logits, fake_logits):
        return 0.0 * (real_logits.sum() + fake_logits.sum())

    def g_loss(self, fake_logits, real_logits=None):
        return 0.0 * fake_logits.sum()


class _FirstBias(Regularizer):
    """The penalty is the sum of the critic's last bias: its gradient there is exactly 1."""

    def __call__(self, critic, real, fake, labels=None, grad_scale=None):
        self.calls = getattr(self, "calls", 0) + 1
        return critic.net[-1].bias.sum()


@pytest.mark.parametrize("interval", [1, 3])
def test_lazy_penalty_runs_every_interval_steps_scaled_by_the_interval(interval):
    reg = _FirstBias(weight=0.5, interval=interval)
    gan = make_gan(loss=_NoLoss(), regularizers={"r": reg}, d_optimizer=SGD)
    biases = []
    gan.discriminator.net[-1].bias.register_hook(lambda g: biases.append(g.clone()))
    fit(gan, make_data(samples_per_epoch=32 * 7))  # D steps 0..6
    due = [s for s in range(7) if s % interval == 0]
    assert reg.calls == len(due)
    # each due step moves the bias by -weight * interval (SGD lr 1), the others not at all
    assert [float(g) for g in biases] == [0.5 * interval if s in due else 0.0 for s in range(7)]


def test_lazy_correction_scales_the_discriminator_lr_and_betas():
    from ganforge.regularizers import R1Penalty

    gan = make_gan(regularizers={"r1": R1Penalty(1.0, interval=4)}, lazy_correction=True)
    g_opt, d_opt = gan.configure_optimizers()[0]
    c = 4 / 5
    assert d_opt.param_groups[0]["lr"] == pytest.approx(1e-3 * c)
    assert d_opt.param_groups[0]["betas"] == pytest.approx((0.5**c, 0.999**c))
    assert g_opt.param_groups[0]["lr"] == 1e-3 and g_opt.param_groups[0]["betas"] == (0.5, 0.999)
    plain = make_gan(regularizers={"r1": R1Penalty(1.0, interval=4)})
    assert plain.configure_optimizers()[0][1].param_groups[0]["lr"] == 1e-3


def test_lazy_correction_refuses_penalties_on_different_intervals():
    from ganforge.regularizers import R1Penalty, R2Penalty

    with pytest.raises(ValueError, match="one regularisation interval"):
        make_gan(regularizers={"r1": R1Penalty(1.0, 4), "r2": R2Penalty(1.0, 2)}, lazy_correction=True)


def test_ema_with_zero_decay_tracks_the_generator_exactly():
    gan = make_gan(ema_decay=0.0)
    fit(gan, make_data())
    for a, b in zip(gan.generator.parameters(), gan.generator_ema.parameters()):
        assert torch.equal(a, b)


def test_ema_warmup_follows_its_formula():
    gan = make_gan(ema_decay=0.999, ema_warmup=True)
    ema0 = [p.detach().clone() for p in gan.generator_ema.parameters()]
    fit(gan, make_data(), max_steps=1)
    decay = min(0.999, (1 + 1) / (10 + 1))  # the generator has taken 1 step when it first runs
    for e0, g, e in zip(ema0, gan.generator.parameters(), gan.generator_ema.parameters()):
        torch.testing.assert_close(e, torch.lerp(e0, g.detach(), 1 - decay))


def test_ema_stays_float32_under_bf16_true_precision():
    gan = make_gan(ema_decay=0.999, ema_warmup=False)
    fit(gan, make_data(), max_steps=1, precision="bf16-true")
    g = [p.detach() for p in gan.generator.parameters()]
    assert {p.dtype for p in g} == {torch.bfloat16}
    ema = list(gan.generator_ema.parameters())
    assert {p.dtype for p in ema} == {torch.float32}
    # the EMA started from the generator as bf16 made it; one update of weight 0.001 would
    # round away in bf16 (8 bits of mantissa) and survives in float32
    torch.manual_seed(0)
    start = [p.to(torch.bfloat16).float() for p in make_gan().generator.parameters()]
    for e, s, p in zip(ema, start, g):
        torch.testing.assert_close(e, torch.lerp(s, p.float(), 0.001), rtol=0, atol=1e-7)


def test_sample_uses_ema_generator_is_reproducible_and_leaves_global_rng_alone():
    gan = make_gan()
    fit(gan, make_data(), max_steps=3)
    state = torch.get_rng_state()
    a = gan.sample(16, generator=torch.Generator().manual_seed(1))
    b = gan.sample(16, generator=torch.Generator().manual_seed(1))
    assert torch.equal(torch.get_rng_state(), state)
    assert a.shape == (16, 2) and torch.equal(a, b)
    z = torch.randn(4, 2)
    torch.testing.assert_close(gan.sample(4, z=z), gan.generator_ema(z))
    assert not torch.allclose(gan.sample(4, z=z), gan.generator(z).detach())


def test_conditional_sample_draws_its_labels_from_the_generator_given():
    torch.manual_seed(0)
    gan = make_gan(
        generator=cdcgan.Generator(16, 1, num_classes=10, latent_dim=8, width=4),
        discriminator=cdcgan.Discriminator(16, 1, num_classes=10, width=4),
    )
    state = torch.get_rng_state()
    a = gan.sample(32, generator=torch.Generator().manual_seed(3))
    b = gan.sample(32, generator=torch.Generator().manual_seed(3))
    assert torch.equal(a, b) and torch.equal(torch.get_rng_state(), state)
    # the same draws as latents then uniform classes from that generator, passed explicitly
    g = torch.Generator().manual_seed(3)
    z = torch.randn(32, 8, generator=g)
    labels = torch.randint(10, (32,), generator=g)
    assert len(labels.unique()) > 1
    torch.testing.assert_close(a, gan.sample(32, labels=labels, z=z))


def test_sample_without_ema_uses_the_training_generator():
    gan = make_gan(ema_decay=None)
    assert gan.generator_ema is None
    z = torch.randn(4, 2)
    torch.testing.assert_close(gan.sample(4, z=z), gan.generator(z).detach())


def test_gradient_clipping_bounds_each_update():
    gan = make_gan(g_optimizer=SGD, d_optimizer=SGD, grad_clip=1e-3)
    d0, g0 = flat(gan.discriminator), flat(gan.generator)
    fit(gan, make_data(), max_steps=1)
    assert 0 < torch.linalg.vector_norm(flat(gan.discriminator) - d0) <= 1e-3 + 1e-7
    assert 0 < torch.linalg.vector_norm(flat(gan.generator) - g0) <= 1e-3 + 1e-7  # the axis path


def test_schedulers_step_once_per_step_of_their_own_network():
    step_lr = functools.partial(torch.optim.lr_scheduler.StepLR, step_size=1, gamma=0.5)
    gan = make_gan(g_scheduler=step_lr, d_scheduler=step_lr, n_critic=2)
    fit(gan, make_data(samples_per_epoch=32 * 6), max_epochs=1)  # 6 D steps, 3 G steps
    g_opt, d_opt = gan.optimizers(use_pl_optimizer=False)
    assert g_opt.param_groups[0]["lr"] == pytest.approx(1e-3 * 0.5**3)
    assert d_opt.param_groups[0]["lr"] == pytest.approx(1e-3 * 0.5**6)


def test_bf16_mixed_precision_trains():
    gan = make_gan(loss=HingeLoss())
    fit(gan, make_data(), max_steps=3, precision="bf16-mixed")
    assert gan.g_steps == 3
    assert all(torch.isfinite(p).all() for p in gan.generator.parameters())


def test_fp16_autocast_with_a_penalty_matches_float32_on_the_first_step():
    # fp16 autocast with a grad scaler on the CPU (Lightning's "16-mixed" picks bf16 there),
    # an R1 penalty every step: the first updates of D (torch's optimizer) and of G (through
    # Lightning's) equal the float32 ones to fp16 accuracy, so both were unscaled exactly once
    from lightning.pytorch.plugins.precision import MixedPrecision

    from ganforge.regularizers import R1Penalty

    real = torch.randn(32, 2)
    moved = {}
    for name in ("fp32", "fp16"):
        scaler = torch.amp.GradScaler("cpu", init_scale=256.0)
        plugins = [MixedPrecision("16-mixed", "cpu", scaler)] if name == "fp16" else []
        gan = make_gan(regularizers={"r1": R1Penalty(10.0)}, g_optimizer=SGD, d_optimizer=SGD, ema_decay=None)
        d0, g0 = flat(gan.discriminator), flat(gan.generator)
        torch.manual_seed(1)
        fit(gan, FixedData(real), max_steps=1, plugins=plugins)
        moved[name] = (d0 - flat(gan.discriminator), g0 - flat(gan.generator))
    for fp16, fp32 in zip(moved["fp16"], moved["fp32"]):
        assert fp32.abs().max() > 0
        torch.testing.assert_close(fp16, fp32, rtol=2e-2, atol=2e-3)


def test_invalid_arguments_are_refused():
    with pytest.raises(ValueError, match="n_critic"):
        make_gan(n_critic=0)
    with pytest.raises(ValueError, match="ema_decay"):
        make_gan(ema_decay=1.5)
    gan = make_gan(g_optimizer=functools.partial(torch.optim.Adam, lr=0.0))
    with pytest.raises(ValueError, match="lr must be positive"):
        fit(gan, make_data(), max_steps=1)


def test_conditional_gan_passes_the_batch_labels_to_both_networks():
    seen = []
    torch.manual_seed(0)
    d = cdcgan.Discriminator(16, 1, num_classes=10, width=4)
    d.register_forward_pre_hook(lambda m, args: seen.append(args[1].clone()))
    gan = make_gan(
        generator=cdcgan.Generator(16, 1, num_classes=10, latent_dim=8, width=4),
        discriminator=d,
        g_optimizer=ADAM,
    )
    x = torch.rand(8, 1, 16, 16) * 2 - 1
    labels = torch.arange(8) % 10
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, labels), batch_size=8)
    fit(gan, loader, max_steps=1)
    assert len(seen) == 3 and all(torch.equal(s, labels) for s in seen)  # D: real, fake; G: fake
