"""BigGAN (Brock et al. 2019, "Large Scale GAN Training for High Fidelity Natural Image
Synthesis") for 32, 64 and 128 pixel images; class-conditional.

Generator: a class embedding shared by all blocks and a hierarchical latent. z is cut
into equal chunks, one for the first linear layer (to a 4x4 map) and one per residual
block; each block's conditional batch norms map [chunk, shared(y)] linearly to a
per-sample gain (1 + .) and bias. Up-sampling residual blocks (BN-ReLU-up-conv3x3-BN-
ReLU-conv3x3, nearest-neighbour up-sampling and a 1x1 conv on the skip), one
self-attention block (SAGAN, Zhang et al. 2019), then BN-ReLU-conv3x3-tanh.

Discriminator: pre-activation residual down blocks (the first without the leading
ReLU, pooling before its 1x1 skip conv), a self-attention block after the first, ReLU,
global sum pooling, a linear head plus the projection of Miyato & Koyama 2018:
logit = w.phi(x) + b + <embed(y), phi(x)>.

Both nets: orthogonal initialisation and, switchable, spectral norm on every conv,
linear and embedding layer except G's shared embedding, which the authors' code keeps
plain (BigGAN-PyTorch, BigGAN.py, notes that normalising it can cripple G).

Widths and placements are PyTorch-StudioGAN's (src/models/big_resnet.py, config
src/configs/CIFAR10/BigGAN.json / BigGAN-Mod.yaml): at 32 px G runs three blocks of
4*width channels and D four of 2*width (width 96), z has 80 dimensions (20 per chunk),
the shared embedding 128, and attention sits at 16x16 in both nets. 64 and 128 px use
the channel multipliers of the same file (at 128 px the same as BigGAN-PyTorch's
G_arch/D_arch: G 16-16-8-4-2-1, D 1-2-4-8-16-16 times width), with attention at half the
image size as StudioGAN's Tiny-ImageNet and ImageNet configs place it.
"""

from __future__ import annotations

import itertools

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ganforge.nets.cdcgan import check_num_classes
from ganforge.nets.dcgan import check_image_size

SUPPORTED_SIZES = (32, 64, 128)
# G: channel multipliers of `width`, the 4x4 input first, then each block's output
G_CHANNELS = {32: (4, 4, 4, 4), 64: (16, 8, 4, 2, 1), 128: (16, 16, 8, 4, 2, 1)}
# D: (channel multiplier, halves the resolution) per block
D_BLOCKS = {
    32: ((2, True), (2, True), (2, False), (2, False)),
    64: ((1, True), (2, True), (4, True), (8, True), (16, False)),
    128: ((1, True), (2, True), (4, True), (8, True), (16, True), (16, False)),
}
Z_CHUNK = 20  # StudioGAN's z sizes 80 / 100 / 120 at 32 / 64 / 128 px: 20 per chunk
BN_EPS = 1e-4  # BigGAN's batch-norm epsilon


def check_size(image_size: int | None, channels: int | None) -> int:
    if image_size is None or channels is None:
        check_image_size(image_size, channels, "biggan")  # raises: the data are points
    # 32.0 == 32 would pass the membership test
    if isinstance(image_size, bool) or not isinstance(image_size, int) or image_size not in SUPPORTED_SIZES:
        raise ValueError(
            f"model=biggan supports image_size in {SUPPORTED_SIZES}, got {image_size}. "
            "Set data.image_size to one of them."
        )
    check_image_size(image_size, channels, "biggan")  # the channels
    return image_size


def _orthogonal_init_then_spectral_norm(net: nn.Module, spectral_norm: bool, plain: nn.Module | None = None):
    """Orthogonal weights, zero biases; then spectral norm (it normalises the raw weight it finds)."""
    layers = [m for m in net.modules() if isinstance(m, (nn.Conv2d, nn.Linear, nn.Embedding))]
    for m in layers:
        nn.init.orthogonal_(m.weight)
        if getattr(m, "bias", None) is not None:
            nn.init.zeros_(m.bias)
    if spectral_norm:
        for m in layers:
            if m is not plain:
                nn.utils.parametrizations.spectral_norm(m)


class SelfAttention(nn.Module):
    """SAGAN's non-local block: x + gamma * o(g(x) softmax(theta(x)^T phi(x))).

    Queries at every pixel, keys and values max-pooled 2x2 (as BigGAN does) with C/8 and
    C/2 channels. gamma starts at 0, so the block is the identity until it learns to attend.
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        key, value = max(channels // 8, 1), max(channels // 2, 1)  # max: tiny test widths
        self.theta = nn.Conv2d(channels, key, 1, bias=False)
        self.phi = nn.Conv2d(channels, key, 1, bias=False)
        self.g = nn.Conv2d(channels, value, 1, bias=False)
        self.out = nn.Conv2d(value, channels, 1, bias=False)
        self.gamma = nn.Parameter(torch.zeros(1))

    def forward(self, x: Tensor) -> Tensor:
        n, _, h, w = x.shape
        query = self.theta(x).flatten(2)  # (n, key, hw)
        keys = F.max_pool2d(self.phi(x), 2).flatten(2)  # (n, key, hw/4)
        values = F.max_pool2d(self.g(x), 2).flatten(2)  # (n, value, hw/4)
        attention = torch.softmax(query.transpose(1, 2) @ keys, dim=-1)  # (n, hw, hw/4)
        attended = (values @ attention.transpose(1, 2)).view(n, -1, h, w)
        return x + self.gamma * self.out(attended)


class ConditionalBatchNorm2d(nn.Module):
    """BatchNorm without its own affine map; gain 1 + W_g c and bias W_b c from a vector c."""

    def __init__(self, features: int, cond_dim: int) -> None:
        super().__init__()
        self.bn = nn.BatchNorm2d(features, eps=BN_EPS, affine=False)
        self.gain = nn.Linear(cond_dim, features, bias=False)
        self.bias = nn.Linear(cond_dim, features, bias=False)

    def forward(self, x: Tensor, cond: Tensor) -> Tensor:
        gain = 1 + self.gain(cond)[:, :, None, None]
        return self.bn(x) * gain + self.bias(cond)[:, :, None, None]


class GBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, cond_dim: int) -> None:
        super().__init__()
        self.norm1 = ConditionalBatchNorm2d(c_in, cond_dim)
        self.conv1 = nn.Conv2d(c_in, c_out, 3, padding=1)
        self.norm2 = ConditionalBatchNorm2d(c_out, cond_dim)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1)
        self.skip = nn.Conv2d(c_in, c_out, 1)  # also where c_in == c_out, as in StudioGAN's count

    def forward(self, x: Tensor, cond: Tensor) -> Tensor:
        h = F.interpolate(torch.relu(self.norm1(x, cond)), scale_factor=2, mode="nearest")
        h = self.conv2(torch.relu(self.norm2(self.conv1(h), cond)))
        return h + self.skip(F.interpolate(x, scale_factor=2, mode="nearest"))


class Generator(nn.Module):
    """z, y -> image; ``labels=None`` draws classes uniformly (e.g. for unconditional metrics).

    ``latent_dim=None`` takes 20 dimensions per chunk (80 / 100 / 120 at 32 / 64 / 128 px);
    any other size must split evenly into one chunk per block plus one.
    """

    def __init__(
        self,
        image_size: int,
        channels: int,
        num_classes: int,
        latent_dim: int | None = None,
        width: int = 96,
        shared_dim: int = 128,
        attention: bool = True,
        spectral_norm: bool = True,
    ) -> None:
        super().__init__()
        self.image_size, self.channels = check_size(image_size, channels), channels
        self.num_classes = check_num_classes(num_classes, "biggan")
        widths = [width * m for m in G_CHANNELS[image_size]]
        chunks = len(widths)  # one per block and one for the first linear layer
        self.latent_dim = Z_CHUNK * chunks if latent_dim is None else int(latent_dim)
        if self.latent_dim < chunks or self.latent_dim % chunks:
            raise ValueError(
                f"model=biggan at {image_size} px splits z into {chunks} equal chunks (one per block "
                f"and one for the first layer): latent_dim={self.latent_dim} does not split. "
                f"Use a multiple of {chunks}, or latent_dim=null for {Z_CHUNK * chunks}."
            )
        self.chunk = self.latent_dim // chunks
        self.shared = nn.Embedding(num_classes, shared_dim)
        self.linear = nn.Linear(self.chunk, widths[0] * 4 * 4)
        self.blocks = nn.ModuleList(
            GBlock(a, b, self.chunk + shared_dim) for a, b in itertools.pairwise(widths)
        )
        # after the block whose output is image_size / 2: the second-to-last one
        self.attention_after = len(self.blocks) - 2
        self.attention = SelfAttention(widths[-2]) if attention else None
        self.to_image = nn.Sequential(
            nn.BatchNorm2d(widths[-1], eps=BN_EPS),
            nn.ReLU(),
            nn.Conv2d(widths[-1], channels, 3, padding=1),
            nn.Tanh(),
        )
        _orthogonal_init_then_spectral_norm(self, spectral_norm, plain=self.shared)

    def forward(self, z: Tensor, labels: Tensor | None = None) -> Tensor:
        z = z.flatten(1)
        if labels is None:
            labels = torch.randint(self.num_classes, (z.shape[0],), device=z.device)
        first, *per_block = z.split(self.chunk, dim=1)
        shared = self.shared(labels)
        h = self.linear(first).view(z.shape[0], -1, 4, 4)
        for i, (block, chunk) in enumerate(zip(self.blocks, per_block)):
            h = block(h, torch.cat([chunk, shared], dim=1))
            if i == self.attention_after and self.attention is not None:
                h = self.attention(h)
        return self.to_image(h)


class DBlock(nn.Module):
    """Pre-activation residual block; the first one (on the image) starts with the conv, not a
    ReLU, and pools before its skip conv (Miyato et al. 2018's optimised first block)."""

    def __init__(self, c_in: int, c_out: int, downsample: bool, first: bool) -> None:
        super().__init__()
        self.downsample, self.first = downsample, first
        self.conv1 = nn.Conv2d(c_in, c_out, 3, padding=1)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1)
        self.skip = nn.Conv2d(c_in, c_out, 1) if downsample or c_in != c_out else None

    def forward(self, x: Tensor) -> Tensor:
        h = self.conv2(torch.relu(self.conv1(x if self.first else torch.relu(x))))
        if self.downsample:
            h = F.avg_pool2d(h, 2)
        if self.first:
            return h + self.skip(F.avg_pool2d(x, 2))
        skip = x if self.skip is None else self.skip(x)
        return h + (F.avg_pool2d(skip, 2) if self.downsample else skip)


class Discriminator(nn.Module):
    """x, y -> one logit per sample: w.phi(x) + b + <embed(y), phi(x)>."""

    def __init__(
        self,
        image_size: int,
        channels: int,
        num_classes: int,
        width: int = 96,
        attention: bool = True,
        spectral_norm: bool = True,
    ) -> None:
        super().__init__()
        check_size(image_size, channels)
        self.num_classes = check_num_classes(num_classes, "biggan")
        blocks, c_in = [], channels
        for i, (multiplier, downsample) in enumerate(D_BLOCKS[image_size]):
            blocks.append(DBlock(c_in, width * multiplier, downsample, first=i == 0))
            c_in = width * multiplier
        self.blocks = nn.ModuleList(blocks)
        # after the first block, at image_size / 2
        self.attention = SelfAttention(blocks[0].conv2.out_channels) if attention else None
        self.head = nn.Linear(c_in, 1)
        self.embed = nn.Embedding(num_classes, c_in)
        _orthogonal_init_then_spectral_norm(self, spectral_norm)

    def features(self, x: Tensor) -> Tensor:
        """phi(x): ReLU, then the sum over positions of the last block's map."""
        h = self.blocks[0](x)
        if self.attention is not None:
            h = self.attention(h)
        for block in self.blocks[1:]:
            h = block(h)
        return torch.relu(h).sum(dim=(2, 3))

    def forward(self, x: Tensor, labels: Tensor | None = None) -> Tensor:
        if labels is None:
            raise ValueError("the biggan discriminator is class-conditional: pass labels with the images")
        phi = self.features(x)
        return self.head(phi).flatten() + (self.embed(labels) * phi).sum(1)
