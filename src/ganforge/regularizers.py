"""Discriminator regularizers that need the networks, not only logits.

A regularizer has a ``weight`` and an ``interval``: lazy regularisation
(Karras et al. 2020, StyleGAN2 sec. 3.1) evaluates it every ``interval``
discriminator steps and multiplies it by ``interval`` so its average strength is
unchanged. ``interval=1`` is the usual every-step penalty.

Under fp16 mixed precision the gradient inside a penalty flows in float16 and can
underflow to zero. The module passes its loss scale (``grad_scale``, a tensor): the
critic's output is multiplied by it before differentiating and the gradient divided by
it after, as in torch's AMP gradient-penalty recipe.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

Critic = Callable[[Tensor], Tensor]


def _input_gradients(
    critic: Critic, x: Tensor, labels: Tensor | None, grad_scale: Tensor | None = None
) -> Tensor:
    x = x.detach().requires_grad_(True)
    logits = critic(x) if labels is None else critic(x, labels)
    total = logits.sum() if grad_scale is None else logits.sum() * grad_scale
    (grad,) = torch.autograd.grad(total, x, create_graph=True)
    grad = grad.flatten(1)
    return grad if grad_scale is None else grad / grad_scale


class Regularizer:
    """Base class. ``__call__`` returns the unweighted penalty (a scalar); ``grad_scale``: the
    fp16 loss scale to differentiate under (None: none), see the module docstring."""

    name = "reg"

    def __init__(self, weight: float = 1.0, interval: int = 1) -> None:
        if weight < 0:
            raise ValueError(f"{type(self).__name__}: weight must be >= 0, got {weight}")
        if interval < 1:
            raise ValueError(f"{type(self).__name__}: interval must be >= 1, got {interval}")
        self.weight = float(weight)
        self.interval = int(interval)

    def due(self, d_step: int) -> bool:
        return d_step % self.interval == 0

    def __call__(
        self,
        critic: Critic,
        real: Tensor,
        fake: Tensor,
        labels: Tensor | None = None,
        grad_scale: Tensor | None = None,
    ) -> Tensor:
        raise NotImplementedError


class GradientPenalty(Regularizer):
    """WGAN-GP (Gulrajani et al. 2017): E[(||grad D(x_hat)|| - center)^2] on random
    interpolates x_hat between real and fake samples. ``center=0`` gives the
    zero-centred variant."""

    name = "gp"

    def __init__(self, weight: float = 10.0, interval: int = 1, center: float = 1.0) -> None:
        super().__init__(weight, interval)
        self.center = float(center)

    def __call__(self, critic, real, fake, labels=None, grad_scale=None):
        # one mixing coefficient per sample, broadcast over every other dimension
        alpha = torch.rand((real.shape[0],) + (1,) * (real.dim() - 1), device=real.device)
        x_hat = torch.lerp(real.detach(), fake.detach(), alpha.to(real.dtype))
        norms = _input_gradients(critic, x_hat, labels, grad_scale).norm(2, dim=1)
        return ((norms - self.center) ** 2).mean()


class R1Penalty(Regularizer):
    """R1 (Mescheder et al. 2018): E[||grad D(x)||^2] on real data, times 1/2."""

    name = "r1"

    def __init__(self, weight: float = 10.0, interval: int = 1) -> None:
        super().__init__(weight, interval)

    def __call__(self, critic, real, fake, labels=None, grad_scale=None):
        return 0.5 * _input_gradients(critic, real, labels, grad_scale).pow(2).sum(1).mean()


class R2Penalty(Regularizer):
    """R2: the R1 penalty on generated samples."""

    name = "r2"

    def __init__(self, weight: float = 10.0, interval: int = 1) -> None:
        super().__init__(weight, interval)

    def __call__(self, critic, real, fake, labels=None, grad_scale=None):
        return 0.5 * _input_gradients(critic, fake, labels, grad_scale).pow(2).sum(1).mean()
