"""The divergence guard: a non-finite loss or gradient stops the run, named, before any checkpoint.

Reading a loss on the host every step would wait for the accelerator every step. Instead
each step's loss is kept (a reference to a detached scalar, no copy, no sync) and the
kept losses are checked together where the run synchronises anyway: on logging steps,
with the logged statistics (gradient norms among them) in the same transfer; at each
epoch's end; and before any checkpoint is written, when the weights are checked too. A
checkpoint of a diverged run is refused, so ``last.ckpt`` and every earlier checkpoint
keep the last good state.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import torch
import torch.distributed as dist
from torch import Tensor

# check at least this often when nothing is logged (trainer.log_every_n_steps = 0)
MAX_KEPT = 512


class DivergenceError(RuntimeError):
    """Training produced a non-finite loss, gradient or weight."""


Step = tuple[tuple[str, ...], int, int]  # networks stepped, their step number, the axis step


class LossWatch:
    """The losses of the steps since the last check, with who stepped when."""

    def __init__(self) -> None:
        self.steps: list[Step] = []
        self.losses: list[Tensor] = []

    def keep(self, step: Step, loss: Tensor) -> None:
        self.steps.append(step)
        self.losses.append(loss.detach())

    @property
    def full(self) -> bool:
        return len(self.losses) >= MAX_KEPT

    def take(self) -> tuple[list[Step], list[Tensor]]:
        steps, losses = self.steps, self.losses
        self.steps, self.losses = [], []
        return steps, [loss.float().reshape(()) for loss in losses]


def first_bad_loss(steps: Sequence[Step], values: Sequence[float], axis: str) -> str | None:
    """What the first non-finite loss was, in words; None when all are finite."""
    for (names, own, axis_step), value in zip(steps, values):
        if not math.isfinite(value):
            where = f"its step {own}" + (f", {axis} step {axis_step}" if names[0] != axis else "")
            return f"the loss of the {' + '.join(names)} was {value} at {where}"
    return None


def bad_statistics(stats: dict[str, float]) -> str | None:
    bad = [f"{k}={v}" for k, v in stats.items() if not math.isfinite(v)]
    return f"non-finite statistics: {', '.join(bad)}" if bad else None


def bad_weights(named: Iterable[tuple[str, Tensor]]) -> str | None:
    """The first parameter or buffer that holds a NaN or inf (floating tensors only)."""
    tensors = [(name, t) for name, t in named if t.is_floating_point()]
    if not tensors:
        return None
    finite = torch.stack([torch.isfinite(t).all() for _, t in tensors]).tolist()
    for (name, _), ok in zip(tensors, finite):
        if not ok:
            return f"the weights of {name} hold NaN or inf"
    return None


def any_rank(flag: bool, device: torch.device) -> bool:
    """Whether any rank raised the flag (the ranks must stop together, or the others hang)."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return flag
    t = torch.tensor([int(flag)], device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item())


def divergence_message(what: str, where: str, last_good: str | None) -> str:
    kept = (
        f"The last good checkpoint, {last_good}, is untouched: resume from it with ckpt_path={last_good}"
        if last_good
        else "No checkpoint had been written yet"
    )
    return (
        f"Training diverged: {what} ({where}). Nothing was saved after it. {kept}, with a lower "
        "learning rate (model.g_optimizer.lr / model.d_optimizer.lr), a gradient penalty "
        "(loss=wgan_gp) or gradient clipping (model.grad_clip)."
    )
