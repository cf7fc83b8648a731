"""SNGAN's ResNet generator and discriminator (Miyato et al. 2018, "Spectral Normalization
for Generative Adversarial Networks", appendix B.4), at 32x32, 48x48 and 64x64.

Widths at the default ``width`` (G 256, D 128):

- 32 (CIFAR-10, the paper's Table 4): G 4x4x256 and three up-blocks of 256; D an optimised
  down-block, a down-block and two plain blocks, all 128 channels.
- 48 (STL-10, the paper's Table 5): G 6x6x512, up-blocks to 256, 128, 64; D 64, 128, 256,
  512 (each halving the map) and a plain block of 1024.
- 64: the authors' 64x64 pair (pfnet-research/sngan_projection, gen_models/resnet_64.py and
  dis_models/snresnet_64.py): G 4x4x1024, up-blocks to 512, 256, 128, 64; D as at 48 but
  the 1024 block halves the map too.

``width`` scales every level in proportion. Generator up-block: BN, ReLU, nearest x2, 3x3
conv, BN, ReLU, 3x3 conv, plus a 1x1-conv shortcut of the upsampled input; then BN, ReLU,
3x3 conv, tanh. Discriminator block: ReLU, 3x3 conv, ReLU, 3x3 conv, [2x2 average pool],
plus a 1x1-conv shortcut where the shape changes (the first block has no leading ReLU
and always pools); then ReLU, a sum over positions, a linear map to one logit. Spectral
norm covers every conv, linear and embedding of D (``spectral_norm``).

With ``num_classes`` > 0 the pair is the class-conditional one of Miyato & Koyama 2018
("cGANs with Projection Discriminator"): G's block norms become conditional batch norms
and D adds the projection <embed(y), h> to its logit. 0 or None: unconditional.

Init as the authors' code (and mimicry's port): Xavier-uniform with gain sqrt(2) for the
3x3 convs inside residual branches, gain 1 for shortcuts, linear layers, the embedding and
G's output conv; zero biases (Chainer's default, where PyTorch's is uniform).
"""

from __future__ import annotations

import itertools
import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ganforge.nets.cdcgan import ConditionalBatchNorm2d
from ganforge.nets.dcgan import check_image_size

G_WIDTH, D_WIDTH = 256, 128  # the CIFAR-10 widths that the tables below are written at
# image size -> (G's bottom map side, G channels from the bottom map up)
G_LAYOUTS = {
    32: (4, (256, 256, 256, 256)),
    48: (6, (512, 256, 128, 64)),
    64: (4, (1024, 512, 256, 128, 64)),
}
# image size -> D channels per block, and which blocks halve the map (the first always does)
D_LAYOUTS = {
    32: ((128, 128, 128, 128), (True, True, False, False)),
    48: ((64, 128, 256, 512, 1024), (True, True, True, True, False)),
    64: ((64, 128, 256, 512, 1024), (True, True, True, True, True)),
}
SUPPORTED_SIZES = tuple(G_LAYOUTS)
HINT = ", or use model=dcgan for other powers of two"


def check_classes(num_classes: int | None) -> int:
    """0 for unconditional nets (0 or None), else the number of classes."""
    if num_classes is None:
        return 0
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 0:
        raise ValueError(
            f"model=resnet: num_classes must be null or 0 (unconditional) or a class count, got "
            f"{num_classes!r}. For the class-conditional pair set model.generator.num_classes="
            "${data.num_classes} model.discriminator.num_classes=${data.num_classes} on labelled data."
        )
    return num_classes


def _scaled(channels: tuple[int, ...], width: int, base: int) -> list[int]:
    if isinstance(width, bool) or not isinstance(width, int) or width < 1:
        raise ValueError(f"model=resnet: width must be a positive integer, got {width!r}")
    return [max(1, c * width // base) for c in channels]


def _xavier(layer: nn.Module, gain: float = 1.0) -> nn.Module:
    nn.init.xavier_uniform_(layer.weight, gain)
    if getattr(layer, "bias", None) is not None:
        nn.init.zeros_(layer.bias)
    return layer


def _conv(c_in: int, c_out: int, kernel: int, gain: float) -> nn.Conv2d:
    return _xavier(nn.Conv2d(c_in, c_out, kernel, 1, kernel // 2), gain)


RESIDUAL_GAIN = math.sqrt(2.0)  # ReLU halves the variance inside the branch


class GBlock(nn.Module):
    """Up-block: the residual branch and a 1x1-conv shortcut, both at twice the resolution."""

    def __init__(self, c_in: int, c_out: int, num_classes: int) -> None:
        super().__init__()

        def norm(c: int) -> nn.Module:
            return ConditionalBatchNorm2d(c, num_classes) if num_classes else nn.BatchNorm2d(c)

        self.norm1, self.norm2 = norm(c_in), norm(c_out)
        self.conv1 = _conv(c_in, c_out, 3, RESIDUAL_GAIN)
        self.conv2 = _conv(c_out, c_out, 3, RESIDUAL_GAIN)
        self.shortcut = _conv(c_in, c_out, 1, 1.0)

    def _norm(self, norm: nn.Module, h: Tensor, labels: Tensor | None) -> Tensor:
        return norm(h, labels) if isinstance(norm, ConditionalBatchNorm2d) else norm(h)

    def forward(self, x: Tensor, labels: Tensor | None = None) -> Tensor:
        h = F.interpolate(F.relu(self._norm(self.norm1, x, labels)), scale_factor=2.0, mode="nearest")
        h = self.conv2(F.relu(self._norm(self.norm2, self.conv1(h), labels)))
        # a 1x1 conv commutes with nearest upsampling: the paper's upsample-then-conv, at a
        # quarter of the cost
        return h + F.interpolate(self.shortcut(x), scale_factor=2.0, mode="nearest")


class Generator(nn.Module):
    """z (and y when conditional) -> image in [-1, 1]; ``labels=None`` draws classes uniformly."""

    def __init__(
        self,
        image_size: int,
        channels: int,
        latent_dim: int = 128,
        width: int = G_WIDTH,
        num_classes: int | None = None,
    ) -> None:
        super().__init__()
        check_image_size(image_size, channels, "resnet", SUPPORTED_SIZES, HINT)
        self.num_classes = check_classes(num_classes)
        self.latent_dim = int(latent_dim)
        self.image_size, self.channels = image_size, channels
        self.bottom, layout = G_LAYOUTS[image_size]
        widths = _scaled(layout, width, G_WIDTH)
        self.linear = _xavier(nn.Linear(self.latent_dim, self.bottom**2 * widths[0]))
        self.blocks = nn.ModuleList(GBlock(a, b, self.num_classes) for a, b in itertools.pairwise(widths))
        self.out_norm = nn.BatchNorm2d(widths[-1])  # unconditional, as in the authors' code
        self.to_image = _conv(widths[-1], channels, 3, 1.0)

    def forward(self, z: Tensor, labels: Tensor | None = None) -> Tensor:
        if not self.num_classes:
            labels = None
        elif labels is None:
            labels = torch.randint(self.num_classes, (z.shape[0],), device=z.device)
        h = self.linear(z.flatten(1)).view(z.shape[0], -1, self.bottom, self.bottom)
        for block in self.blocks:
            h = block(h, labels)
        return torch.tanh(self.to_image(F.relu(self.out_norm(h))))


class DBlock(nn.Module):
    """Residual down-block. ``first``: the paper's optimised block, which reads the image
    itself (no ReLU before its first conv, which also widens the channels)."""

    def __init__(self, c_in: int, c_out: int, downsample: bool, first: bool = False) -> None:
        super().__init__()
        self.first, self.downsample = first, downsample or first
        hidden = c_out if first else c_in  # the authors' choice: a plain block widens in conv2
        self.conv1 = _conv(c_in, hidden, 3, RESIDUAL_GAIN)
        self.conv2 = _conv(hidden, c_out, 3, RESIDUAL_GAIN)
        learnable = self.downsample or c_in != c_out
        self.shortcut = _conv(c_in, c_out, 1, 1.0) if learnable else None

    def forward(self, x: Tensor) -> Tensor:
        h = self.conv2(F.relu(self.conv1(x if self.first else F.relu(x))))
        if self.downsample:
            # pooling commutes with the 1x1 shortcut conv; pooling first is 4x cheaper
            h, x = F.avg_pool2d(h, 2), F.avg_pool2d(x, 2)
        return h + (x if self.shortcut is None else self.shortcut(x))


class Discriminator(nn.Module):
    """x (and y when conditional) -> one logit per sample: linear(h) [+ <embed(y), h>],
    with h the ReLU'd last feature map summed over positions."""

    def __init__(
        self,
        image_size: int,
        channels: int,
        width: int = D_WIDTH,
        num_classes: int | None = None,
        spectral_norm: bool = True,
    ) -> None:
        super().__init__()
        check_image_size(image_size, channels, "resnet", SUPPORTED_SIZES, HINT)
        self.num_classes = check_classes(num_classes)
        layout, downs = D_LAYOUTS[image_size]
        widths = _scaled(layout, width, D_WIDTH)
        blocks = [DBlock(channels, widths[0], True, first=True)]
        blocks += [DBlock(a, b, down) for (a, b), down in zip(itertools.pairwise(widths), downs[1:])]
        self.blocks = nn.Sequential(*blocks)
        self.linear = _xavier(nn.Linear(widths[-1], 1))
        self.embed = _xavier(nn.Embedding(self.num_classes, widths[-1])) if self.num_classes else None
        if spectral_norm:  # after init: the parametrization keeps the raw weight as its original
            layers = [m for m in self.modules() if isinstance(m, (nn.Conv2d, nn.Linear, nn.Embedding))]
            for m in layers:
                nn.utils.parametrizations.spectral_norm(m)

    def features(self, x: Tensor) -> Tensor:
        return F.relu(self.blocks(x)).sum(dim=(2, 3))

    def forward(self, x: Tensor, labels: Tensor | None = None) -> Tensor:
        h = self.features(x)
        logit = self.linear(h).flatten()
        if self.embed is None:
            return logit
        if labels is None:
            raise ValueError("the resnet discriminator is class-conditional: pass labels with the images")
        return logit + (self.embed(labels) * h).sum(1)
