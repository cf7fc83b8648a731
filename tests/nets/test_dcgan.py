"""DCGAN generator and discriminator: shapes, ranges, norms, validation, init, one step."""

from __future__ import annotations

import pytest
import torch
from gan_parts import one_iteration
from torch import nn

from ganforge.nets.dcgan import D_NORMS, Discriminator, Generator

LATENT = 8
WIDTH = 4  # narrow: shapes do not depend on width


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("size", [16, 32, 64])
def test_generator_and_discriminator_shapes(size, channels):
    torch.manual_seed(0)
    g = Generator(image_size=size, channels=channels, latent_dim=LATENT, width=WIDTH)
    d = Discriminator(image_size=size, channels=channels, width=WIDTH)
    z = torch.randn(3, LATENT)
    x = g(z)
    assert x.shape == (3, channels, size, size)
    assert x.min() >= -1.0 and x.max() <= 1.0
    assert d(x).shape == (3,)
    assert g.latent_dim == LATENT


def test_generator_reaches_the_ends_of_its_range():
    # tanh output: pushed hard, the images saturate at -1 and 1 but never beyond
    torch.manual_seed(0)
    g = Generator(image_size=16, channels=1, latent_dim=LATENT, width=WIDTH)
    with torch.no_grad():
        last = g.net[-2]
        last.weight.mul_(1e4)
    x = g(torch.randn(4, LATENT))
    assert x.min().item() == pytest.approx(-1.0, abs=1e-3)
    assert x.max().item() == pytest.approx(1.0, abs=1e-3)


def test_generator_accepts_4d_latents():
    g = Generator(image_size=16, channels=1, latent_dim=LATENT, width=WIDTH)
    assert g(torch.randn(2, LATENT, 1, 1)).shape == (2, 1, 16, 16)


@pytest.mark.parametrize("norm", D_NORMS)
def test_every_discriminator_norm(norm):
    torch.manual_seed(0)
    d = Discriminator(image_size=32, channels=3, width=WIDTH, norm=norm)
    x = torch.rand(4, 3, 32, 32) * 2 - 1
    out = d(x)
    assert out.shape == (4,)
    assert torch.isfinite(out).all()
    kinds = {type(m) for m in d.modules()}
    assert (nn.BatchNorm2d in kinds) == (norm == "batch")
    assert (nn.GroupNorm in kinds) == (norm == "layer")
    spectral = [m for m in d.modules() if isinstance(m, nn.Conv2d) and hasattr(m, "parametrizations")]
    n_convs = sum(isinstance(m, nn.Conv2d) for m in d.modules())
    assert len(spectral) == (n_convs if norm == "spectral" else 0)


def test_layer_norm_discriminator_scores_each_sample_on_its_own():
    # per-sample normalisation (needed by the gradient penalty): a sample's logit does
    # not change with the rest of the batch, even in training mode
    torch.manual_seed(0)
    d = Discriminator(image_size=16, channels=1, width=WIDTH, norm="layer").train()
    x = torch.randn(6, 1, 16, 16)
    assert torch.allclose(d(x)[:2], d(x[:2]), rtol=1e-5, atol=1e-6)


def test_spectral_norm_bounds_each_conv():
    torch.manual_seed(0)
    d = Discriminator(image_size=16, channels=1, width=WIDTH, norm="spectral").train()
    for _ in range(30):  # power iteration converges over forward passes
        d(torch.randn(2, 1, 16, 16))
    d.eval()
    for m in d.modules():
        if isinstance(m, nn.Conv2d):
            sigma = torch.linalg.matrix_norm(m.weight.flatten(1), ord=2).item()
            assert sigma == pytest.approx(1.0, abs=0.05)


def test_unknown_norm_names_the_choices():
    with pytest.raises(ValueError, match=r"norm must be one of .*batch.*layer.*spectral.*none"):
        Discriminator(image_size=32, channels=1, norm="instance")


@pytest.mark.parametrize("net", [Generator, Discriminator])
@pytest.mark.parametrize("size", [8, 28, 48, 512, 32.0])
def test_unsupported_image_size_names_the_allowed_sizes(net, size):
    with pytest.raises(ValueError, match=rf"supports image_size in \(16, 32, 64, 128, 256\), got {size}"):
        net(image_size=size, channels=1)


@pytest.mark.parametrize("net", [Generator, Discriminator])
def test_2d_data_points_to_the_mlp(net):
    # data=ring|grid declares image_size: null and channels: null
    with pytest.raises(ValueError, match=r"needs image data.*model=mlp"):
        net(image_size=None, channels=None)


@pytest.mark.parametrize("net", [Generator, Discriminator])
def test_unsupported_channels(net):
    with pytest.raises(ValueError, match=r"1 or 3 channels, got 2"):
        net(image_size=32, channels=2)


def test_dcgan_init_statistics():
    # Radford et al.: conv weights ~ N(0, 0.02), norm scales ~ N(1, 0.02), biases 0
    torch.manual_seed(0)
    nets = [Generator(32, 3, latent_dim=100, width=32), Discriminator(32, 3, width=32, norm="batch")]
    conv_w, norm_w, biases = [], [], []
    for net in nets:
        for m in net.modules():
            if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
                conv_w.append(m.weight.detach().flatten())
                if m.bias is not None:
                    biases.append(m.bias.detach().flatten())
            elif isinstance(m, nn.BatchNorm2d):
                norm_w.append(m.weight.detach().flatten())
                biases.append(m.bias.detach().flatten())
    conv_w, norm_w, biases = torch.cat(conv_w), torch.cat(norm_w), torch.cat(biases)
    assert conv_w.numel() > 100_000  # enough draws for the estimates below
    assert conv_w.std().item() == pytest.approx(0.02, rel=0.02)
    assert conv_w.mean().item() == pytest.approx(0.0, abs=1e-3)
    assert norm_w.mean().item() == pytest.approx(1.0, abs=0.01)
    assert norm_w.std().item() == pytest.approx(0.02, rel=0.3)
    assert torch.count_nonzero(biases) == 0


def test_spectral_discriminator_keeps_the_init_in_the_raw_weight():
    torch.manual_seed(0)
    d = Discriminator(32, 3, width=32, norm="spectral")
    raw = torch.cat(
        [
            m.parametrizations.weight.original.detach().flatten()
            for m in d.modules()
            if isinstance(m, nn.Conv2d)
        ]
    )
    assert raw.std().item() == pytest.approx(0.02, rel=0.05)


def test_one_training_iteration_through_the_module_moves_every_weight():
    torch.manual_seed(0)
    g = Generator(image_size=16, channels=1, latent_dim=LATENT, width=WIDTH)
    d = Discriminator(image_size=16, channels=1, width=WIDTH)
    gan, before = one_iteration(g, d, torch.rand(8, 1, 16, 16) * 2 - 1)
    for name, net in gan.networks.items():
        for b, p in zip(before[name], net.parameters()):
            assert torch.isfinite(p).all() and not torch.equal(b, p), name
