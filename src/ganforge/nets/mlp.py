"""Fully connected generator and discriminator, for the 2-D toys and flattened images."""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn

_ACTIVATIONS = {"relu": nn.ReLU, "leaky_relu": lambda: nn.LeakyReLU(0.2), "tanh": nn.Tanh}


def _mlp(sizes: Sequence[int], activation: str) -> nn.Sequential:
    if activation not in _ACTIVATIONS:
        raise ValueError(f"unknown activation {activation!r}; choose from {sorted(_ACTIVATIONS)}")
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(itertools.pairwise(sizes)):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(_ACTIVATIONS[activation]())
    return nn.Sequential(*layers)


class Generator(nn.Module):
    """z -> sample of ``data_shape``; images get a tanh so they land in [-1, 1]."""

    def __init__(
        self,
        data_shape: Sequence[int],
        latent_dim: int = 2,
        hidden: int = 128,
        depth: int = 3,
        activation: str = "relu",
    ) -> None:
        super().__init__()
        self.data_shape = tuple(int(s) for s in data_shape)
        self.latent_dim = int(latent_dim)
        out = math.prod(self.data_shape)
        self.net = _mlp([self.latent_dim] + [hidden] * depth + [out], activation)
        # points are unbounded; images live in [-1, 1]
        self.out_act = nn.Tanh() if len(self.data_shape) == 3 else nn.Identity()

    def forward(self, z: Tensor, labels: Tensor | None = None) -> Tensor:
        return self.out_act(self.net(z)).view(z.shape[0], *self.data_shape)


class Discriminator(nn.Module):
    """sample -> one logit."""

    def __init__(
        self,
        data_shape: Sequence[int],
        hidden: int = 128,
        depth: int = 3,
        activation: str = "leaky_relu",
        norm: str = "none",
    ) -> None:
        super().__init__()
        # an MLP critic carries no normalisation, so every d_norm choice is accepted
        del norm
        self.data_shape = tuple(int(s) for s in data_shape)
        self.net = _mlp([math.prod(self.data_shape)] + [hidden] * depth + [1], activation)

    def forward(self, x: Tensor, labels: Tensor | None = None) -> Tensor:
        return self.net(torch.flatten(x, 1)).squeeze(1)
