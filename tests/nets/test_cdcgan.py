"""Conditional DCGAN: labels change G's images and D's logits, through the projection."""

from __future__ import annotations

import pytest
import torch
from gan_parts import one_iteration

from ganforge.nets.cdcgan import ConditionalBatchNorm2d, Discriminator, Generator

LATENT, WIDTH, CLASSES = 8, 4, 5


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("size", [32, 64])
def test_shapes(size, channels):
    g = Generator(size, channels, CLASSES, latent_dim=LATENT, width=WIDTH)
    d = Discriminator(size, channels, CLASSES, width=WIDTH)
    y = torch.arange(3) % CLASSES
    x = g(torch.randn(3, LATENT), y)
    assert x.shape == (3, channels, size, size) and x.abs().max() <= 1
    assert d(x, y).shape == (3,)
    assert g.num_classes == d.num_classes == CLASSES and g.latent_dim == LATENT


def test_generator_output_depends_on_the_label():
    torch.manual_seed(0)
    g = Generator(32, 1, CLASSES, latent_dim=LATENT, width=WIDTH)
    z = torch.randn(8, LATENT).repeat(2, 1)  # the same noise twice, in one batch
    y = torch.tensor([0] * 8 + [3] * 8)
    x = g(z, y)
    assert (x[:8] - x[8:]).abs().amax(dim=(1, 2, 3)).min() > 1e-4
    assert torch.equal(
        g(z, torch.zeros(16, dtype=torch.long))[:8], g(z, torch.zeros(16, dtype=torch.long))[8:]
    )


def test_conditional_batch_norm_applies_the_class_gain_and_bias():
    cbn = ConditionalBatchNorm2d(2, 3)
    with torch.no_grad():
        cbn.gain.weight.copy_(torch.tensor([[1.0, 1.0], [2.0, 2.0], [0.0, 0.0]]))
        cbn.bias.weight.copy_(torch.tensor([[0.0, 0.0], [0.0, 0.0], [5.0, 5.0]]))
    h = torch.randn(6, 2, 3, 3)
    out = cbn(h, torch.tensor([0, 1, 2, 0, 1, 2]))
    normed = torch.nn.functional.batch_norm(h, None, None, training=True)
    torch.testing.assert_close(out[1], 2 * normed[1])
    torch.testing.assert_close(out[2], torch.full_like(out[2], 5.0))


def test_generator_without_labels_draws_classes():
    g = Generator(32, 1, CLASSES, latent_dim=LATENT, width=WIDTH).eval()
    assert g(torch.randn(4, LATENT)).shape == (4, 1, 32, 32)


@pytest.mark.parametrize("norm", ["batch", "layer", "none"])
def test_discriminator_logit_uses_the_projection(norm):
    torch.manual_seed(0)
    d = Discriminator(32, 3, CLASSES, width=WIDTH, norm=norm).eval()
    x = torch.randn(4, 3, 32, 32)
    a, b = d(x, torch.zeros(4, dtype=torch.long)), d(x, torch.full((4,), 2))
    assert (a - b).abs().min() > 1e-6
    # logit - psi(phi(x)) is exactly <embed(y), phi(x)>
    phi = d.features(x).flatten(1)
    torch.testing.assert_close(a - d.head(d.features(x)).flatten(), phi @ d.embed.weight[0])
    with torch.no_grad():
        d.embed.weight.zero_()
    torch.testing.assert_close(d(x, torch.zeros(4, dtype=torch.long)), d(x, torch.full((4,), 2)))


def test_spectral_norm_covers_the_embedding():
    d = Discriminator(32, 1, CLASSES, width=WIDTH, norm="spectral")
    assert torch.nn.utils.parametrize.is_parametrized(d.embed, "weight")
    x, y = torch.randn(2, 1, 32, 32), torch.tensor([0, 1])
    d(x, y).sum().backward()
    assert d.embed.parametrizations.weight.original.grad is not None


def test_discriminator_refuses_to_drop_the_labels():
    d = Discriminator(32, 1, CLASSES, width=WIDTH)
    with pytest.raises(ValueError, match="pass labels"):
        d(torch.randn(2, 1, 32, 32))


@pytest.mark.parametrize("num_classes", [0, None, -1])
def test_needs_classes(num_classes):
    for net in (Generator, Discriminator):
        with pytest.raises(ValueError, match=r"model=cdcgan is class-conditional .* model=dcgan"):
            net(32, 1, num_classes)


def test_unsupported_sizes_and_points():
    with pytest.raises(ValueError, match=r"model=cdcgan supports image_size in"):
        Generator(48, 1, CLASSES)
    with pytest.raises(ValueError, match=r"model=cdcgan needs image data"):
        Discriminator(None, None, CLASSES)


def test_one_training_iteration_changes_the_parameters_of_the_classes_it_saw():
    torch.manual_seed(0)
    g = Generator(32, 1, CLASSES, latent_dim=LATENT, width=WIDTH)
    d = Discriminator(32, 1, CLASSES, width=WIDTH)
    y = torch.tensor([0, 1, 1, 2])
    before_g, before_d = g.norms[0].gain.weight.clone(), d.embed.weight.clone()
    one_iteration(g, d, torch.rand(4, 1, 32, 32) * 2 - 1, labels=y)
    changed_g = (g.norms[0].gain.weight != before_g).any(1)
    changed_d = (d.embed.weight != before_d).any(1)
    assert (
        changed_g.tolist() == changed_d.tolist() == [True, True, True, False, False]
    )  # only the classes used
