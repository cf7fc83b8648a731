"""Fully connected generator and discriminator: 2-D points and flattened images."""

from __future__ import annotations

import pytest
import torch
from gan_parts import SGD, one_iteration
from torch import nn

from ganforge.losses import HingeLoss
from ganforge.nets.mlp import Discriminator, Generator


def test_points_shapes():
    torch.manual_seed(0)
    g = Generator(data_shape=[2], latent_dim=2, hidden=16, depth=2)
    d = Discriminator(data_shape=[2], hidden=16, depth=2)
    x = g(torch.randn(5, 2))
    assert x.shape == (5, 2)
    assert d(x).shape == (5,)
    assert g.latent_dim == 2


def test_points_are_not_squashed():
    # 2-D toy data lives at radius 1 (ring) or up to 4 (grid): no tanh on points
    g = Generator(data_shape=[2], latent_dim=2, hidden=8, depth=1)
    with torch.no_grad():
        last = g.net[-1]
        last.weight.zero_()
        last.bias.copy_(torch.tensor([4.0, -3.5]))
    assert g(torch.randn(3, 2)).tolist() == [[4.0, -3.5]] * 3


@pytest.mark.parametrize("shape", [(1, 8, 8), (3, 16, 16)])
def test_flattened_image_shapes_and_tanh_range(shape):
    torch.manual_seed(0)
    g = Generator(data_shape=shape, latent_dim=4, hidden=16, depth=2)
    d = Discriminator(data_shape=shape, hidden=16, depth=2)
    x = g(torch.randn(3, 4))
    assert x.shape == (3, *shape)
    assert d(x).shape == (3,)
    # pushed far out, images saturate at the ends of [-1, 1]
    with torch.no_grad():
        g.net[-1].bias.copy_(torch.where(torch.arange(g.net[-1].bias.numel()) % 2 == 0, 50.0, -50.0))
    x = g(torch.randn(3, 4))
    assert x.max().item() == pytest.approx(1.0, abs=1e-6)
    assert x.min().item() == pytest.approx(-1.0, abs=1e-6)


@pytest.mark.parametrize("depth", [1, 3])
def test_depth_counts_hidden_layers(depth):
    g = Generator(data_shape=[2], latent_dim=3, hidden=7, depth=depth)
    linears = [m for m in g.net if isinstance(m, nn.Linear)]
    assert len(linears) == depth + 1
    assert [m.in_features for m in linears] == [3] + [7] * depth
    assert linears[-1].out_features == 2
    assert not isinstance(g.net[-1], (nn.ReLU, nn.LeakyReLU, nn.Tanh))  # raw last layer


@pytest.mark.parametrize("norm", ["batch", "layer", "spectral", "none"])
def test_discriminator_accepts_every_norm_choice(norm):
    # loss configs set d_norm for conv critics; the MLP critic has no normalisation layers
    d = Discriminator(data_shape=[2], hidden=8, depth=2, norm=norm)
    assert d(torch.randn(4, 2)).shape == (4,)
    assert not any(isinstance(m, (nn.BatchNorm1d, nn.LayerNorm, nn.GroupNorm)) for m in d.modules())


def test_unknown_activation_names_the_choices():
    with pytest.raises(ValueError, match=r"unknown activation 'gelu'.*leaky_relu.*relu.*tanh"):
        Generator(data_shape=[2], activation="gelu")


def test_one_training_iteration_through_the_module_moves_every_weight_matrix():
    torch.manual_seed(0)
    g = Generator(data_shape=[2], latent_dim=2, hidden=16, depth=2)
    d = Discriminator(data_shape=[2], hidden=16, depth=2)
    gan, before = one_iteration(g, d, torch.randn(32, 2), loss=HingeLoss(), optimizer=SGD)
    # every weight matrix moves (hinge's gradients on D's last bias cancel between real and fake)
    for name, net in gan.networks.items():
        for b, p in zip(before[name], net.parameters()):
            assert torch.isfinite(p).all()
            if p.dim() == 2:
                assert not torch.equal(b, p), name
