"""Schedules: hyperparameters set from the run's counters; and the EMA half-life it schedules."""

from __future__ import annotations

import math

import lightning as L
import pytest
import torch
from gan_parts import MemoryLogger, fit, make_data, make_gan
from lightning.pytorch.callbacks import ModelCheckpoint

from ganforge.callbacks.schedules import Schedule, Schedules
from ganforge.regularizers import R1Penalty

# make_data(): 10 loader batches of 32 points; one D and one G step each
BATCH, BATCHES = 32, 10


def test_cosine_and_linear_values_at_start_middle_end_and_after():
    cos = Schedule("generator.lr", 2e-4, 5e-5, kimg=20000)
    assert cos.value(0, 0) == pytest.approx(2e-4)
    assert cos.value(5e6, 0) == pytest.approx(2e-4 - 1.5e-4 * 0.5 * (1 - math.sqrt(0.5)))  # a quarter in
    assert cos.value(1e7, 0) == pytest.approx(1.25e-4)  # halfway: the mean
    assert cos.value(2e7, 0) == pytest.approx(5e-5)
    assert cos.value(9e7, 0) == pytest.approx(5e-5)  # held after the budget
    line = Schedule("r1.weight", 0.05, 0.005, steps=100, shape="linear")
    assert [line.value(1e9, s) for s in (0, 25, 100, 200)] == pytest.approx([0.05, 0.03875, 0.005, 0.005])


@pytest.mark.parametrize(
    ("entry", "problem"),
    [
        (dict(target="generator.momentum", start=1, end=2, kimg=1), "write <network>"),
        (dict(target="generator.lr", start=1e-3, end=1e-4), "kimg or as steps"),
        (dict(target="generator.lr", start=1e-3, end=1e-4, kimg=1, steps=5), "kimg or as steps"),
        (dict(target="generator.lr", start=1e-3, end=1e-4, kimg=0), "must be positive"),
        (dict(target="generator.lr", start=1e-3, end=1e-4, kimg=1, shape="exp"), "shape must be"),
        (dict(target="generator.beta2", start=0.9, end=1.0, kimg=1), "out of range"),
        (dict(target="generator.lr", start=0.0, end=1e-4, kimg=1), "out of range"),
    ],
)
def test_bad_entries_are_named(entry, problem):
    with pytest.raises(ValueError, match=problem):
        Schedules([entry])


def test_a_target_scheduled_twice_is_refused():
    with pytest.raises(ValueError, match="more than once"):
        Schedules({k: dict(target="r1.weight", start=1, end=0, kimg=k) for k in (1, 2)})


def test_unknown_names_and_conflicts_are_named_at_fit_start():
    gan = make_gan(regularizers={"r1": R1Penalty(1.0)})
    cases = [
        (dict(target="critic.lr", start=1e-3, end=1e-4, kimg=1), "no network named 'critic'"),
        (dict(target="r2.weight", start=1.0, end=0.0, kimg=1), r"no regularizer named 'r2'.*\['r1'\]"),
        (dict(target="generator.ema_halflife_kimg", start=0, end=1, kimg=1), "set model.ema_halflife_kimg"),
    ]
    for entry, problem in cases:
        with pytest.raises(ValueError, match=problem):
            Schedules([entry]).on_fit_start(None, gan)
    scheduled = make_gan(g_scheduler=lambda optimizer: torch.optim.lr_scheduler.StepLR(optimizer, 1))
    with pytest.raises(ValueError, match="also has an LR scheduler"):
        Schedules([dict(target="generator.lr", start=1e-3, end=1e-4, kimg=1)]).on_fit_start(None, scheduled)


def _entries(kimg=BATCH * BATCHES / 1000):
    return {
        "lr_g": dict(target="generator.lr", start=1e-3, end=1e-4, kimg=kimg),
        "beta2_d": dict(target="discriminator.beta2", start=0.9, end=0.99, kimg=kimg),
        "gamma": dict(target="r1.weight", start=2.0, end=0.5, kimg=kimg, shape="linear"),
        "ema": dict(target="generator.ema_halflife_kimg", start=0.0, end=0.1, kimg=kimg),
    }


def _gan():
    return make_gan(regularizers={"r1": R1Penalty(2.0)}, ema_halflife_kimg=0.0)


def test_a_fit_moves_the_optimizers_the_penalty_and_the_ema_and_logs_them():
    gan, logger, schedules = _gan(), MemoryLogger(), Schedules(_entries())
    fit(gan, make_data(), logger=logger, log_every_n_steps=2, callbacks=[schedules])
    expected = {k: Schedule(**e) for k, e in _entries().items()}
    last = BATCH * (BATCHES - 1)  # images seen when the last batch started
    g_opt, d_opt = gan.network("generator").optimizer, gan.network("discriminator").optimizer
    assert g_opt.param_groups[0]["lr"] == pytest.approx(expected["lr_g"].value(last, 0)) != 1e-3
    assert d_opt.param_groups[0]["betas"][1] == pytest.approx(expected["beta2_d"].value(last, 0))
    assert d_opt.param_groups[0]["betas"][0] == 0.5  # beta1 left alone
    assert gan.regularizers["r1"].weight == pytest.approx(expected["gamma"].value(last, 0)) != 2.0
    assert gan.network("generator").ema_halflife_kimg == pytest.approx(expected["ema"].value(last, 0))
    # logged at the steps train/* is logged at, each the value the step trained with
    steps = logger.steps_of("sched/generator_lr")
    assert steps == logger.steps_of("lr-generator") == [2, 4, 6, 8, 10]
    for key, name in [("lr_g", "generator_lr"), ("beta2_d", "discriminator_beta2"), ("gamma", "r1_weight")]:
        hand = [expected[key].value(BATCH * (s - 1), 0) for s in steps]
        assert logger.values_of(f"sched/{name}") == pytest.approx(hand)
    assert logger.values_of("lr-generator") == pytest.approx(logger.values_of("sched/generator_lr"))


def test_lazily_regularised_networks_keep_their_correction():
    gan = make_gan(regularizers={"r1": R1Penalty(1.0, interval=4)}, lazy_correction=True)
    schedules = Schedules([dict(target="discriminator.lr", start=1e-3, end=1e-4, kimg=1)])
    fit(gan, make_data(), max_steps=3, callbacks=[schedules])
    c = 4 / 5
    lr = gan.network("discriminator").optimizer.param_groups[0]["lr"]
    assert lr == pytest.approx(c * schedules.schedules[0].value(2 * BATCH, 2))


class _Snapshots(L.Callback):
    """The generator and its EMA after every batch."""

    def __init__(self) -> None:
        self.g, self.ema = [], []

    def on_train_batch_end(self, trainer, module, *args) -> None:
        self.g.append([p.detach().clone() for p in module.generator.parameters()])
        self.ema.append([p.detach().clone() for p in module.generator_ema.parameters()])


def test_resumed_run_sets_and_averages_what_the_uninterrupted_run_does(tmp_path):
    whole, whole_log = _gan(), MemoryLogger()
    every_4 = ModelCheckpoint(dirpath=tmp_path, every_n_train_steps=4, save_top_k=-1)
    fit(whole, make_data(), logger=whole_log, log_every_n_steps=1, callbacks=[Schedules(_entries()), every_4],
        enable_checkpointing=True)  # fmt: skip
    (mid,) = tmp_path.glob("*step=4.ckpt")  # mid-epoch
    resumed, resumed_log = _gan(), MemoryLogger()
    fit(resumed, make_data(), ckpt_path=mid, logger=resumed_log, log_every_n_steps=1,
        callbacks=[Schedules(_entries())])  # fmt: skip
    assert resumed_log.steps_of("sched/generator_lr") == list(range(5, 11))
    for name in ("generator_lr", "discriminator_beta2", "r1_weight", "generator_ema_halflife_kimg"):
        assert resumed_log.values_of(f"sched/{name}") == whole_log.values_of(f"sched/{name}")[4:]
    for a, b in zip(whole.generator_ema.parameters(), resumed.generator_ema.parameters()):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


# ----------------------------------------------------------------- the EMA half-life
def test_ema_beta_follows_the_half_life_and_its_ramp():
    net = make_gan(ema_halflife_kimg=0.5, ema_rampup=0.05).network("generator")
    assert net.ema_beta(1, images=0, batch=32) == 0.0  # the ramp starts at zero: a copy
    assert net.ema_beta(101, images=3200, batch=32) == pytest.approx(0.5 ** (32 / 160))  # 3200 * 0.05
    assert net.ema_beta(626, images=20000, batch=32) == pytest.approx(0.5 ** (32 / 500))  # capped
    plain = make_gan(ema_halflife_kimg=0.5).network("generator")
    assert plain.ema_beta(1, images=0, batch=32) == pytest.approx(0.5 ** (32 / 500))
    with pytest.raises(ValueError, match="pass ema_images"):
        plain.ema_beta(1, images=0, batch=0)


def test_the_ema_of_a_fit_is_the_hand_computed_average():
    gan, snaps = make_gan(ema_halflife_kimg=0.5, ema_rampup=1.0, ema_warmup=True), _Snapshots()
    ema0 = [p.detach().clone() for p in gan.generator_ema.parameters()]
    fit(gan, make_data(), max_steps=3, callbacks=[snaps])
    # before each step 0, 32, 64 images were seen; half-life min(500, seen * 1.0) images
    betas = [0.0, 0.5 ** (32 / 32), 0.5 ** (32 / 64)]
    ema = ema0
    for beta, g, got in zip(betas, snaps.g, snaps.ema):
        ema = [torch.lerp(e, p, 1 - beta) for e, p in zip(ema, g)]
        for a, b in zip(ema, got):
            torch.testing.assert_close(a, b)
    assert all(torch.equal(a, b) for a, b in zip(snaps.g[0], snaps.ema[0]))  # beta 0: a copy


def test_each_generator_step_stands_for_its_critic_steps():
    gan, snaps = make_gan(ema_halflife_kimg=0.1, n_critic=2), _Snapshots()
    ema0 = [p.detach().clone() for p in gan.generator_ema.parameters()]
    fit(gan, make_data(), max_steps=1, callbacks=[snaps])  # 2 loader batches: D, D+G
    beta = 0.5 ** (64 / 100)
    for e0, g, got in zip(ema0, snaps.g[-1], snaps.ema[-1]):
        torch.testing.assert_close(got, torch.lerp(e0, g, 1 - beta))


def test_a_ramp_without_a_half_life_is_refused():
    with pytest.raises(ValueError, match="set ema_halflife_kimg"):
        make_gan(ema_rampup=0.05)
    with pytest.raises(ValueError, match="ema_halflife_kimg must be"):
        make_gan(ema_halflife_kimg=-1.0)
