"""A network as the module base trains it, and the small pieces of its updates.

``Network`` is what ``AdversarialModule.add_network`` records: the module, its optimizer
and scheduler factories, clipping, its EMA copy, and what fit start fills in (the torch
and Lightning optimizers, the parameters each step touches, the EMA's tensors).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from lightning_utilities.core.apply_func import apply_to_collection
from torch import Tensor, nn

OptimizerFactory = Callable[..., torch.optim.Optimizer]
SchedulerFactory = Callable[..., torch.optim.lr_scheduler.LRScheduler]


@dataclass(eq=False)
class Network:
    """A trained network and what its updates need; the fields after ``ema_rampup`` are set at fit start."""

    name: str
    module: nn.Module
    optimizer_factory: OptimizerFactory
    scheduler_factory: SchedulerFactory | None
    grad_clip: float | None
    ema: nn.Module | None
    ema_decay: float | None
    ema_warmup: bool
    lazy_interval: int
    axis: bool
    # an EMA half-life in real images (with an optional ramp-up) in place of ``ema_decay``
    ema_halflife_kimg: float | None = None
    ema_rampup: float | None = None
    optimizer: torch.optim.Optimizer | None = None
    lightning_optimizer: Any = None
    scheduler: Any = None
    trainable: list[Tensor] = field(default_factory=list)
    optimized: list[Tensor] = field(default_factory=list)  # every parameter of the optimizer
    # (EMA parameters, parameters, EMA buffers, buffers), and whether the parameters need a cast
    ema_tensors: tuple[list[Tensor], ...] = ()
    ema_cast: bool = False

    def ema_beta(self, step: int, images: int = 0, batch: int = 0) -> float:
        """The EMA's decay for this network's ``step``-th step.

        With a half-life (StyleGAN2-ADA, Karras et al. 2020, and R3GAN): ``images`` is the
        real images the run saw before this step's batch, ``batch`` the real images this step
        stands for (both summed over ranks); the half-life, capped at ``images * ema_rampup``
        when a ramp-up is set, is h images, and beta = 0.5 ** (batch / h). A pure function of
        the counters, so a resumed run averages as the uninterrupted one would.
        """
        if self.ema_halflife_kimg is None:
            decay = self.ema_decay
            if self.ema_warmup:
                decay = min(decay, (1 + step) / (10 + step))
            return decay
        if batch <= 0:
            raise ValueError(
                f"the {self.name}'s EMA half-life is in images, but its step stood for {batch} images: "
                "pass ema_images to AdversarialModule.step"
            )
        halflife = self.ema_halflife_kimg * 1000.0
        if self.ema_rampup is not None:
            halflife = min(halflife, images * self.ema_rampup)
        return 0.5 ** (batch / max(halflife, 1e-8))

    @torch.no_grad()
    def update_ema(self, step: int, images: int = 0, batch: int = 0) -> None:
        """One EMA update after this network's ``step``-th step (fit start filled ``ema_tensors``);
        ``images``/``batch`` matter with a half-life only (``ema_beta``)."""
        decay = self.ema_beta(step, images, batch)
        ema_params, params, ema_buffers, buffers = self.ema_tensors
        if self.ema_cast:  # bf16/fp16 training weights, float32 average
            params = [p.to(e.dtype) for p, e in zip(params, ema_params)]
        torch._foreach_lerp_(ema_params, params, 1.0 - decay)
        if ema_buffers:
            torch._foreach_copy_(ema_buffers, buffers)


def grad_norm(params: list[Tensor]) -> Tensor:
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return torch.zeros((), device=params[0].device if params else None)
    return torch.linalg.vector_norm(torch.stack(torch._foreach_norm(grads)))


def lazy_regularization_correction(optimizer: torch.optim.Optimizer, interval: int) -> None:
    """StyleGAN2's correction (Karras et al. 2020, appendix B) for a network regularised every
    ``interval`` steps: learning rate x c and Adam betas ** c, with c = interval / (interval + 1)."""
    c = interval / (interval + 1)
    for group in optimizer.param_groups:
        group["lr"] = group["lr"] * c
        if "betas" in group:
            group["betas"] = tuple(b**c for b in group["betas"])


def split_batch(batch: Any, size: int | None) -> list[Any]:
    """``batch`` in minibatches of ``size`` rows (one when None): views, cut in one call per
    tensor for the usual (x, y) tuple."""
    if type(batch) in (tuple, list) and all(isinstance(t, Tensor) for t in batch):
        if size is None or size >= len(batch[0]):
            return [batch]
        return [type(batch)(parts) for parts in zip(*(t.split(size) for t in batch))]
    lengths: list[int] = []
    apply_to_collection(batch, Tensor, lambda t: lengths.append(len(t)))
    n = lengths[0]
    size = min(size or n, n)
    return [
        apply_to_collection(batch, Tensor, Tensor.__getitem__, slice(s, s + size)) for s in range(0, n, size)
    ]
