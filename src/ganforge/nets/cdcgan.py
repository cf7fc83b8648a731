"""Class-conditional DCGAN: conditional batch norm in G, a projection discriminator.

Generator: DCGAN's (Radford et al. 2015) with every BatchNorm made class-conditional,
a per-class gain and bias after a shared normalisation (conditional batch norm, as
used by Miyato & Koyama 2018 and BigGAN, Brock et al. 2019).

Discriminator: DCGAN's convolutional trunk phi(x), its final 4x4 convolution as the
unconditional head psi, and the projection of Miyato & Koyama 2018 ("cGANs with
Projection Discriminator"): logit = psi(phi(x)) + <embed(y), phi(x)>, where phi(x)
is the flattened 4x4 feature map that psi reads. With spectral norm the embedding
is normalised too, as in that paper.
"""

from __future__ import annotations

import itertools

import torch
from torch import Tensor, nn

from ganforge.nets import dcgan
from ganforge.nets.dcgan import _widths, check_image_size
from ganforge.nets.init import normal_init


def check_num_classes(num_classes: int | None, net: str = "cdcgan") -> int:
    """The class count of a class-conditional ``model=<net>``, or an error naming the fix."""
    if not isinstance(num_classes, int) or isinstance(num_classes, bool) or num_classes < 1:
        raise ValueError(
            f"model={net} is class-conditional and needs labelled data, but num_classes={num_classes}. "
            "Use a labelled dataset (data=digits, mnist, fashion_mnist, cifar10, or data=folder with "
            "data.labels=true and data.num_classes set), or an unconditional model such as model=dcgan."
        )
    return num_classes


class ConditionalBatchNorm2d(nn.Module):
    """BatchNorm without its own affine map, then a gain and bias looked up per class."""

    def __init__(self, features: int, num_classes: int) -> None:
        super().__init__()
        self.bn = nn.BatchNorm2d(features, affine=False)
        self.gain = nn.Embedding(num_classes, features)
        self.bias = nn.Embedding(num_classes, features)
        # N(1, 0.02) like DCGAN's BatchNorm scales, so classes differ from the first step
        nn.init.normal_(self.gain.weight, 1.0, 0.02)
        nn.init.zeros_(self.bias.weight)

    def forward(self, x: Tensor, labels: Tensor) -> Tensor:
        gain = self.gain(labels)[:, :, None, None]
        bias = self.bias(labels)[:, :, None, None]
        return self.bn(x) * gain + bias


class Generator(nn.Module):
    """z, y -> image; ``labels=None`` draws classes uniformly (e.g. for unconditional metrics)."""

    def __init__(
        self, image_size: int, channels: int, num_classes: int, latent_dim: int = 100, width: int = 64
    ) -> None:
        super().__init__()
        levels = check_image_size(image_size, channels, "cdcgan") - 2  # 4x4 -> image_size
        self.num_classes = check_num_classes(num_classes)
        self.latent_dim = int(latent_dim)
        self.image_size, self.channels = image_size, channels
        widths = _widths(levels, width)
        self.convs = nn.ModuleList([nn.ConvTranspose2d(self.latent_dim, widths[0], 4, 1, 0, bias=False)])
        self.convs.extend(
            nn.ConvTranspose2d(a, b, 4, 2, 1, bias=False) for a, b in itertools.pairwise(widths)
        )
        self.norms = nn.ModuleList(ConditionalBatchNorm2d(c, num_classes) for c in widths)
        self.to_image = nn.ConvTranspose2d(widths[-1], channels, 4, 2, 1)
        normal_init(self)  # leaves the embeddings' own init alone

    def forward(self, z: Tensor, labels: Tensor | None = None) -> Tensor:
        if labels is None:
            labels = torch.randint(self.num_classes, (z.shape[0],), device=z.device)
        h = z.view(z.shape[0], -1, 1, 1)
        for conv, norm in zip(self.convs, self.norms):
            h = torch.relu(norm(conv(h), labels))
        return torch.tanh(self.to_image(h))


class Discriminator(nn.Module):
    """x, y -> one logit per sample: psi(phi(x)) + <embed(y), phi(x)>."""

    def __init__(
        self, image_size: int, channels: int, num_classes: int, width: int = 64, norm: str = "batch"
    ) -> None:
        super().__init__()
        check_image_size(image_size, channels, "cdcgan")
        self.num_classes = check_num_classes(num_classes)
        base = dcgan.Discriminator(image_size, channels, width, norm)
        self.features = base.net[:-1]  # phi: conv trunk down to a 4x4 map
        self.head = base.net[-1]  # psi: the 4x4 convolution to one logit
        self.embed = nn.Embedding(num_classes, self.head.in_channels * 16)
        nn.init.normal_(self.embed.weight, 0.0, 0.02)
        if norm == "spectral":
            nn.utils.parametrizations.spectral_norm(self.embed)

    def forward(self, x: Tensor, labels: Tensor | None = None) -> Tensor:
        if labels is None:
            raise ValueError("the cdcgan discriminator is class-conditional: pass labels with the images")
        phi = self.features(x)
        projection = (self.embed(labels) * phi.flatten(1)).sum(1)
        return self.head(phi).flatten() + projection
