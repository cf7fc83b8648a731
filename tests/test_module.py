"""The GAN LightningModule: the D/G schedule, counters, budgets, EMA, sampling, precision."""

from __future__ import annotations

import functools

import lightning as L
import pytest
import torch

from ganforge.data.toy2d import Toy2DDataModule
from ganforge.losses import HingeLoss, VanillaLoss
from ganforge.module import GAN
from ganforge.nets import mlp


def make_gan(**kwargs) -> GAN:
    torch.manual_seed(0)
    defaults = dict(
        generator=mlp.Generator((2,), latent_dim=2, hidden=16, depth=2),
        discriminator=mlp.Discriminator((2,), hidden=16, depth=2),
        g_optimizer=functools.partial(torch.optim.Adam, lr=1e-3, betas=(0.5, 0.999)),
        d_optimizer=functools.partial(torch.optim.Adam, lr=1e-3, betas=(0.5, 0.999)),
        loss=VanillaLoss(),
    )
    defaults.update(kwargs)
    return GAN(**defaults)


def make_data(batch_size=32, samples_per_epoch=320, **kwargs) -> Toy2DDataModule:
    return Toy2DDataModule(kind="ring", batch_size=batch_size, samples_per_epoch=samples_per_epoch, **kwargs)


def fit(gan, dm, **trainer_kwargs) -> L.Trainer:
    defaults = dict(
        accelerator="cpu",
        devices=1,
        max_epochs=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    defaults.update(trainer_kwargs)
    trainer = L.Trainer(**defaults)
    trainer.fit(gan, datamodule=dm)
    return trainer


def test_one_generator_step_per_n_critic_discriminator_steps():
    gan = make_gan(n_critic=3)
    trainer = fit(gan, make_data())  # 10 batches of 32
    assert gan.d_steps == 10
    assert gan.g_steps == 10 // 3
    assert trainer.global_step == gan.g_steps  # global_step counts generator steps
    assert gan.images_seen == 320


def test_loader_batches_are_split_into_minibatches():
    gan = make_gan(minibatch_size=8, n_critic=2)
    fit(gan, make_data(batch_size=32))  # 10 loader batches, 4 minibatches each
    assert gan.d_steps == 40
    assert gan.g_steps == 20
    assert gan.images_seen == 320


@pytest.mark.parametrize("minibatch_size", [None, 8])
def test_max_steps_counts_generator_steps_exactly(minibatch_size):
    gan = make_gan(minibatch_size=minibatch_size)
    trainer = fit(gan, make_data(samples_per_epoch=3200), max_steps=7, max_epochs=-1)
    assert gan.g_steps == 7
    assert trainer.global_step == 7


def test_max_kimg_stops_after_that_many_real_images():
    gan = make_gan(max_kimg=0.128)  # 128 images = 4 batches of 32
    fit(gan, make_data(samples_per_epoch=3200), max_epochs=-1)
    assert gan.images_seen == 128


def test_both_networks_learn_and_discriminator_gets_no_gradient_from_the_generator_step():
    gan = make_gan()
    g0 = [p.detach().clone() for p in gan.generator.parameters()]
    d0 = [p.detach().clone() for p in gan.discriminator.parameters()]
    fit(gan, make_data(), max_steps=1)
    assert all(not torch.equal(a, b) for a, b in zip(g0, gan.generator.parameters()))
    assert all(not torch.equal(a, b) for a, b in zip(d0, gan.discriminator.parameters()))
    # requires_grad restored after the G step; D's grads are those of its own step
    assert all(p.requires_grad for p in gan.discriminator.parameters())


def test_generator_step_does_not_touch_discriminator_grads():
    gan = make_gan()
    trainer = fit(gan, make_data(), max_steps=1)
    assert trainer.global_step == 1
    d_grads = [p.grad.clone() for p in gan.discriminator.parameters()]
    x, _ = next(iter(make_data().train_dataloader()))
    gan._stats = {}
    gan._g_step(x, None, log=False)
    # G's backward ran through D, but D's gradients are still those of D's last step
    assert all(torch.equal(a, p.grad) for a, p in zip(d_grads, gan.discriminator.parameters()))


def test_a_frozen_discriminator_parameter_stays_frozen_through_generator_steps():
    gan = make_gan()
    first = gan.discriminator.net[0]
    first.weight.requires_grad_(False)  # e.g. a pretrained feature layer the user froze
    before = first.weight.detach().clone()
    fit(gan, make_data(), max_steps=3)
    assert not first.weight.requires_grad and torch.equal(first.weight, before)
    assert first.bias.requires_grad and not torch.equal(first.bias, torch.zeros_like(first.bias))


def test_ema_with_zero_decay_tracks_the_generator_exactly():
    gan = make_gan(ema_decay=0.0)
    fit(gan, make_data())
    for a, b in zip(gan.generator.parameters(), gan.generator_ema.parameters()):
        assert torch.equal(a, b)


def test_ema_warmup_follows_its_formula():
    gan = make_gan(ema_decay=0.999, ema_warmup=True)
    ema0 = [p.detach().clone() for p in gan.generator_ema.parameters()]
    fit(gan, make_data(), max_steps=1)
    decay = min(0.999, (1 + 1) / (10 + 1))  # g_steps is 1 when the first update runs
    for e0, g, e in zip(ema0, gan.generator.parameters(), gan.generator_ema.parameters()):
        torch.testing.assert_close(e, torch.lerp(e0, g.detach(), 1 - decay))


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


def test_sample_without_ema_uses_the_training_generator():
    gan = make_gan(ema_decay=None)
    assert gan.generator_ema is None
    z = torch.randn(4, 2)
    torch.testing.assert_close(gan.sample(4, z=z), gan.generator(z).detach())


def test_gradient_clipping_bounds_each_update():
    sgd = functools.partial(torch.optim.SGD, lr=1.0)
    gan = make_gan(g_optimizer=sgd, d_optimizer=sgd, grad_clip=1e-3)
    d0 = torch.cat([p.detach().flatten().clone() for p in gan.discriminator.parameters()])
    fit(gan, make_data(), max_steps=1)
    d1 = torch.cat([p.detach().flatten() for p in gan.discriminator.parameters()])
    assert 0 < torch.linalg.vector_norm(d1 - d0) <= 1e-3 + 1e-7


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


def test_fp16_loss_scaling_path_steps_and_unscales():
    # fp16 autocast needs a GPU; the scaler logic is exercised with the CPU scaler
    gan = make_gan(grad_clip=10.0)
    gan._scaler = torch.amp.GradScaler("cpu", init_scale=1024.0)
    gan._stats = {}
    params = list(gan.discriminator.parameters())
    opt = torch.optim.SGD(params, lr=0.1)
    before = [p.detach().clone() for p in params]
    x = torch.randn(8, 2)
    norm = gan._backward_step(gan.discriminator(x).mean(), opt, params, log=True)
    # the norm is of the unscaled gradients: the same loss without a scaler gives it
    assert any(not torch.equal(a, b) for a, b in zip(before, params))
    for p, b in zip(params, before):
        p.data.copy_(b)
    gan._scaler = None
    norm_plain = gan._backward_step(gan.discriminator(x).mean(), opt, params, log=True)
    torch.testing.assert_close(norm, norm_plain)


def test_loading_a_foreign_checkpoint_is_refused():
    gan = make_gan()
    with pytest.raises(ValueError, match="not written by ganforge"):
        gan.on_load_checkpoint({"state_dict": {}})


def test_invalid_arguments_are_refused():
    with pytest.raises(ValueError, match="n_critic"):
        make_gan(n_critic=0)
    with pytest.raises(ValueError, match="ema_decay"):
        make_gan(ema_decay=1.5)
    gan = make_gan(g_optimizer=functools.partial(torch.optim.Adam, lr=0.0))
    with pytest.raises(ValueError, match="lr must be positive"):
        fit(gan, make_data(), max_steps=1)
