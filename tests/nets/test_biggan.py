"""BigGAN: shapes at every size, the hierarchical latent, self-attention, the projection,
spectral norm, orthogonal init, one training step, and the CIFAR-10 parameter counts."""

from __future__ import annotations

import pytest
import torch
from gan_parts import one_iteration
from torch import nn
from torch.nn.utils import parametrize

from ganforge.losses import HingeLoss
from ganforge.nets.biggan import Discriminator, Generator, SelfAttention
from ganforge.pipeline import build_module

WIDTH, CLASSES = 4, 5


@pytest.fixture(autouse=True)
def one_thread():
    # the QR of orthogonal init and these tiny convs run several times faster on one
    # thread than on two when the machine's cores are shared
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def tiny(size=32, channels=1, **kwargs):
    torch.manual_seed(0)
    g = Generator(size, channels, CLASSES, width=WIDTH, **kwargs)
    d = Discriminator(size, channels, CLASSES, width=WIDTH, **kwargs)
    return g, d


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize(("size", "latent"), [(32, 80), (64, 100), (128, 120)])
def test_shapes(size, latent, channels):
    g, d = tiny(size, channels)
    y = torch.tensor([0, 4])
    x = g(torch.randn(2, latent), y)
    assert x.shape == (2, channels, size, size) and x.abs().max() <= 1
    assert d(x, y).shape == (2,)
    assert g.latent_dim == latent and g.num_classes == d.num_classes == CLASSES
    # attention at half the image size in both nets (StudioGAN's attn_g_loc / attn_d_loc)
    seen = []
    for net in (g, d):
        net.attention.register_forward_hook(lambda m, args, out: seen.append(out.shape[-1]))
    d(g(torch.randn(2, latent), y), y)
    assert seen == [size // 2, size // 2]


def test_generator_output_depends_on_the_label():
    g, _ = tiny()
    g.eval()  # running statistics: each sample on its own
    z = torch.randn(4, g.latent_dim)
    a, b = g(z, torch.zeros(4, dtype=torch.long)), g(z, torch.full((4,), 3))
    assert (a - b).abs().amax(dim=(1, 2, 3)).min() > 1e-4
    torch.testing.assert_close(a, g(z, torch.zeros(4, dtype=torch.long)))


def test_generator_without_labels_draws_classes():
    g, _ = tiny()
    assert g(torch.randn(3, g.latent_dim)).shape == (3, 1, 32, 32)


def test_each_latent_chunk_enters_its_own_block():
    # z[0] feeds the first linear layer, z[k] block k-1's norms: changing chunk k leaves
    # every block before that one untouched and changes that block's output
    g, _ = tiny(64)
    g.eval()
    outputs = []
    for block in g.blocks:
        block.register_forward_hook(lambda m, args, out: outputs.append(out))
    z = torch.randn(2, g.latent_dim)
    y = torch.tensor([1, 2])
    g(z, y)
    base, outputs[:] = list(outputs), []
    for k in range(len(g.blocks) + 1):
        moved = z.clone()
        moved[:, k * g.chunk : (k + 1) * g.chunk] += 1.0
        g(moved, y)
        first_changed = max(k - 1, 0)
        for i, (before, after) in enumerate(zip(base, outputs)):
            assert torch.equal(before, after) == (i < first_changed), (k, i)
        outputs.clear()


def test_latent_dim_must_split_into_chunks():
    with pytest.raises(ValueError, match=r"splits z into 4 equal chunks .* latent_dim=null for 80"):
        Generator(32, 3, CLASSES, latent_dim=81, width=WIDTH)
    assert Generator(32, 3, CLASSES, latent_dim=8, width=WIDTH).chunk == 2


# ----------------------------------------------------------------------------- attention
def test_self_attention_keeps_the_shape_and_starts_as_the_identity():
    torch.manual_seed(0)
    attention = SelfAttention(16)
    x = torch.randn(2, 16, 8, 8)
    out = attention(x)
    assert out.shape == x.shape and attention.gamma.item() == 0
    torch.testing.assert_close(out, x, rtol=0, atol=0)
    g, d = tiny()
    assert g.attention.gamma.item() == d.attention.gamma.item() == 0


@pytest.mark.parametrize("gamma", [0.0, 1.0])
def test_self_attention_reads_distant_pixels_once_gamma_is_not_zero(gamma):
    torch.manual_seed(0)
    attention = SelfAttention(16)
    with torch.no_grad():
        attention.gamma.fill_(gamma)
    x = torch.randn(1, 16, 8, 8, requires_grad=True)
    attention(x)[..., 0, 0].sum().backward()  # one pixel in a corner of the output
    far = x.grad[..., 4:, 4:].abs().sum()  # the opposite quarter of the input
    assert (far > 1e-6) == (gamma != 0)
    assert x.grad[..., 0, 0].abs().sum() > 0  # the residual path


# ----------------------------------------------------------------------------- discriminator
def test_discriminator_logit_is_head_plus_projection():
    _, d = tiny(spectral_norm=False)
    x = torch.randn(4, 1, 32, 32)
    y0, y2 = torch.zeros(4, dtype=torch.long), torch.full((4,), 2)
    a, b = d(x, y0), d(x, y2)
    assert (a - b).abs().min() > 1e-6
    phi = d.features(x)
    torch.testing.assert_close(a - d.head(phi).flatten(), phi @ d.embed.weight[0])
    with torch.no_grad():
        d.embed.weight.zero_()
    torch.testing.assert_close(d(x, y0), d(x, y2))


def test_discriminator_refuses_to_drop_the_labels():
    _, d = tiny()
    with pytest.raises(ValueError, match="pass labels"):
        d(torch.randn(2, 1, 32, 32))


# ----------------------------------------------------------------------------- norm, init
def _layers(net):
    return [m for m in net.modules() if isinstance(m, (nn.Conv2d, nn.Linear, nn.Embedding))]


@pytest.mark.parametrize("spectral_norm", [True, False])
def test_spectral_norm_switch(spectral_norm):
    g, d = tiny(spectral_norm=spectral_norm)
    normed = {m for net in (g, d) for m in _layers(net) if parametrize.is_parametrized(m, "weight")}
    expected = {m for net in (g, d) for m in _layers(net) if m is not g.shared} if spectral_norm else set()
    assert normed == expected
    # with spectral norm, scaling every raw weight changes nothing (eval: no power step)
    d.eval()
    x, y = torch.randn(2, 1, 32, 32), torch.tensor([0, 1])
    before = d(x, y)
    with torch.no_grad():
        for m in _layers(d):
            raw = m.parametrizations.weight.original if spectral_norm else m.weight
            raw.mul_(5.0)
    after = d(x, y)
    if spectral_norm:
        torch.testing.assert_close(after, before)
    else:
        assert (after - before).abs().min() > 1e-3


def test_orthogonal_initialisation():
    g, d = tiny(spectral_norm=False)
    for w in (g.blocks[0].conv1.weight, d.blocks[1].conv2.weight, g.linear.weight, d.embed.weight):
        w = w.detach().flatten(1)
        small = w @ w.T if w.shape[0] <= w.shape[1] else w.T @ w
        torch.testing.assert_close(small, torch.eye(len(small)), atol=1e-5, rtol=0)


# ----------------------------------------------------------------------------- validation
@pytest.mark.parametrize("num_classes", [0, None, -1])
def test_needs_classes(num_classes):
    for net in (Generator, Discriminator):
        with pytest.raises(ValueError, match=r"model=biggan is class-conditional .* model=dcgan"):
            net(32, 1, num_classes, width=WIDTH)


@pytest.mark.parametrize("size", [16, 48, 256, 32.0])
def test_unsupported_sizes(size):
    for net in (Generator, Discriminator):
        with pytest.raises(ValueError, match=r"model=biggan supports image_size in \(32, 64, 128\)"):
            net(size, 1, CLASSES, width=WIDTH)


def test_points_and_odd_channels():
    with pytest.raises(ValueError, match=r"model=biggan needs image data"):
        Generator(None, None, CLASSES)
    with pytest.raises(ValueError, match=r"supports 1 or 3 channels"):
        Discriminator(32, 2, CLASSES)


# ----------------------------------------------------------------------------- training
def test_one_training_iteration_moves_everything_that_gets_a_gradient():
    g, d = tiny()
    y = torch.tensor([0, 1, 1, 2])
    _, before = one_iteration(g, d, torch.rand(4, 1, 32, 32) * 2 - 1, labels=y, loss=HingeLoss())
    for name, net in (("generator", g), ("discriminator", d)):
        still = {
            n for (n, p), p0 in zip(net.named_parameters(), before[name], strict=True) if torch.equal(p, p0)
        }
        # gamma = 0 blocks the gradient to the attention's convolutions on the first step
        assert still == {
            f"attention.{c}.parametrizations.weight.original" for c in ("theta", "phi", "g", "out")
        }
        assert net.attention.gamma.item() != 0
    # G's shared embedding is not spectrally normalised: only the rows of the classes in the
    # batch move (D's embedding is, and sigma couples all its rows)
    i = [n for n, _ in g.named_parameters()].index("shared.weight")
    rows = (g.shared.weight != before["generator"][i]).any(1)
    assert rows.tolist() == [True, True, True, False, False]


def test_model_config_builds_on_labelled_data(compose):
    cfg = compose(
        [
            "model=biggan",
            "loss=hinge",
            "data=digits",
            "model.generator.width=4",
            "model.discriminator.width=4",
        ]
    )
    module = build_module(cfg)
    assert isinstance(module.generator, Generator) and module.generator.num_classes == 10
    x = module.sample(2)
    assert x.shape == (2, 1, 32, 32)
    assert module.discriminator(x, torch.tensor([0, 9])).shape == (2,)


# ----------------------------------------------------------------------------- CIFAR-10 size
def test_parameter_counts_at_the_cifar10_preset():
    # PyTorch-StudioGAN logs/CIFAR10/BigGAN-train-2021_01_15_14_48_48.log (config
    # src/configs/CIFAR10/BigGAN.json: width 96, z 80, shared 128): "Number of parameters"
    # 9416196 for G and 2415170 for D. By hand, G: linear 20*6144+6144 = 129024, shared
    # 10*128 = 1280, 3 blocks x (4 cBN maps 148*384 + 1x1 384*384+384 + 2 3x3 384*384*9+384)
    # = 3 x 3030144, attention 2*384*48 + 2*384*192 + 1 = 184321, BN 768, conv 384*3*9+3
    # = 10371; D: first block 768+5376+331968, attention 46081, a down block with its 1x1
    # 700992, two plain ones 663936 each, head 193, embedding 1920.
    g, d = Generator(32, 3, 10), Discriminator(32, 3, 10)
    assert sum(p.numel() for p in g.parameters()) == pytest.approx(9_416_196, rel=0.02)
    assert sum(p.numel() for p in d.parameters()) == pytest.approx(2_415_170, rel=0.02)
