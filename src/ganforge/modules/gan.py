"""GAN: a generator against a discriminator, on images or 2-D points, conditional or not.

Every minibatch is one discriminator step on fresh noise, and every ``n_critic``-th is
followed by one generator step on fresh noise and the EMA update. The generator sets the
step axis, so ``trainer.max_steps`` and every logged x-axis count generator steps, which
is how GAN papers state budgets. The rest (optimizers, stepping, counters, logging,
checkpoints, DDP) is ``AdversarialModule``'s.

With ``augment`` (DiffAugment or ADA, ``ganforge.augment``) every image the discriminator
sees goes through it: reals and fakes in D's step, fakes (and reals, for the relativistic
losses) in G's step, and the inputs of the penalties, which differentiate through it.
ADA's p is adjusted from the real logits of D's steps.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor, nn

from ganforge.augment import AdaptiveAugment
from ganforge.augment import build as build_augment
from ganforge.losses import AdversarialLoss, needs_real_logits_for_g
from ganforge.modules.base import AdversarialModule, OptimizerFactory, SchedulerFactory
from ganforge.regularizers import Regularizer


class GAN(AdversarialModule):
    """Generator, discriminator, adversarial loss and the schedule that ties them.

    Args:
        generator / discriminator: the networks (see ``ganforge.nets``).
        g_optimizer / d_optimizer: partial optimizers, called with the parameters.
        loss: the adversarial objective.
        regularizers: discriminator penalties by name, each with a weight and an interval.
        n_critic: discriminator steps per generator step.
        g_scheduler / d_scheduler: optional partial LR schedulers, one step per step of
            their own network.
        grad_clip: clip each network's gradient norm to this value (None: off).
        ema_decay / ema_warmup: the EMA generator used for samples and metrics (None: off,
            samples come from the training generator); see ``AdversarialModule.add_network``.
        ema_halflife_kimg / ema_rampup: instead of a fixed decay, an EMA half-life in
            thousands of real images, capped at images seen x ``ema_rampup`` when set
            (StyleGAN2-ADA, R3GAN); each generator step stands for the n_critic minibatches
            before it. Setting the half-life turns the EMA on.
        lazy_correction: for penalties every k > 1 steps, scale D's learning rate by
            c = k/(k+1) and its Adam betas to beta**c, as StyleGAN2 does.
        augment / augment_options: ``none``, ``diffaugment`` or ``ada`` (or a module) and its
            options (``ganforge.augment``): what D sees, real and generated.
        max_kimg / minibatch_size: see ``AdversarialModule``.
    """

    def __init__(
        self,
        generator: nn.Module,
        discriminator: nn.Module,
        g_optimizer: OptimizerFactory,
        d_optimizer: OptimizerFactory,
        loss: AdversarialLoss,
        regularizers: Mapping[str, Regularizer] | None = None,
        n_critic: int = 1,
        g_scheduler: SchedulerFactory | None = None,
        d_scheduler: SchedulerFactory | None = None,
        grad_clip: float | None = None,
        ema_decay: float | None = 0.999,
        ema_warmup: bool = True,
        ema_halflife_kimg: float | None = None,
        ema_rampup: float | None = None,
        max_kimg: float | None = None,
        minibatch_size: int | None = None,
        lazy_correction: bool = False,
        augment: str | nn.Module | None = "none",
        augment_options: Mapping | None = None,
    ) -> None:
        super().__init__(max_kimg=max_kimg, minibatch_size=minibatch_size)
        if int(n_critic) < 1:
            raise ValueError(f"n_critic must be >= 1, got {n_critic}")
        self.loss, self.n_critic = loss, int(n_critic)
        self.regularizers = dict(regularizers or {})
        intervals = {r.interval for r in self.regularizers.values() if r.weight > 0}
        if lazy_correction and len(intervals) > 1:
            raise ValueError(
                f"lazy_correction needs one regularisation interval for D, got {sorted(intervals)}"
            )
        lazy = max(intervals) if lazy_correction and intervals else 1
        self.add_network(
            "generator", generator, g_optimizer, g_scheduler, grad_clip=grad_clip,
            ema_decay=ema_decay, ema_warmup=ema_warmup, ema_halflife_kimg=ema_halflife_kimg,
            ema_rampup=ema_rampup, axis=True,
        )  # fmt: skip
        self.add_network(
            "discriminator", discriminator, d_optimizer, d_scheduler, grad_clip=grad_clip, lazy_interval=lazy
        )
        self._g_real_logits = needs_real_logits_for_g(loss)
        self.augment = build_augment(augment, augment_options)

    # ----------------------------------------------------------------- what it is
    @property
    def latent_dim(self) -> int:
        return int(self.generator.latent_dim)

    @property
    def num_classes(self) -> int:
        """Classes the generator conditions on (0: unconditional)."""
        return int(getattr(self.generator, "num_classes", 0) or 0)

    @property
    def sampling_generator(self) -> nn.Module:
        return self.generator_ema if self.generator_ema is not None else self.generator

    @property
    def g_steps(self) -> int:
        return self.step_counts["generator"]

    @property
    def d_steps(self) -> int:
        return self.step_counts["discriminator"]

    @property
    def images_seen(self) -> int:
        """Real images shown to the discriminator, all ranks."""
        return self.image_counts["discriminator"]

    @property
    def _ada(self) -> AdaptiveAugment | None:
        return self.augment if isinstance(self.augment, AdaptiveAugment) else None

    # ----------------------------------------------------------------- sampling
    def sample_latent(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        z = torch.randn(
            n, self.latent_dim, generator=generator, device="cpu" if generator is not None else self.device
        )
        return z.to(self.device)

    @torch.no_grad()
    def sample(
        self,
        n: int,
        labels: Tensor | None = None,
        generator: torch.Generator | None = None,
        z: Tensor | None = None,
    ) -> Tensor:
        """``n`` samples from the EMA generator (the training generator when EMA is off).

        Pass a CPU ``torch.Generator`` for draws that are reproducible and leave the global
        random state untouched: latents, then (conditional models without ``labels``)
        uniform classes both come from it. ``z`` chooses the latents.
        """
        net = self.sampling_generator
        was_training = net.training
        net.eval()
        try:
            z = self.sample_latent(n, generator) if z is None else z.to(self.device)
            if labels is None and self.num_classes:
                device = "cpu" if generator is not None else self.device
                labels = torch.randint(self.num_classes, (n,), generator=generator, device=device)
            return net(z, None if labels is None else labels.to(self.device))
        finally:
            net.train(was_training)

    # ----------------------------------------------------------------- training
    def training_step(self, batch, batch_idx: int) -> None:
        conditional = bool(getattr(self.discriminator, "num_classes", 0))
        for real, labels in self.minibatches(batch):
            labels = labels if conditional else None
            self.discriminator_step(real, labels)
            if self.d_steps % self.n_critic == 0:
                self.generator_step(real, labels)

    def on_fit_start(self) -> None:
        super().on_fit_start()
        dm = getattr(self.trainer, "datamodule", None)
        # a ganforge datamodule says what it serves (image_size None: points); others are
        # checked by the augmentation itself at the first batch
        if self.augment is not None and dm is not None and getattr(dm, "image_size", 0) is None:
            raise ValueError(
                f"model.augment={type(self.augment).__name__} augments images, but "
                f"{type(dm).__name__} serves no images; set model.augment=none"
            )

    def seen_by_d(self, critic: nn.Module):
        """``critic`` as D's steps and penalties call it: through the augmentation when there is one."""
        return critic if self.augment is None else _Augmented(critic, self.augment)

    def discriminator_step(self, real: Tensor, labels: Tensor | None) -> None:
        critic = self.seen_by_d(self.wrapped("discriminator"))
        with torch.no_grad():
            fake = self.generator(self.sample_latent(real.shape[0]), labels)
        real_logits, fake_logits = critic(real, labels), critic(fake, labels)
        adversarial = self.loss.d_loss(real_logits, fake_logits)
        loss, penalties = adversarial, {}
        for name, reg in self.regularizers.items():
            if reg.weight > 0 and reg.due(self.d_steps):
                extra = {"logits": (real_logits, fake_logits)} if getattr(reg, "takes_logits", False) else {}
                term = reg(critic, real, fake, labels, grad_scale=self.grad_scale, **extra)
                penalties[f"reg/{name}"] = term
                loss = loss + (reg.weight * reg.interval) * term  # lazy: k times as strong, 1/k as often
        if self._ada is not None:
            self._ada.observe(real_logits)
        if self.logging_due:
            real_mean, fake_mean = real_logits.detach().float().mean(), fake_logits.detach().float().mean()
            self.record(d_loss=adversarial, d_real=real_mean, d_fake=fake_mean, **penalties)
        self.step("discriminator", loss, images=real.shape[0])
        ada = self._ada
        if ada is not None:
            if self.d_steps % ada.interval == 0:
                ada.adjust(real.shape[0] * self._world_size * ada.interval)
            self.record_named({"aug/p": ada.p, "aug/rt": ada.rt})

    def generator_step(self, real: Tensor, labels: Tensor | None) -> None:
        with self.frozen("discriminator"):  # G's backward runs through D without D's weight grads
            critic = self.seen_by_d(self.discriminator)
            fake = self.wrapped("generator")(self.sample_latent(real.shape[0]), labels)
            fake_logits = critic(fake, labels)
            real_logits = critic(real, labels) if self._g_real_logits else None
            loss = self.loss.g_loss(fake_logits, real_logits)
            self.record(g_loss=loss)
            self.step("generator", loss, ema_images=self.n_critic * real.shape[0])

    # ----------------------------------------------------------------- per-rank state
    def rank_state(self) -> dict:
        state = {f"reg/{n}": r.rank_state() for n, r in self.regularizers.items() if r.rank_state()}
        if self._ada is not None:
            state["ada"] = self._ada.rank_state()
        return state

    def load_rank_state(self, state: dict) -> None:
        for name, reg in self.regularizers.items():
            reg.load_rank_state(state.get(f"reg/{name}", {}))
        if self._ada is not None:
            self._ada.load_rank_state(state.get("ada", {}))

    def extra_repr(self) -> str:
        return (
            f"loss={self.loss!r}, n_critic={self.n_critic}, ema_decay={self._networks['generator'].ema_decay}"
        )


class _Augmented:
    """A critic that augments its input first (a plain object: no module registration)."""

    def __init__(self, critic: nn.Module, augment: nn.Module) -> None:
        self.critic, self.augment = critic, augment

    def __call__(self, x: Tensor, labels: Tensor | None = None) -> Tensor:
        return self.critic(self.augment(x), labels)


__all__ = ["GAN"]
