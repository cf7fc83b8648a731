"""SNGAN's ResNet pair: shapes at 32/48/64, the paper's layouts and parameter counts,
conditional BN and the projection, the spectral-norm switch, init, config, one step."""

from __future__ import annotations

import math

import pytest
import torch
from gan_parts import one_iteration
from torch import nn
from torch.nn.utils import parametrize

from ganforge.losses import HingeLoss
from ganforge.nets.cdcgan import ConditionalBatchNorm2d
from ganforge.nets.resnet import Discriminator, Generator
from ganforge.pipeline import build_module, check_config

LATENT, G_WIDTH, D_WIDTH, CLASSES = 8, 16, 16, 5


def _count(net: nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())


@pytest.mark.parametrize("classes", [0, CLASSES])
@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("size", [32, 48, 64])
def test_shapes(size, channels, classes):
    torch.manual_seed(0)
    g = Generator(size, channels, latent_dim=LATENT, width=G_WIDTH, num_classes=classes)
    d = Discriminator(size, channels, width=D_WIDTH, num_classes=classes)
    y = torch.arange(3) % CLASSES
    x = g(torch.randn(3, LATENT), y)
    assert x.shape == (3, channels, size, size) and x.abs().max() <= 1
    assert d(x, y).shape == (3,)
    assert g.num_classes == d.num_classes == classes and g.latent_dim == LATENT


def _block_outputs(blocks, run) -> list[tuple[int, int]]:
    """(channels, side) of each block's output during ``run()``."""
    seen = []
    hooks = [b.register_forward_hook(lambda m, i, o: seen.append((o.shape[1], o.shape[-1]))) for b in blocks]
    with torch.no_grad():
        run()
    for h in hooks:
        h.remove()
    return seen


@pytest.mark.parametrize(
    ("size", "g_bottom", "g_blocks", "d_blocks"),
    [
        # Miyato et al. 2018, Table 5 (STL-10, 48x48): G 6x6x512, up to 256, 128, 64;
        # D down 64, 128, 256, 512, then 1024 without pooling (3x3 map)
        (
            48,
            (512, 6),
            [(256, 12), (128, 24), (64, 48)],
            [(64, 24), (128, 12), (256, 6), (512, 3), (1024, 3)],
        ),
        # pfnet-research/sngan_projection gen_models/resnet_64.py, dis_models/snresnet_64.py
        (
            64,
            (1024, 4),
            [(512, 8), (256, 16), (128, 32), (64, 64)],
            [(64, 32), (128, 16), (256, 8), (512, 4), (1024, 2)],
        ),
    ],
)
def test_default_widths_follow_the_published_tables(size, g_bottom, g_blocks, d_blocks):
    g, d = Generator(size, 3), Discriminator(size, 3, spectral_norm=False)
    assert _block_outputs(g.blocks, lambda: g(torch.randn(2, 128))) == g_blocks
    assert g.linear.out_features == g_bottom[0] * g_bottom[1] ** 2
    assert _block_outputs(d.blocks, lambda: d(torch.randn(1, 3, size, size))) == d_blocks


def test_cifar10_parameter_counts_match_the_paper_table():
    # Miyato et al. 2018, Table 4 (CIFAR-10 ResNet), counted by hand; a 3x3 conv c->c' has
    # 9cc' + c' parameters, a 1x1 conv cc' + c', a BN 2c.
    # G: linear 128 -> 4*4*256: 128*4096 + 4096 = 528,384
    #    3 up-blocks 256->256: 2 BN (2*512) + 2 convs (2*590,080) + 1x1 shortcut (65,792)
    #                          = 1,246,976 each, 3,740,928 in all
    #    BN 256 (512) + conv 256->3 (6,912 + 3 = 6,915)  =>  G = 4,276,739
    # D: optimised block 3->128: 3,584 + 147,584 + shortcut 512 = 151,680
    #    down-block 128->128: 2 * 147,584 + shortcut 16,512 = 311,680
    #    2 plain blocks 128->128 (identity shortcut): 2 * 295,168 = 590,336
    #    linear 128 -> 1: 129  =>  D = 1,053,825
    # (the authors' CIFAR D drops that linear's bias: 1,053,824). mimicry's SNGAN-32
    # (torch_mimicry/nets/sngan/sngan_32.py) has the same layers.
    g, d = Generator(32, 3, latent_dim=128, width=256), Discriminator(32, 3, width=128)
    assert _count(g) == pytest.approx(4_276_739, rel=0.02)
    assert _count(d) == pytest.approx(1_053_825, rel=0.02)
    # class-conditional (10 classes): each of G's 6 block BNs trades 2c affine
    # parameters for a 10 x c gain and bias (+27,648); D gains a 10 x 128 embedding
    gc, dc = Generator(32, 3, num_classes=10), Discriminator(32, 3, num_classes=10)
    assert _count(gc) - _count(g) == 27_648 and _count(dc) - _count(d) == 1_280


def test_conditional_generator_output_depends_on_the_label():
    torch.manual_seed(0)
    g = Generator(32, 1, latent_dim=LATENT, width=G_WIDTH, num_classes=CLASSES)
    assert all(isinstance(b.norm1, ConditionalBatchNorm2d) for b in g.blocks)
    z = torch.randn(8, LATENT).repeat(2, 1)  # the same noise twice, in one batch
    x = g(z, torch.tensor([0] * 8 + [3] * 8))
    assert (x[:8] - x[8:]).abs().amax(dim=(1, 2, 3)).min() > 1e-4
    assert g.eval()(torch.randn(4, LATENT)).shape == (4, 1, 32, 32)  # no labels: drawn


def test_unconditional_nets_ignore_labels():
    torch.manual_seed(0)
    g = Generator(32, 1, latent_dim=LATENT, width=G_WIDTH).eval()
    d = Discriminator(32, 1, width=D_WIDTH).eval()
    z, x = torch.randn(4, LATENT), torch.randn(4, 1, 32, 32)
    zeros, twos = torch.zeros(4, dtype=torch.long), torch.full((4,), 2)
    assert torch.equal(g(z, zeros), g(z, twos)) and torch.equal(g(z), g(z, zeros))
    assert torch.equal(d(x), d(x, twos))


@pytest.mark.parametrize("spectral_norm", [True, False])
def test_discriminator_logit_adds_the_projection(spectral_norm):
    torch.manual_seed(0)
    d = Discriminator(32, 3, width=D_WIDTH, num_classes=CLASSES, spectral_norm=spectral_norm).eval()
    x = torch.randn(4, 3, 32, 32)
    a, b = d(x, torch.zeros(4, dtype=torch.long)), d(x, torch.full((4,), 2))
    assert (a - b).abs().min() > 1e-6
    # the labels enter only through <embed(y), h>
    h, w = d.features(x), d.embed.weight
    torch.testing.assert_close(a - b, h @ (w[0] - w[2]))
    with pytest.raises(ValueError, match="pass labels"):
        d(x)


def test_spectral_norm_switch_parametrizes_every_layer_to_unit_norm():
    torch.manual_seed(0)
    layers = (nn.Conv2d, nn.Linear, nn.Embedding)
    on = Discriminator(32, 3, width=D_WIDTH, num_classes=CLASSES, spectral_norm=True)
    off = Discriminator(32, 3, width=D_WIDTH, num_classes=CLASSES, spectral_norm=False)
    on_layers = [m for m in on.modules() if isinstance(m, layers)]
    assert len(on_layers) == 4 * 2 + 2 + 2  # 8 convs, 2 shortcuts, linear, embedding
    assert all(parametrize.is_parametrized(m, "weight") for m in on_layers)
    assert not any(parametrize.is_parametrized(m) for m in off.modules() if isinstance(m, layers))
    with torch.no_grad():  # power iterations, one per training-mode forward
        for _ in range(20):
            on(torch.randn(2, 3, 32, 32), torch.tensor([0, 1]))
    for m in on_layers:
        sigma = torch.linalg.matrix_norm(m.weight.detach().flatten(1), ord=2)
        assert sigma.item() == pytest.approx(1.0, abs=0.02)  # power iteration: approximate
    sigma_off = torch.linalg.matrix_norm(off.blocks[1].conv1.weight.detach().flatten(1), ord=2)
    assert sigma_off > 1.5  # xavier(gain sqrt 2) weights are not unit-norm by themselves


def test_init_is_xavier_uniform_with_gain_sqrt2_inside_the_residual_branches():
    torch.manual_seed(0)
    g = Generator(32, 3, width=64)

    def bound(conv, gain):  # xavier-uniform draws from U(-b, b)
        k = conv.kernel_size[0] * conv.kernel_size[1]
        return gain * math.sqrt(6.0 / (k * (conv.in_channels + conv.out_channels)))

    block = g.blocks[0]
    for conv, gain in ((block.conv1, math.sqrt(2)), (block.conv2, math.sqrt(2)), (block.shortcut, 1.0)):
        top = conv.weight.abs().max().item()
        assert 0.98 * bound(conv, gain) < top <= bound(conv, gain)
        assert not conv.bias.any()


def test_one_training_iteration_changes_both_nets():
    torch.manual_seed(0)
    g = Generator(32, 3, latent_dim=LATENT, width=G_WIDTH)
    d = Discriminator(32, 3, width=D_WIDTH)
    gan, before = one_iteration(g, d, torch.rand(4, 3, 32, 32) * 2 - 1, loss=HingeLoss())
    for name, net in gan.networks.items():
        unchanged = [n for (n, p), b in zip(net.named_parameters(), before[name]) if torch.equal(p, b)]
        assert not unchanged, f"{name}: {unchanged}"


def test_one_conditional_iteration_moves_only_the_classes_seen():
    torch.manual_seed(0)
    g = Generator(32, 1, latent_dim=LATENT, width=G_WIDTH, num_classes=CLASSES)
    d = Discriminator(32, 1, width=D_WIDTH, num_classes=CLASSES, spectral_norm=False)
    before_g, before_d = g.blocks[0].norm1.gain.weight.clone(), d.embed.weight.clone()
    one_iteration(g, d, torch.rand(4, 1, 32, 32) * 2 - 1, labels=torch.tensor([0, 1, 1, 2]), loss=HingeLoss())
    changed_g = (g.blocks[0].norm1.gain.weight != before_g).any(1).tolist()
    changed_d = (d.embed.weight != before_d).any(1).tolist()
    assert changed_g == changed_d == [True, True, True, False, False]


@pytest.mark.parametrize("size", [16, 128, 40, 32.0, True])
def test_unsupported_sizes(size):
    with pytest.raises(ValueError, match=r"model=resnet supports image_size in \(32, 48, 64\)"):
        Generator(size, 3)
    with pytest.raises(ValueError, match=r"model=resnet supports image_size in"):
        Discriminator(size, 3)


def test_bad_channels_classes_width_and_points():
    with pytest.raises(ValueError, match="1 or 3 channels"):
        Discriminator(32, 2)
    with pytest.raises(ValueError, match="needs image data"):
        Generator(None, None)
    for classes in (-1, True, 2.5, "10"):
        with pytest.raises(ValueError, match=r"num_classes must be null or 0 .*data.num_classes"):
            Discriminator(32, 3, num_classes=classes)
    with pytest.raises(ValueError, match="width must be a positive integer"):
        Generator(32, 3, width=0)


def test_model_config_is_unconditional_by_default_and_conditional_on_request(compose):
    small = ["model=resnet", "data=digits", "model.generator.width=8", "model.discriminator.width=8"]
    cfg = compose(small)
    check_config(cfg)  # null classes pass against labelled data
    gan = build_module(cfg)
    assert isinstance(gan.generator, Generator) and isinstance(gan.discriminator, Discriminator)
    assert gan.num_classes == gan.discriminator.num_classes == 0
    assert parametrize.is_parametrized(gan.discriminator.linear, "weight")
    cond = compose(
        [
            *small,
            "model.generator.num_classes=${data.num_classes}",
            "model.discriminator.num_classes=${data.num_classes}",
        ]
    )
    check_config(cond)
    gan = build_module(cond)
    assert gan.num_classes == gan.discriminator.num_classes == 10
    assert gan.sample(2).shape == (2, 1, 32, 32)
