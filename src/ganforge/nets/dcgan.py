"""DCGAN (Radford et al. 2015) for any power-of-two image size from 16 to 256.

The generator maps z to a 4x4 map and doubles the resolution with strided
transposed convolutions (BatchNorm + ReLU, tanh at the output); the
discriminator mirrors it with strided convolutions and LeakyReLU(0.2).
Channel widths halve with each doubling of resolution, capped at ``8 * width``.
"""

from __future__ import annotations

import itertools

from torch import Tensor, nn

from ganforge.nets.init import normal_init

SUPPORTED_SIZES = (16, 32, 64, 128, 256)
D_NORMS = ("batch", "layer", "spectral", "none")


def check_image_size(
    image_size: int | None,
    channels: int | None,
    net: str,
    sizes: tuple[int, ...] = SUPPORTED_SIZES,
    hint: str = "",
) -> int:
    """Fail early, naming what is allowed, when the data cannot feed a conv net.

    Returns log2(image_size), rounded down (exact for the powers of two).
    """
    if image_size is None or channels is None:
        raise ValueError(
            f"model={net} needs image data, but the data config declares no "
            "image_size/channels (2-D points?). Use model=mlp for data=ring or data=grid."
        )
    # 32.0 == 32 would pass the membership test and fail later in bit_length
    if isinstance(image_size, bool) or not isinstance(image_size, int) or image_size not in sizes:
        raise ValueError(
            f"model={net} supports image_size in {sizes}, got {image_size}. "
            f"Set data.image_size to one of them{hint}."
        )
    if channels not in (1, 3):
        raise ValueError(f"model={net} supports 1 or 3 channels, got {channels}")
    return image_size.bit_length() - 1  # log2


def _widths(levels: int, width: int) -> list[int]:
    """Channels from the 4x4 level up: [.., 4w, 2w, w] with the top capped at 8w."""
    return [width * min(2 ** (levels - 1 - i), 8) for i in range(levels)]


class Generator(nn.Module):
    def __init__(self, image_size: int, channels: int, latent_dim: int = 100, width: int = 64) -> None:
        super().__init__()
        levels = check_image_size(image_size, channels, "dcgan") - 2  # 4x4 -> image_size
        self.latent_dim = int(latent_dim)
        self.image_size, self.channels = image_size, channels
        widths = _widths(levels, width)
        layers: list[nn.Module] = [
            nn.ConvTranspose2d(latent_dim, widths[0], 4, 1, 0, bias=False),
            nn.BatchNorm2d(widths[0]),
            nn.ReLU(True),
        ]
        for c_in, c_out in itertools.pairwise(widths):
            layers += [
                nn.ConvTranspose2d(c_in, c_out, 4, 2, 1, bias=False),
                nn.BatchNorm2d(c_out),
                nn.ReLU(True),
            ]
        layers += [nn.ConvTranspose2d(widths[-1], channels, 4, 2, 1), nn.Tanh()]
        self.net = nn.Sequential(*layers)
        normal_init(self)

    def forward(self, z: Tensor, labels: Tensor | None = None) -> Tensor:
        return self.net(z.view(z.shape[0], -1, 1, 1))


def _d_norm(kind: str, channels: int) -> nn.Module:
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "layer":
        # per-sample normalisation keeps gradient penalties valid (Gulrajani et al. 2017, sec. 4)
        return nn.GroupNorm(1, channels)
    return nn.Identity()


class Discriminator(nn.Module):
    def __init__(self, image_size: int, channels: int, width: int = 64, norm: str = "batch") -> None:
        super().__init__()
        if norm not in D_NORMS:
            raise ValueError(f"dcgan discriminator norm must be one of {D_NORMS}, got {norm!r}")
        levels = check_image_size(image_size, channels, "dcgan") - 2
        widths = _widths(levels, width)[::-1]  # [w, 2w, .., top]
        layers: list[nn.Module] = [nn.Conv2d(channels, widths[0], 4, 2, 1), nn.LeakyReLU(0.2, True)]
        for c_in, c_out in itertools.pairwise(widths):
            layers += [
                nn.Conv2d(c_in, c_out, 4, 2, 1, bias=norm not in ("batch", "layer")),
                _d_norm(norm, c_out),
                nn.LeakyReLU(0.2, True),
            ]
        layers.append(nn.Conv2d(widths[-1], 1, 4, 1, 0))
        self.net = nn.Sequential(*layers)
        normal_init(self)
        if norm == "spectral":  # after init: the parametrization rescales the raw weight
            for m in self.net:
                if isinstance(m, nn.Conv2d):
                    nn.utils.parametrizations.spectral_norm(m)

    def forward(self, x: Tensor, labels: Tensor | None = None) -> Tensor:
        return self.net(x).flatten()
