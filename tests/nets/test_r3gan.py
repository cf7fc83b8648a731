"""R3GAN nets: shapes, fix-up init, no normalisation, low-pass resampling, conditioning, size."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from gan_parts import one_iteration
from torch import nn

from ganforge.losses import RelativisticPairingLoss
from ganforge.nets.r3gan import (
    ACTIVATION_GAIN,
    Discriminator,
    Downsample,
    Generator,
    ResidualBlock,
    Upsample,
)
from ganforge.regularizers import R1Penalty, R2Penalty

LATENT, CLASSES = 8, 5
TINY = dict(width=4, cardinality=2, blocks=1)


def _nets(size=16, channels=3, num_classes=None, **kw):
    torch.manual_seed(0)
    kw = {**TINY, **kw}
    g = Generator(size, channels, latent_dim=LATENT, num_classes=num_classes, **kw)
    return g, Discriminator(size, channels, num_classes=num_classes, **kw)


@pytest.mark.parametrize("num_classes", [None, CLASSES])
@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("size", [32, 64])
def test_shapes(size, channels, num_classes):
    g, d = _nets(size, channels, num_classes)
    y = torch.arange(2) if num_classes else None
    x = g(torch.randn(2, LATENT), y)
    assert x.shape == (2, channels, size, size)
    assert d(x, y).shape == (2,)
    assert g.num_classes == d.num_classes == (num_classes or 0) and g.latent_dim == LATENT


def test_per_stage_widths_cardinalities_and_blocks():
    # the official FFHQ-64 layout, scaled down: the last stage halves width and groups
    g, d = _nets(32, 3, widths=[8, 8, 8, 4], cardinality=[4, 4, 4, 2], blocks=[1, 2, 2, 1])
    assert [sum(isinstance(m, ResidualBlock) for m in s) for s in g.stages] == [1, 2, 2, 1]
    assert g.stages[-1][-1].grouped.groups == 2 and g.stages[-1][-1].expand.in_channels == 4
    assert d.stages[0][0].expand.in_channels == 4  # D runs the lists from the image down
    assert d(g(torch.randn(2, LATENT))).shape == (2,)


def test_residual_blocks_start_as_the_identity_with_scaled_branches():
    block = ResidualBlock(64, cardinality=4, expansion=2, num_blocks=8)
    x = torch.randn(2, 64, 4, 4)
    assert torch.equal(block(x), x)  # the branch's last conv is zero
    # fix-up scaling of the other two: activation gain x L^(-1/(2m-2)), L=8 blocks, m=3 layers
    gain = ACTIVATION_GAIN * 8 ** (-1 / 4)
    assert block.expand.weight.std().item() == pytest.approx(gain / math.sqrt(64), rel=0.05)
    assert block.grouped.weight.std().item() == pytest.approx(gain / math.sqrt(32 * 9), rel=0.05)


def test_no_normalisation_and_bias_free_weights_anywhere():
    for net in _nets(num_classes=CLASSES):
        for m in net.modules():
            assert not isinstance(m, (nn.BatchNorm2d, nn.GroupNorm, nn.LayerNorm, nn.InstanceNorm2d))
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                assert m.bias is None
        leaky = [m for m in net.modules() if type(m).__name__ == "BiasedLeakyReLU"]
        assert leaky and all(torch.equal(m.bias, torch.zeros_like(m.bias)) for m in leaky)


def test_resampling_is_the_official_low_pass_filter():
    x = torch.randn(2, 3, 8, 8)
    up, down = Upsample()(x), Downsample()(x)
    assert up.shape == (2, 3, 16, 16) and down.shape == (2, 3, 4, 4)
    # [1,3,3,1]: bilinear up, box-triangle (antialiased bilinear) down, away from the zero-padded border
    inner = (..., slice(1, -1), slice(1, -1))
    bilinear = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
    torch.testing.assert_close(up[inner], bilinear[inner])
    antialiased = F.interpolate(x, scale_factor=0.5, mode="bilinear", antialias=True)
    torch.testing.assert_close(down[inner], antialiased[inner])
    flat = torch.ones(1, 1, 8, 8)
    assert torch.equal(Upsample()(flat)[inner], torch.ones(1, 1, 14, 14))  # the mean is kept


def test_labels_change_the_generator_through_its_embedding():
    g, _ = _nets(num_classes=CLASSES)
    z = torch.randn(4, LATENT).repeat(2, 1)
    x = g(z, torch.tensor([0] * 4 + [3] * 4))
    assert (x[:4] - x[4:]).abs().amax(dim=(1, 2, 3)).min() > 1e-4
    assert g.eval()(torch.randn(4, LATENT)).shape == (4, 3, 16, 16)  # no labels: drawn uniformly


def test_the_discriminator_logit_is_the_projection_onto_the_class_embedding():
    _, d = _nets(num_classes=CLASSES)
    x = torch.randn(4, 3, 16, 16)
    a, b = d(x, torch.zeros(4, dtype=torch.long)), d(x, torch.full((4,), 2))
    assert (a - b).abs().min() > 1e-6
    with torch.no_grad():
        d.embed.weight[2] = d.embed.weight[0]
    torch.testing.assert_close(d(x, torch.full((4,), 2)), a)  # the label enters only through its row
    with pytest.raises(ValueError, match="pass labels"):
        d(x)


@pytest.mark.parametrize("num_classes", [None, CLASSES])
def test_spectral_norm_switch_parametrizes_every_weight(num_classes):
    for on in (False, True):
        g, d = _nets(num_classes=num_classes, spectral_norm=on)
        for net in (g, d):
            layers = [m for m in net.modules() if isinstance(m, (nn.Conv2d, nn.Linear, nn.Embedding))]
            assert layers and all(nn.utils.parametrize.is_parametrized(m, "weight") == on for m in layers)
        y = torch.arange(2) if num_classes else None
        logits = d(g(torch.randn(2, LATENT), y), y)
        assert torch.isfinite(logits).all()


def test_r1_and_r2_differentiate_through_the_discriminator():
    _, d = _nets(num_classes=CLASSES)
    real, fake, y = torch.randn(4, 3, 16, 16), torch.randn(4, 3, 16, 16), torch.arange(4)
    penalty = R1Penalty(1.0)(d, real, fake, y) + R2Penalty(1.0)(d, real, fake, y)
    penalty.backward()
    grad = d.from_image.weight.grad
    assert penalty > 0 and grad is not None and torch.isfinite(grad).all() and grad.abs().sum() > 0


@pytest.mark.parametrize(
    ("kwargs", "problem"),
    [
        (dict(image_size=48), "supports image_size in"),
        (dict(image_size=None, channels=None), "needs image data"),
        (dict(width=4, cardinality=3), "do not divide"),
        (dict(widths=[8, 8]), "needs 4 stages"),
        (dict(blocks=[1, 0, 1, 1]), "positive integers"),
        (dict(num_classes=-1), "num_classes must be"),
    ],
)
def test_bad_arguments_are_named(kwargs, problem):
    args = {"image_size": 32, "channels": 3, **TINY, **kwargs}
    for net in (Generator, Discriminator):
        with pytest.raises(ValueError, match=problem):
            net(**args)


def test_one_rpgan_iteration_trains_both_nets_and_only_the_classes_it_saw():
    g, d = _nets(num_classes=CLASSES)
    y = torch.tensor([0, 1, 1, 2])
    g_embed, d_embed = g.embed.weight.clone(), d.embed.weight.clone()
    gan, before = one_iteration(g, d, torch.rand(4, 3, 16, 16) * 2 - 1, y, loss=RelativisticPairingLoss())
    for name, net in gan.networks.items():
        assert any(not torch.equal(a, b) for a, b in zip(before[name], net.parameters())), name
        # the zero-initialised last convs of the branches are what the first step moves
        assert all(m.project.weight.abs().sum() > 0 for m in net.modules() if isinstance(m, ResidualBlock))
    used = [True, True, True, False, False]
    assert (g.embed.weight != g_embed).any(1).tolist() == (d.embed.weight != d_embed).any(1).tolist() == used


def test_parameter_count_at_the_cifar10_preset():
    # Derived by hand from the official CIFAR10 preset (brownvc/R3GAN train.py: widths 4 x 768,
    # 2 blocks per stage, cardinality 96, expansion 2, noise 64, --cond=1 with 10 classes, class
    # embedding 64 in G and 768 in D) and R3GAN/Networks.py's layers; the paper's tables give no
    # count we could read. One residual block at width 768:
    #   1x1 768->1536: 1,179,648 + grouped 3x3 1536->1536 in 96 groups: 1536*16*9 = 221,184
    #   + 1x1 1536->768: 1,179,648 + two activation biases of 1536: 3,072  = 2,583,552
    # 8 blocks per network = 20,668,416 (the stages keep their width: no 1x1 transitions).
    # G: + basis 768*4*4 = 12,288 + linear (64+64)->768 = 98,304 + to-image 768*3 = 2,304
    #    + class embedding 10*64 = 640                                      = 20,781,952
    # D: + from-image 3*768 = 2,304 + depthwise 4x4 768*16 = 12,288 + linear 768->768 = 589,824
    #    + class embedding 10*768 = 7,680                                   = 21,280,512
    g = Generator(32, 3, num_classes=10)
    d = Discriminator(32, 3, num_classes=10)
    count = lambda net: sum(p.numel() for p in net.parameters())  # noqa: E731
    assert count(g) == pytest.approx(20_781_952, rel=0.02)
    assert count(d) == pytest.approx(21_280_512, rel=0.02)
