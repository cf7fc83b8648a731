"""AdversarialModule: named networks, the step call, the step axis, logging, counters, checkpoints.

``TwoCritics`` is a family of three networks (a generator against two discriminators
stepped together on one loss), the shape of CycleGAN's steps: the base must hold it
without knowing anything of it.
"""

from __future__ import annotations

import pytest
import torch
from gan_parts import ADAM, SGD, MemoryLogger, fit, flat, make_data, make_gan
from torch import nn

from ganforge.losses import VanillaLoss
from ganforge.modules.base import AdversarialModule
from ganforge.modules.checkpoint_format import FORMAT
from ganforge.nets import mlp


class TwoCritics(AdversarialModule):
    def __init__(self, ema_decay=0.9):
        super().__init__()
        torch.manual_seed(0)
        self.add_network("generator", mlp.Generator((2,), 2, 8, 2), ADAM, ema_decay=ema_decay, axis=True)
        for name in ("critic_a", "critic_b"):
            self.add_network(name, mlp.Discriminator((2,), 8, 2), SGD)
        self.loss = VanillaLoss()

    def training_step(self, batch, batch_idx):
        for real, _ in self.minibatches(batch):
            fake = self.generator(torch.randn(len(real), 2)).detach()
            d_loss = sum(
                self.loss.d_loss(self.wrapped(n)(real), self.wrapped(n)(fake))
                for n in ("critic_a", "critic_b")
            )
            self.record(d_loss=d_loss)
            self.step(["critic_a", "critic_b"], d_loss, images=len(real))
            with self.frozen("critic_a", "critic_b"):
                fake = self.wrapped("generator")(torch.randn(len(real), 2))
                g_loss = self.loss.g_loss(self.critic_a(fake)) + self.loss.g_loss(self.critic_b(fake))
                self.step("generator", g_loss)


def test_a_family_of_three_networks_gets_an_optimizer_each_and_steps_two_on_one_loss():
    module = TwoCritics()
    a0, b0 = flat(module.critic_a), flat(module.critic_b)
    trainer = fit(module, make_data(samples_per_epoch=32 * 5))
    assert len(trainer.optimizers) == 3
    assert module.step_counts == {"generator": 5, "critic_a": 5, "critic_b": 5}
    assert module.image_counts == {"generator": 0, "critic_a": 160, "critic_b": 160} and module.kimg == 0.16
    assert trainer.global_step == 5  # the axis network's steps only
    assert not torch.equal(a0, flat(module.critic_a)) and not torch.equal(b0, flat(module.critic_b))
    assert set(module.state_dict()) >= {"generator_ema.net.0.weight", "critic_a.net.0.weight"}
    assert module.networks.keys() == {"generator", "critic_a", "critic_b"}


def test_counters_and_random_state_go_through_a_checkpoint(tmp_path):
    module = TwoCritics()
    trainer = fit(module, make_data(samples_per_epoch=32 * 3))
    trainer.save_checkpoint(tmp_path / "a.ckpt")
    ckpt = torch.load(tmp_path / "a.ckpt", weights_only=True)
    assert ckpt["ganforge"]["format"] == FORMAT and ckpt["ganforge"]["steps"]["critic_b"] == 3
    fresh = TwoCritics()
    trainer = fit(fresh, make_data(samples_per_epoch=32 * 3), max_epochs=2, ckpt_path=tmp_path / "a.ckpt")
    assert fresh.step_counts == {"generator": 6, "critic_a": 6, "critic_b": 6}
    assert fresh.image_counts["critic_a"] == 192 and trainer.global_step == 6


def test_only_one_network_sets_the_axis_and_names_are_unique():
    module = AdversarialModule()
    module.add_network("g", nn.Linear(1, 1), ADAM, axis=True)
    with pytest.raises(ValueError, match="only one network"):
        module.add_network("h", nn.Linear(1, 1), ADAM, axis=True)
    with pytest.raises(ValueError, match="already registered"):
        module.add_network("g", nn.Linear(1, 1), ADAM)


def test_frozen_restores_what_was_trainable_and_leaves_user_frozen_parameters():
    module = TwoCritics()
    first = module.critic_a.net[0]
    first.weight.requires_grad_(False)
    with module.frozen("critic_a"):
        assert not any(p.requires_grad for p in module.critic_a.parameters())
        assert all(p.requires_grad for p in module.critic_b.parameters())
    assert not first.weight.requires_grad and first.bias.requires_grad


# ----------------------------------------------------------------- logging on the step axis
def test_statistics_are_written_once_per_logged_generator_step_at_that_step():
    gan = make_gan(n_critic=2, minibatch_size=8)
    logger = MemoryLogger()
    # 8 loader batches of 32 = 32 D steps, 16 G steps; every 4th G step is logged
    fit(gan, make_data(samples_per_epoch=256), logger=logger, log_every_n_steps=4)
    assert logger.steps_of("train/d_loss") == [4, 8, 12, 16]
    assert logger.steps_of("train/g_loss") == [4, 8, 12, 16]
    assert logger.steps_of("lr-generator") == logger.steps_of("lr-discriminator") == [4, 8, 12, 16]
    assert logger.values_of("train/kimg") == pytest.approx([0.064, 0.128, 0.192, 0.256])
    assert logger.values_of("lr-generator") == [1e-3] * 4
    # every write is one step of the axis, never a loader-batch count
    assert {step for step, _ in logger.records} == {4, 8, 12, 16}


def test_logged_gradient_norms_are_those_of_the_step():
    # SGD at lr 1: the update is minus the gradient, so its norm is the gradient's
    gan = make_gan(g_optimizer=SGD, d_optimizer=SGD)
    logger = MemoryLogger()
    d0, g0 = flat(gan.discriminator), flat(gan.generator)
    fit(gan, make_data(), max_steps=1, logger=logger, log_every_n_steps=1)
    (d_norm,) = logger.values_of("train/discriminator_grad_norm")
    (g_norm,) = logger.values_of("train/generator_grad_norm")
    assert d_norm == pytest.approx(float(torch.linalg.vector_norm(d0 - flat(gan.discriminator))), rel=1e-5)
    assert g_norm == pytest.approx(float(torch.linalg.vector_norm(g0 - flat(gan.generator))), rel=1e-5)


def test_adversarial_loss_and_penalty_are_logged_apart():
    from ganforge.regularizers import R1Penalty

    gan = make_gan(regularizers={"r1": R1Penalty(weight=100.0, interval=1)})
    logger = MemoryLogger()
    fit(gan, make_data(), max_steps=2, logger=logger, log_every_n_steps=1)
    d_loss, r1 = logger.values_of("train/d_loss"), logger.values_of("train/reg/r1")
    assert len(d_loss) == len(r1) == 2 and all(v > 0 for v in r1)
    # the vanilla D loss of fresh nets is near 2 log 2 whatever the penalty weighs
    assert d_loss == pytest.approx([1.386] * 2, abs=0.1)


def test_scheduled_and_unscheduled_optimizers_are_named_by_network():
    import functools

    step_lr = functools.partial(torch.optim.lr_scheduler.StepLR, step_size=1, gamma=0.5)
    logger = MemoryLogger()
    fit(make_gan(g_scheduler=step_lr), make_data(), max_steps=2, logger=logger, log_every_n_steps=1)
    assert logger.values_of("lr-generator") == pytest.approx([5e-4, 2.5e-4])
    assert logger.values_of("lr-discriminator") == [1e-3, 1e-3]
