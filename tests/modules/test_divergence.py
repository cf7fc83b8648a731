"""The divergence guard: a non-finite loss, gradient or weight stops the run, named, and no
checkpoint is written after it."""

from __future__ import annotations

import hashlib

import lightning as L
import pytest
import torch
from gan_parts import fit, make_data, make_gan
from lightning.pytorch.callbacks import ModelCheckpoint

from ganforge.losses import VanillaLoss
from ganforge.modules.divergence import DivergenceError


class NaNFromCall(VanillaLoss):
    """The discriminator's loss turns NaN from its ``n``-th call on (1-based)."""

    def __init__(self, n: int) -> None:
        super().__init__()
        self.n, self.calls = n, 0

    def d_loss(self, real_logits, fake_logits):
        self.calls += 1
        loss = super().d_loss(real_logits, fake_logits)
        return loss * float("nan") if self.calls >= self.n else loss


class Hashes(L.Callback):
    """The bytes of last.ckpt as each batch starts (after the previous batch's save)."""

    def __init__(self, path) -> None:
        self.path, self.seen = path, []

    def on_train_batch_start(self, trainer, *args) -> None:
        if self.path.exists():
            self.seen.append(hashlib.sha1(self.path.read_bytes()).hexdigest())


def test_a_nan_loss_stops_the_run_named_and_the_last_good_checkpoint_is_kept(tmp_path):
    # toys: 4 D steps per loader batch (batch 32 x 4 minibatches); checkpoints every 2 G steps
    gan = make_gan(loss=NaNFromCall(n=19), minibatch_size=32)
    ckpt = ModelCheckpoint(dirpath=tmp_path, every_n_train_steps=2, save_last=True)
    hashes = Hashes(tmp_path / "last.ckpt")
    with pytest.raises(DivergenceError) as err:
        fit(
            gan,
            make_data(batch_size=128, samples_per_epoch=128 * 20),
            enable_checkpointing=True,
            callbacks=[ckpt, hashes],
            log_every_n_steps=4,
        )
    message = str(err.value)
    assert "the loss of the discriminator was nan at its step 19, generator step 18" in message
    assert "detected at step 20" in message  # the next logged step: no read of the loss before
    assert f"ckpt_path={tmp_path / 'last.ckpt'}" in message
    # the checkpoint on disk is the one written before the NaN, bytes unchanged since
    assert hashes.seen and (tmp_path / "last.ckpt").exists()
    assert hashlib.sha1((tmp_path / "last.ckpt").read_bytes()).hexdigest() == hashes.seen[-1]
    state = torch.load(tmp_path / "last.ckpt", weights_only=True)
    assert state["global_step"] == 16  # saved every 2 G steps at a batch's end: 16 came before the NaN
    assert all(torch.isfinite(v).all() for v in state["state_dict"].values() if v.is_floating_point())


def test_an_infinite_gradient_with_a_finite_loss_is_named():
    gan = make_gan(minibatch_size=32)
    calls = {"n": 0}

    def poison(grad):
        calls["n"] += 1
        return grad * float("inf") if calls["n"] == 3 else grad

    gan.discriminator.net[0].weight.register_hook(poison)
    with pytest.raises(DivergenceError, match=r"train/discriminator_grad_norm=inf"):
        fit(gan, make_data(batch_size=128, samples_per_epoch=128 * 4), log_every_n_steps=1)


def test_without_logging_the_epoch_end_still_checks():
    gan = make_gan(loss=NaNFromCall(n=2), minibatch_size=32)
    with pytest.raises(DivergenceError, match="its step 2") as err:
        fit(gan, make_data(batch_size=128, samples_per_epoch=128 * 3), log_every_n_steps=0)
    assert "No checkpoint had been written yet" in str(err.value)


def test_weights_are_checked_before_a_checkpoint_is_written():
    gan = make_gan()
    with torch.no_grad():
        gan.generator_ema.net[0].bias[1] = float("nan")
    with pytest.raises(DivergenceError, match=r"generator_ema\.net\.0\.bias"):
        gan.check_finite(weights=True)
