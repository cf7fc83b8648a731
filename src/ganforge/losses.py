"""Adversarial objectives.

Each objective turns discriminator logits into the two players' losses. They are
stateless and know nothing of networks, so a test can check them on fixed logits.
Regularizers that need the networks (gradient penalties) live in ``regularizers.py``.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor


class AdversarialLoss:
    """Base class: ``d_loss`` is minimised by the discriminator, ``g_loss`` by the generator."""

    name = "base"

    def d_loss(self, real_logits: Tensor, fake_logits: Tensor) -> Tensor:
        raise NotImplementedError

    def g_loss(self, fake_logits: Tensor, real_logits: Tensor | None = None) -> Tensor:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class VanillaLoss(AdversarialLoss):
    """Goodfellow et al. 2014 with the non-saturating generator loss.

    softplus(-x) = -log(sigmoid(x)) is exact and stable for any logit, unlike
    log(sigmoid(x) + eps).
    """

    name = "vanilla"

    def d_loss(self, real_logits: Tensor, fake_logits: Tensor) -> Tensor:
        return F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean()

    def g_loss(self, fake_logits: Tensor, real_logits: Tensor | None = None) -> Tensor:
        return F.softplus(-fake_logits).mean()


class HingeLoss(AdversarialLoss):
    """Hinge loss (Lim & Ye 2017; Miyato et al. 2018)."""

    name = "hinge"

    def d_loss(self, real_logits: Tensor, fake_logits: Tensor) -> Tensor:
        return F.relu(1.0 - real_logits).mean() + F.relu(1.0 + fake_logits).mean()

    def g_loss(self, fake_logits: Tensor, real_logits: Tensor | None = None) -> Tensor:
        return -fake_logits.mean()


class WassersteinLoss(AdversarialLoss):
    """Critic loss of WGAN (Arjovsky et al. 2017); pair it with a gradient penalty."""

    name = "wgan"

    def d_loss(self, real_logits: Tensor, fake_logits: Tensor) -> Tensor:
        return fake_logits.mean() - real_logits.mean()

    def g_loss(self, fake_logits: Tensor, real_logits: Tensor | None = None) -> Tensor:
        return -fake_logits.mean()


class LeastSquaresLoss(AdversarialLoss):
    """LSGAN (Mao et al. 2017) with the 0-1 coding: a=0 fake, b=1 real, c=1 for G.

    Both sides carry the paper's factor 1/2.
    """

    name = "lsgan"

    def d_loss(self, real_logits: Tensor, fake_logits: Tensor) -> Tensor:
        return 0.5 * ((real_logits - 1.0) ** 2).mean() + 0.5 * (fake_logits**2).mean()

    def g_loss(self, fake_logits: Tensor, real_logits: Tensor | None = None) -> Tensor:
        return 0.5 * ((fake_logits - 1.0) ** 2).mean()


class RelativisticAverageLoss(AdversarialLoss):
    """Relativistic average GAN (Jolicoeur-Martineau 2018), RaSGAN form.

    The generator loss needs the real logits, so the module passes them.
    """

    name = "relativistic"

    def d_loss(self, real_logits: Tensor, fake_logits: Tensor) -> Tensor:
        return (
            F.softplus(-(real_logits - fake_logits.mean())).mean()
            + F.softplus(fake_logits - real_logits.mean()).mean()
        )

    def g_loss(self, fake_logits: Tensor, real_logits: Tensor | None = None) -> Tensor:
        if real_logits is None:
            raise ValueError("RelativisticAverageLoss.g_loss needs real_logits")
        return (
            F.softplus(-(fake_logits - real_logits.mean())).mean()
            + F.softplus(real_logits - fake_logits.mean()).mean()
        )


class RelativisticPairingLoss(AdversarialLoss):
    """Relativistic pairing GAN, RpGAN (Jolicoeur-Martineau 2018; the loss of R3GAN, Huang
    et al. 2024): each real logit is compared with the fake logit drawn beside it,
    D on softplus(-(D(x_i) - D(G(z_i)))), G on softplus(-(D(G(z_i)) - D(x_i))).

    Pairing, not averaging, is what R3GAN's analysis needs: with R1 and R2 the objective
    has no mode-dropping local optima (their sec. 2). Both batches must be the same size.
    """

    name = "rpgan"

    def d_loss(self, real_logits: Tensor, fake_logits: Tensor) -> Tensor:
        return F.softplus(fake_logits - _paired(real_logits, fake_logits)).mean()

    def g_loss(self, fake_logits: Tensor, real_logits: Tensor | None = None) -> Tensor:
        if real_logits is None:
            raise ValueError("RelativisticPairingLoss.g_loss needs real_logits")
        return F.softplus(_paired(real_logits, fake_logits) - fake_logits).mean()


def _paired(real_logits: Tensor, fake_logits: Tensor) -> Tensor:
    if real_logits.shape != fake_logits.shape:
        raise ValueError(
            f"the relativistic pairing loss pairs each real logit with one fake logit, got "
            f"{tuple(real_logits.shape)} real and {tuple(fake_logits.shape)} fake: draw as many fakes as reals"
        )
    return real_logits


def needs_real_logits_for_g(loss: AdversarialLoss) -> bool:
    """Whether the generator step must also run the discriminator on real data."""
    return isinstance(loss, (RelativisticAverageLoss, RelativisticPairingLoss))


__all__ = [
    "AdversarialLoss",
    "HingeLoss",
    "LeastSquaresLoss",
    "RelativisticAverageLoss",
    "RelativisticPairingLoss",
    "VanillaLoss",
    "WassersteinLoss",
    "needs_real_logits_for_g",
]
