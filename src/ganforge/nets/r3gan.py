"""R3GAN's generator and discriminator (Huang, Gokaslan, Kuleshov, Tompkin, "The GAN is dead;
long live the GAN! A Modern GAN Baseline", NeurIPS 2024; config E of their roadmap, sec. 3).

Both networks are stacks of stages, one per resolution from 4x4 to ``image_size``, each with
``blocks`` residual blocks of a ResNeXt-style inverted bottleneck: 1x1 conv expanding the
width by ``expansion``, grouped 3x3 conv with ``cardinality`` groups, 1x1 conv projecting back,
a biased leaky ReLU (0.2) after each of the first two. No normalisation layer anywhere; the
convolutions and linear layers are bias-free, the activations carry the biases.

Initialisation, as in the official code (brownvc/R3GAN, R3GAN/Networks.py): every weight
N(0, gain^2 / fan_in); in a residual branch gain = sqrt(2/(1+0.2^2)) * L^(-1/(2m-2)) for the
first two convolutions (L blocks in the network, m = 3 layers per branch: L^(-1/4)) and the
last convolution of the branch starts at zero (fix-up), so every block starts as the identity.

Generator: z (and, conditional, a learned class embedding concatenated to it) -> a linear map
to per-channel amplitudes of a learned 4x4 basis -> stages; between stages a 1x1 conv when the
width changes, then 2x upsampling -> 1x1 conv to the image, no output nonlinearity (as the
official code; ganforge clamps to [-1, 1] where images are quantised).
Discriminator: 1x1 conv from the image -> stages; between stages 2x downsampling, then a 1x1
conv when the width changes -> at 4x4 a depthwise 4x4 conv and a linear map: one logit, or
(conditional) a vector whose dot product with a learned class embedding is the logit, the
projection the official code uses (no unconditional term).

Resampling: the official low-pass filter, [1, 2, 1] convolved with [1, 1] = [1, 3, 3, 1]
(separable, normalised), applied as a fixed depthwise convolution with zero padding: stride-2
transposed convolution up (bilinear interpolation away from the border), stride-2 convolution
down. A fixed convolution rather than ``F.interpolate``: R1/R2 differentiate the
discriminator twice, and plain convolutions have every derivative.

CIFAR-10 defaults from the official preset (train.py, preset CIFAR10): 4 stages of width
3*1024/4 = 768, 2 blocks each, cardinality 3*32 = 96, expansion 2, 64-d noise, class
embedding of the noise's size in G and of the 4x4 width in D.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ganforge.nets.dcgan import check_image_size

NEGATIVE_SLOPE = 0.2
ACTIVATION_GAIN = math.sqrt(2 / (1 + NEGATIVE_SLOPE**2))
LAYERS_PER_BRANCH = 3


def _msr_init_(weight: Tensor, gain: float = 1.0) -> Tensor:
    """N(0, gain^2 / fan_in), fan_in counting one group of a grouped conv (He et al. 2015)."""
    fan_in = weight.shape[1] * weight[0][0].numel()
    with torch.no_grad():
        return weight.normal_(0.0, gain / math.sqrt(fan_in))


def _conv(c_in: int, c_out: int, kernel: int = 1, groups: int = 1, gain: float = 1.0) -> nn.Conv2d:
    conv = nn.Conv2d(c_in, c_out, kernel, padding=(kernel - 1) // 2, groups=groups, bias=False)
    _msr_init_(conv.weight, gain)
    return conv


def _linear(d_in: int, d_out: int) -> nn.Linear:
    linear = nn.Linear(d_in, d_out, bias=False)
    _msr_init_(linear.weight)
    return linear


def _embedding(num_classes: int, dim: int, gain: float = 1.0) -> nn.Embedding:
    """A bias-free linear map of one-hot labels, initialised as one (fan_in = num_classes)."""
    embed = nn.Embedding(num_classes, dim)
    with torch.no_grad():
        embed.weight.normal_(0.0, gain / math.sqrt(num_classes))
    return embed


class BiasedLeakyReLU(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x: Tensor) -> Tensor:
        return F.leaky_relu(x + self.bias.view(1, -1, 1, 1), NEGATIVE_SLOPE)


class ResidualBlock(nn.Module):
    """x + project(act(grouped(act(expand(x))))): an inverted bottleneck with grouped 3x3."""

    def __init__(
        self, channels: int, cardinality: int, expansion: int, num_blocks: int, zero_last: bool = True
    ) -> None:
        super().__init__()
        hidden = channels * expansion
        gain = ACTIVATION_GAIN * num_blocks ** (-1 / (2 * LAYERS_PER_BRANCH - 2))
        self.expand = _conv(channels, hidden, 1, gain=gain)
        self.grouped = _conv(hidden, hidden, 3, groups=cardinality, gain=gain)
        self.project = _conv(hidden, channels, 1)
        if zero_last:
            nn.init.zeros_(self.project.weight)
        self.act1, self.act2 = BiasedLeakyReLU(hidden), BiasedLeakyReLU(hidden)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.project(self.act2(self.grouped(self.act1(self.expand(x)))))


def _lowpass_kernel() -> Tensor:
    taps = torch.tensor([1.0, 3.0, 3.0, 1.0])
    kernel = torch.outer(taps, taps)
    return kernel / kernel.sum()


class Upsample(nn.Module):
    """2x up: zero insertion + the [1,3,3,1] low-pass (x4 to keep the mean), per channel."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("kernel", 4 * _lowpass_kernel(), persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        c = x.shape[1]
        weight = self.kernel.to(x.dtype).expand(c, 1, 4, 4)
        return F.conv_transpose2d(x, weight, stride=2, padding=1, groups=c)


class Downsample(nn.Module):
    """2x down: the [1,3,3,1] low-pass, then every second pixel, per channel."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("kernel", _lowpass_kernel(), persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        c = x.shape[1]
        return F.conv2d(x, self.kernel.to(x.dtype).expand(c, 1, 4, 4), stride=2, padding=1, groups=c)


class GenerativeBasis(nn.Module):
    """A learned 4x4 map per channel, scaled per sample by a linear function of the input."""

    def __init__(self, in_features: int, channels: int) -> None:
        super().__init__()
        self.basis = nn.Parameter(torch.randn(channels, 4, 4))
        self.linear = _linear(in_features, channels)

    def forward(self, z: Tensor) -> Tensor:
        return self.basis.unsqueeze(0) * self.linear(z)[:, :, None, None]


class DiscriminativeBasis(nn.Module):
    """A depthwise 4x4 conv (4x4 -> 1x1 per channel), then a linear map."""

    def __init__(self, channels: int, out_features: int) -> None:
        super().__init__()
        self.basis = nn.Conv2d(channels, channels, 4, groups=channels, bias=False)
        _msr_init_(self.basis.weight)
        self.linear = _linear(channels, out_features)

    def forward(self, x: Tensor) -> Tensor:
        return self.linear(self.basis(x).flatten(1))


def _per_stage(value: int | Sequence[int], stages: int, name: str, image_size: int) -> list[int]:
    values = [value] * stages if isinstance(value, int) else list(value)
    if len(values) != stages:
        raise ValueError(
            f"model=r3gan: {name} has {len(values)} entries but image_size {image_size} needs {stages} "
            f"stages (4x4 up to {image_size}x{image_size}); give one per stage or a single number"
        )
    if any(isinstance(v, bool) or not isinstance(v, int) or v < 1 for v in values):
        raise ValueError(f"model=r3gan: {name} must be positive integers, got {values}")
    return values


def _architecture(image_size, channels, width, widths, cardinality, expansion, blocks):
    """Per-stage widths, cardinalities and block counts, checked; stages run from 4x4 up."""
    stages = check_image_size(image_size, channels, "r3gan") - 1  # 4x4 .. image_size
    widths = _per_stage(width if widths is None else widths, stages, "widths", image_size)
    groups = _per_stage(cardinality, stages, "cardinality", image_size)
    counts = _per_stage(blocks, stages, "blocks", image_size)
    if isinstance(expansion, bool) or not isinstance(expansion, int) or expansion < 1:
        raise ValueError(f"model=r3gan: expansion must be a positive integer, got {expansion}")
    for w, g in zip(widths, groups):
        if (w * expansion) % g:
            raise ValueError(
                f"model=r3gan: a stage of width {w} expands to {w * expansion} channels, which "
                f"{g} groups (cardinality) do not divide; pick widths * expansion divisible by it"
            )
    return widths, groups, counts


def _check_classes(num_classes: int | None) -> int:
    if num_classes is None or (not isinstance(num_classes, bool) and num_classes == 0):
        return 0
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 0:
        raise ValueError(
            f"model=r3gan: num_classes must be a positive integer (class-conditional, e.g. "
            f"${{data.num_classes}}) or null (unconditional), got {num_classes!r}"
        )
    return num_classes


def _apply_spectral_norm(module: nn.Module) -> None:
    for m in list(module.modules()):
        if isinstance(m, (nn.Conv2d, nn.Linear, nn.Embedding)):
            nn.utils.parametrizations.spectral_norm(m)


class Generator(nn.Module):
    """z -> image; conditional with ``num_classes`` (``labels=None`` draws classes uniformly).

    ``width``: every stage's width, or ``widths``: one per stage from 4x4 up; ``cardinality``
    and ``blocks`` likewise a number or one per stage. ``embed_dim``: the class embedding
    (default: ``latent_dim``, as in the official presets).
    """

    def __init__(
        self,
        image_size: int,
        channels: int,
        latent_dim: int = 64,
        width: int = 768,
        widths: Sequence[int] | None = None,
        cardinality: int | Sequence[int] = 96,
        expansion: int = 2,
        blocks: int | Sequence[int] = 2,
        num_classes: int | None = None,
        embed_dim: int | None = None,
        spectral_norm: bool = False,
    ) -> None:
        super().__init__()
        widths, groups, counts = _architecture(
            image_size, channels, width, widths, cardinality, expansion, blocks
        )
        self.image_size, self.channels = image_size, channels
        self.latent_dim = int(latent_dim)
        self.num_classes = _check_classes(num_classes)
        embed_dim = (self.latent_dim if embed_dim is None else int(embed_dim)) if self.num_classes else 0
        self.embed = _embedding(self.num_classes, embed_dim) if self.num_classes else None
        total = sum(counts)
        self.stages = nn.ModuleList()
        for i, (w, g, n) in enumerate(zip(widths, groups, counts)):
            if i == 0:
                transition: list[nn.Module] = [GenerativeBasis(self.latent_dim + embed_dim, w)]
            else:
                transition = [_conv(widths[i - 1], w)] if widths[i - 1] != w else []
                transition.append(Upsample())
            # a zero matrix has no spectral norm: spectrally normalised branches start random
            residual = [ResidualBlock(w, g, expansion, total, zero_last=not spectral_norm) for _ in range(n)]
            self.stages.append(nn.Sequential(*transition, *residual))
        self.to_image = _conv(widths[-1], channels)
        if spectral_norm:
            _apply_spectral_norm(self)

    def forward(self, z: Tensor, labels: Tensor | None = None) -> Tensor:
        h = z.view(z.shape[0], -1)
        if self.embed is not None:
            if labels is None:
                labels = torch.randint(self.num_classes, (z.shape[0],), device=z.device)
            h = torch.cat([h, self.embed(labels).to(h.dtype)], dim=1)
        for stage in self.stages:
            h = stage(h)
        return self.to_image(h)


class Discriminator(nn.Module):
    """image -> one logit per sample; conditional with ``num_classes`` (then labels are needed).

    ``width``/``widths``/``cardinality``/``blocks`` are listed like the generator's, from the
    4x4 stage up, so one list serves both networks (the official code reverses G's lists).
    """

    def __init__(
        self,
        image_size: int,
        channels: int,
        width: int = 768,
        widths: Sequence[int] | None = None,
        cardinality: int | Sequence[int] = 96,
        expansion: int = 2,
        blocks: int | Sequence[int] = 2,
        num_classes: int | None = None,
        spectral_norm: bool = False,
    ) -> None:
        super().__init__()
        widths, groups, counts = _architecture(
            image_size, channels, width, widths, cardinality, expansion, blocks
        )
        self.image_size, self.channels = image_size, channels
        self.num_classes = _check_classes(num_classes)
        widths, groups, counts = widths[::-1], groups[::-1], counts[::-1]  # image_size down to 4x4
        total = sum(counts)
        out_features = widths[-1] if self.num_classes else 1
        self.from_image = _conv(channels, widths[0])
        self.stages = nn.ModuleList()
        for i, (w, g, n) in enumerate(zip(widths, groups, counts)):
            layers: list[nn.Module] = [
                ResidualBlock(w, g, expansion, total, zero_last=not spectral_norm) for _ in range(n)
            ]
            if i + 1 < len(widths):
                layers.append(Downsample())
                if widths[i + 1] != w:
                    layers.append(_conv(w, widths[i + 1]))
            else:
                layers.append(DiscriminativeBasis(w, out_features))
            self.stages.append(nn.Sequential(*layers))
        # the official gain 1/sqrt(dim) keeps the initial logit's scale that of one feature
        self.embed = (
            _embedding(self.num_classes, out_features, gain=1 / math.sqrt(out_features))
            if self.num_classes
            else None
        )
        if spectral_norm:
            _apply_spectral_norm(self)

    def forward(self, x: Tensor, labels: Tensor | None = None) -> Tensor:
        h = self.from_image(x)
        for stage in self.stages:
            h = stage(h)
        if self.embed is None:
            return h.flatten()
        if labels is None:
            raise ValueError("the r3gan discriminator is class-conditional: pass labels with the images")
        return (h * self.embed(labels).to(h.dtype)).sum(1)
