"""DiffAugment and ADA: the transforms, gradients through them, ADA's p, and resuming with ADA on."""

from __future__ import annotations

import functools
from pathlib import Path

import pytest
import torch
from cli import TINY_DCGAN
from gan_parts import FixedData, MemoryLogger, fit
from torch import nn

from ganforge.augment import AdaptiveAugment, DiffAugment, build
from ganforge.augment.diffaugment import cutout, translation
from ganforge.augment.geometry import gather_pixels, reflect, rotate90_source, source_grid
from ganforge.losses import HingeLoss
from ganforge.modules.gan import GAN
from ganforge.nets import dcgan
from ganforge.pipeline import train
from ganforge.regularizers import R1Penalty

ADAM = functools.partial(torch.optim.Adam, lr=2e-4, betas=(0.5, 0.999))


def images(n=6, channels=3, size=8, seed=0):
    return torch.randn(n, channels, size, size, generator=torch.Generator().manual_seed(seed))


# ----------------------------------------------------------------------------- geometry
@pytest.mark.parametrize("k", [0, 1, 2, 3])
def test_quarter_turn_sources_match_torch_rot90(k):
    x = images()
    rows, cols = source_grid(len(x), 8, x.device)
    rows, cols = rotate90_source(rows, cols, torch.full((len(x),), k), 8)
    assert torch.equal(gather_pixels(x, rows, cols), torch.rot90(x, k, dims=(2, 3)))


def test_reflect_matches_reflect_padding():
    x = torch.arange(5.0).view(1, 1, 1, 5)
    padded = torch.nn.functional.pad(x, (3, 3, 0, 0), mode="reflect")[0, 0, 0]
    assert torch.equal(x[0, 0, 0, reflect(torch.arange(-3, 8), 5)], padded)


def test_translation_is_a_shift_with_zeros_moved_in():
    torch.manual_seed(1)
    x = images(n=32, channels=1) + 10.0  # no pixel is 0 before the shift
    y = translation(x)
    for a, b in zip(x, y):
        found = [
            (dy, dx)
            for dy in range(-1, 2)
            for dx in range(-1, 2)
            if torch.equal(b, torch.roll(a, (dy, dx), dims=(1, 2)) * _inside(dy, dx))
        ]
        assert len(found) == 1  # one shift of at most 8 * 1/8 = 1 pixel explains the output


def _inside(dy, dx, size=8):
    m = torch.ones(1, size, size)
    if dy > 0:
        m[:, :dy] = 0
    elif dy < 0:
        m[:, dy:] = 0
    if dx > 0:
        m[:, :, :dx] = 0
    elif dx < 0:
        m[:, :, dx:] = 0
    return m


def test_cutout_zeroes_at_most_a_square_of_half_the_side():
    torch.manual_seed(2)
    x = images(n=64, channels=2, size=16) + 10.0
    zero = cutout(x) == 0
    assert torch.equal(zero[:, 0], zero[:, 1])  # the same square on every channel
    counts = zero[:, 0].flatten(1).sum(1)
    assert counts.max() == 64 and counts.min() > 0  # 8 x 8 inside the image, cut by the border


def test_diffaugment_keeps_shapes_and_refuses_points_and_unknown_policies():
    assert DiffAugment()(images()).shape == (6, 3, 8, 8)
    with pytest.raises(ValueError, match=r"model\.augment=none"):
        DiffAugment()(torch.randn(4, 2))
    with pytest.raises(ValueError, match="translation"):
        DiffAugment("color,zoom")
    with pytest.raises(ValueError, match="none, diffaugment, ada"):
        build("adaa")


# ----------------------------------------------------------------------------- ADA pipeline
@pytest.mark.parametrize("channels", [1, 3])
def test_ada_at_p_zero_returns_its_input_bit_for_bit(channels):
    x = images(channels=channels)
    assert torch.equal(AdaptiveAugment(p=0.0)(x), x)


def test_ada_flip_alone_at_p_one_mirrors_about_half_the_images():
    torch.manual_seed(3)
    off = dict.fromkeys(["rotate90", "xint", "brightness", "contrast", "lumaflip", "hue", "saturation"], 0.0)
    x = images(n=400, channels=1)
    y = AdaptiveAugment(p=1.0, **off)(x)
    flipped = torch.tensor([torch.equal(b, a.flip(-1)) for a, b in zip(x, y)])
    same = torch.tensor([torch.equal(b, a) for a, b in zip(x, y)])
    assert bool((flipped | same).all())
    assert 0.4 < flipped.float().mean() < 0.6  # applied with p = 1, then a fair coin, as the paper's


def test_ada_color_on_rgb_keeps_gray_pixels_gray_without_hue_and_saturation():
    # brightness and contrast act on every channel alike; luma flip keeps gray on the gray axis
    torch.manual_seed(4)
    gray = torch.rand(16, 1, 8, 8).expand(-1, 3, -1, -1) * 2 - 1
    off = dict.fromkeys(["xflip", "rotate90", "xint", "hue", "saturation"], 0.0)
    y = AdaptiveAugment(p=1.0, **off)(gray)
    torch.testing.assert_close(y[:, 0], y[:, 1], atol=1e-5, rtol=0)
    assert not torch.allclose(y, gray)


def test_ada_hue_rotation_alone_preserves_the_luma_and_the_norm_around_it():
    torch.manual_seed(5)
    off = dict.fromkeys(
        ["xflip", "rotate90", "xint", "brightness", "contrast", "lumaflip", "saturation"], 0.0
    )
    x = images(n=16)
    y = AdaptiveAugment(p=1.0, **off)(x)
    torch.testing.assert_close(y.sum(1), x.sum(1), atol=1e-4, rtol=0)  # a rotation about (1, 1, 1)
    torch.testing.assert_close(y.norm(dim=1), x.norm(dim=1), atol=1e-4, rtol=0)


# ----------------------------------------------------------------------------- through the GAN
def small_gan(**kwargs) -> GAN:
    torch.manual_seed(0)
    return GAN(
        dcgan.Generator(image_size=16, channels=1, latent_dim=8, width=8),
        dcgan.Discriminator(image_size=16, channels=1, width=8, norm="none"),
        ADAM,
        ADAM,
        HingeLoss(),
        ema_decay=None,
        **kwargs,
    )


@pytest.mark.parametrize("augment", ["diffaugment", "ada"])
def test_the_generator_gets_gradients_through_augmented_fakes(augment):
    options = {"p": 1.0, "adaptive": False} if augment == "ada" else None
    gan = small_gan(augment=augment, augment_options=options)
    torch.manual_seed(1)
    fake = gan.generator(torch.randn(8, 8))
    critic = gan.seen_by_d(gan.discriminator)
    loss = gan.loss.g_loss(critic(fake), None)
    grads = torch.autograd.grad(loss, list(gan.generator.parameters()))
    assert all(torch.isfinite(g).all() for g in grads)
    assert sum(float(g.abs().sum()) for g in grads) > 0
    # and it is the gradient of D on the augmented image: the augmentation is not skipped
    torch.manual_seed(1)
    plain = torch.autograd.grad(
        gan.loss.g_loss(gan.discriminator(gan.generator(torch.randn(8, 8))), None),
        list(gan.generator.parameters()),
    )
    assert any(not torch.allclose(a, b) for a, b in zip(grads, plain))


def test_r1_differentiates_through_the_augmentation():
    gan = small_gan(augment="ada", augment_options={"p": 1.0, "adaptive": False})
    real = torch.rand(4, 1, 16, 16) * 2 - 1
    critic = gan.seen_by_d(gan.discriminator)
    penalty = R1Penalty(1.0)(critic, real, real)
    (grad,) = torch.autograd.grad(penalty, [next(gan.discriminator.parameters())])
    assert penalty > 0 and torch.isfinite(grad).all() and grad.abs().sum() > 0


class RiggedCritic(nn.Module):
    """Scores every image ``sign`` x (1 + a tiny learnable offset): r_t is ``sign`` throughout."""

    def __init__(self, sign: float) -> None:
        super().__init__()
        self.sign = sign
        self.w = nn.Parameter(torch.zeros(()))

    def forward(self, x, labels=None):
        return self.sign * (1.0 + 1e-3 * torch.tanh(self.w + 0 * x.flatten(1).sum(1)))


@pytest.mark.parametrize(("sign", "expected"), [(1.0, "rises"), (-1.0, "stays at 0")])
def test_ada_p_moves_at_the_documented_speed(sign, expected):
    batch, interval, speed_kimg, steps = 16, 4, 2.0, 24
    gan = GAN(
        dcgan.Generator(image_size=16, channels=1, latent_dim=8, width=8),
        RiggedCritic(sign),
        ADAM,
        ADAM,
        HingeLoss(),
        ema_decay=None,
        augment="ada",
        augment_options={"interval": interval, "speed_kimg": speed_kimg},
    )
    logger = MemoryLogger()
    fit(
        gan,
        FixedData(torch.rand(batch, 1, 16, 16) * 2 - 1, batches=steps),
        logger=logger,
        log_every_n_steps=1,
    )
    p = logger.values_of("aug/p")
    rt = logger.values_of("aug/rt")
    assert len(p) == steps
    # after D step s, p = (adjustments so far) x batch x interval / (speed_kimg x 1000)
    per_adjust = batch * interval / (speed_kimg * 1000)
    want = [(s // interval) * per_adjust if sign > 0 else 0.0 for s in range(1, steps + 1)]
    assert p == pytest.approx(want, abs=1e-6), expected
    assert rt[interval - 1 :: interval] == pytest.approx([sign] * (steps // interval))


def test_p_is_clamped_to_one():
    ada = AdaptiveAugment(interval=1, speed_kimg=0.001)
    ada.observe(torch.ones(8))
    ada.adjust(images=8)
    assert float(ada.p) == 1.0 and float(ada.rt) == 1.0


# ----------------------------------------------------------------------------- with every loss
LOSSES = sorted(p.stem for p in (Path(__file__).resolve().parents[1] / "conf" / "loss").glob("*.yaml"))


@pytest.mark.parametrize("loss", LOSSES)
def test_augmentation_lecam_and_bcr_train_with_every_loss(compose, loss):
    cfg = compose(
        [
            *TINY_DCGAN,
            f"loss={loss}",
            "model.augment=diffaugment",
            "+reg=[lecam,bcr]",
            "trainer=debug",
            "trainer.limit_train_batches=2",
            "trainer.max_epochs=1",
            "trainer.log_every_n_steps=1",
            "trainer.detect_anomaly=false",
            "metrics=none",
            "callbacks=none",
            "logger=none",
        ]
    )
    _, objects = train(cfg)
    gan = objects["model"]
    assert set(gan.regularizers) >= {"lecam", "bcr"} and gan.d_steps == 2
    assert gan.regularizers["lecam"].anchor_real is not None  # the penalty ran
