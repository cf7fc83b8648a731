"""Discriminator regularizers that need the networks, not only logits.

A regularizer has a ``weight`` and an ``interval``: lazy regularisation
(Karras et al. 2020, StyleGAN2 sec. 3.1) evaluates it every ``interval``
discriminator steps and multiplies it by ``interval`` so its average strength is
unchanged. ``interval=1`` is the usual every-step penalty.

Under fp16 mixed precision the gradient inside a penalty flows in float16 and can
underflow to zero. The module passes its loss scale (``grad_scale``, a tensor): the
critic's output is multiplied by it before differentiating and the gradient divided by
it after, as in torch's AMP gradient-penalty recipe.

Penalties on D's outputs (LeCam, bCR) also receive the logits D's step has already
computed (``logits=(real_logits, fake_logits)``, passed to those with ``takes_logits``), so they cost no extra forward pass
where none is needed. State a penalty keeps between steps (LeCam's anchors) is this
rank's own and travels in checkpoints per rank (``rank_state``).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from ganforge.augment.geometry import check_images, gather_pixels, source_grid

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
    # whether ``__call__`` takes ``logits=``: the GAN passes them only then, so a penalty
    # written against the older signature keeps working
    takes_logits = False

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
        logits: tuple[Tensor, Tensor] | None = None,
    ) -> Tensor:
        raise NotImplementedError

    def rank_state(self) -> dict:
        """What this penalty carries between steps, to be checkpointed per rank (none here)."""
        return {}

    def load_rank_state(self, state: dict) -> None:
        pass


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


def _logits(critic: Critic, x: Tensor, labels: Tensor | None) -> Tensor:
    return critic(x) if labels is None else critic(x, labels)


class LeCam(Regularizer):
    """LeCam regularisation (Tseng et al. 2021, "Regularizing Generative Adversarial Networks
    under Limited Data"): D's outputs are pulled toward anchors, EMAs (``decay``) of its mean
    output on real (a_R) and generated (a_F) images:

        E[(D(x) - a_F)^2] + E[(D(G(z)) - a_R)^2]                 (one_sided=False, eq. 3)
        E[relu(D(x) - a_F)^2] + E[relu(a_R - D(G(z)))^2]         (one_sided=True)

    The one-sided form is the authors' released code (and StudioGAN's), the default here.
    The anchors take the first batch's means, then move by EMA; each update uses the batch's
    detached means before the penalty is computed. Their scripts weight it 0.3 for BigGAN on
    CIFAR-10 (google/lecam-gan, scripts/lc-*-cifar10-*.sh: ``--LC 0.3``).
    """

    name = "lecam"
    takes_logits = True

    def __init__(self, weight: float = 0.3, interval: int = 1, decay: float = 0.99, one_sided: bool = True):
        super().__init__(weight, interval)
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"LeCam: decay must be in [0, 1), got {decay}")
        self.decay, self.one_sided = float(decay), bool(one_sided)
        self.anchor_real: Tensor | None = None
        self.anchor_fake: Tensor | None = None

    @torch.no_grad()
    def _update(self, real_mean: Tensor, fake_mean: Tensor) -> None:
        if self.anchor_real is None:
            self.anchor_real, self.anchor_fake = real_mean.clone(), fake_mean.clone()
            return
        d = self.decay
        self.anchor_real = self.anchor_real.to(real_mean.device) * d + real_mean * (1 - d)
        self.anchor_fake = self.anchor_fake.to(fake_mean.device) * d + fake_mean * (1 - d)

    def __call__(self, critic, real, fake, labels=None, grad_scale=None, logits=None):
        real_logits, fake_logits = logits if logits is not None else (
            _logits(critic, real, labels), _logits(critic, fake, labels)
        )  # fmt: skip
        real_logits, fake_logits = real_logits.float(), fake_logits.float()
        self._update(real_logits.detach().mean(), fake_logits.detach().mean())
        over_real = real_logits - self.anchor_fake
        under_fake = self.anchor_real - fake_logits
        if self.one_sided:
            over_real, under_fake = torch.relu(over_real), torch.relu(under_fake)
        return over_real.pow(2).mean() + under_fake.pow(2).mean()

    def rank_state(self) -> dict:
        if self.anchor_real is None:
            return {}
        return {
            "anchor_real": self.anchor_real.detach().cpu(),
            "anchor_fake": self.anchor_fake.detach().cpu(),
        }

    def load_rank_state(self, state: dict) -> None:
        self.anchor_real = state.get("anchor_real")
        self.anchor_fake = state.get("anchor_fake")


def shift_and_flip(x: Tensor, translate: float = 0.125, xflip: bool = False) -> Tensor:
    """bCR's transform T: a whole-pixel shift of up to ``translate`` of the side (zeros moved in)
    and, with ``xflip``, a mirror of a random half of the images."""
    check_images(x, "bCR")
    n, size = x.shape[0], x.shape[-1]
    shift = round(size * translate)
    rows, cols = source_grid(n, size, x.device)
    rows = rows - torch.randint(-shift, shift + 1, (n, 1, 1), device=x.device)
    cols = cols - torch.randint(-shift, shift + 1, (n, 1, 1), device=x.device)
    if xflip:
        cols = torch.where(torch.rand(n, 1, 1, device=x.device) < 0.5, size - 1 - cols, cols)
    valid = (rows >= 0) & (rows < size) & (cols >= 0) & (cols < size)
    return gather_pixels(x, rows, cols, valid)


class BalancedConsistency(Regularizer):
    """Balanced consistency regularisation, bCR (Zhao et al. 2021, "Improved Consistency
    Regularization for GANs"): D's output should not change under a semantics-preserving
    transform T, on real and on generated images:

        real x E[||D(x) - D(T(x))||^2] + fake x E[||D(G(z)) - D(T(G(z)))||^2]

    Gradients flow through both sides. D(x) and D(G(z)) are the logits D's step computed
    (with ``model.augment`` on, of the augmented batch), so only D(T(.)) costs a forward
    each. The paper weights both sides 10 on CIFAR-10 with flips and shifts of up to 4 of
    32 pixels (``translate=0.125``); flips are off by default here since digits are not
    mirror-symmetric. ``transform`` replaces T.
    """

    name = "bcr"
    takes_logits = True

    def __init__(
        self,
        weight: float = 10.0,
        interval: int = 1,
        real: float = 1.0,
        fake: float = 1.0,
        translate: float = 0.125,
        xflip: bool = False,
        transform: Callable[[Tensor], Tensor] | None = None,
    ) -> None:
        super().__init__(weight, interval)
        self.real, self.fake = float(real), float(fake)
        self.translate, self.xflip = float(translate), bool(xflip)
        self.transform = transform or (lambda x: shift_and_flip(x, self.translate, self.xflip))

    def __call__(self, critic, real, fake, labels=None, grad_scale=None, logits=None):
        real_logits, fake_logits = logits if logits is not None else (
            _logits(critic, real, labels), _logits(critic, fake.detach(), labels)
        )  # fmt: skip
        total = real_logits.new_zeros((), dtype=torch.float32)
        for weight, x, base in ((self.real, real, real_logits), (self.fake, fake, fake_logits)):
            if weight:
                moved = _logits(critic, self.transform(x.detach()), labels)
                total = (
                    total + weight * (base.float() - moved.float()).pow(2).reshape(len(x), -1).sum(1).mean()
                )
        return total
