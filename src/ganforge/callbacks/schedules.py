"""Hyperparameters as functions of training progress.

Each entry moves one hyperparameter from ``start`` to ``end`` over a budget of thousands of
real images (``kimg``) or of generator steps (``steps``), by a half cosine (the default) or a
straight line, and holds ``end`` after it. R3GAN's recipe (Huang et al. 2024; brownvc/R3GAN,
training/training_loop.py) moves the learning rate, Adam's beta2, the R1/R2 weight gamma and
the EMA half-life this way, by cosine over 20 Mimg on CIFAR-10.

Targets, ``<name>.<what>``:

    <network>.lr, <network>.beta1, <network>.beta2   every param group of its optimizer
    <network>.ema_halflife_kimg                      its EMA half-life (``Network.ema_beta``)
    <regularizer>.weight                             ``module.regularizers[name].weight``

The values are set at the start of every loader batch from the run's counters alone (real
images seen, summed over ranks, or ``trainer.global_step``), so a resumed run sets exactly what
the uninterrupted one would and the callback has no state to checkpoint. A network regularised
lazily (interval k > 1, ``lazy_correction``) gets lr x c and betas ** c, c = k/(k+1), on top,
as at fit start. Scheduled values are logged as ``sched/<name>_<what>`` every
``trainer.log_every_n_steps`` generator steps, on the run's step axis.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import lightning as L

from ganforge.modules.logs import log_scalars

SHAPES = ("cosine", "linear")
NETWORK_TARGETS = ("lr", "beta1", "beta2", "ema_halflife_kimg")
REGULARIZER_TARGETS = ("weight",)


@dataclass(frozen=True)
class Schedule:
    """``start`` -> ``end`` over ``kimg`` thousand real images or ``steps`` generator steps."""

    target: str
    start: float
    end: float
    kimg: float | None = None
    steps: int | None = None
    shape: str = "cosine"

    def __post_init__(self) -> None:
        name, _, what = self.target.rpartition(".")
        if not name or what not in NETWORK_TARGETS + REGULARIZER_TARGETS:
            raise ValueError(
                f"schedule target {self.target!r}: write <network>.<{'|'.join(NETWORK_TARGETS)}> "
                f"or <regularizer>.weight, e.g. generator.lr or r1.weight"
            )
        if (self.kimg is None) == (self.steps is None):
            raise ValueError(f"schedule {self.target}: give its budget as kimg or as steps, one of them")
        budget = self.kimg if self.kimg is not None else self.steps
        if not budget > 0:
            raise ValueError(f"schedule {self.target}: the budget must be positive, got {budget}")
        if self.shape not in SHAPES:
            raise ValueError(f"schedule {self.target}: shape must be one of {SHAPES}, got {self.shape!r}")
        ok = {"lr": lambda v: v > 0, "beta1": lambda v: 0 <= v < 1, "beta2": lambda v: 0 <= v < 1}
        for v in (self.start, self.end):
            if not ok.get(what, lambda v: 0 <= v < math.inf)(v):
                raise ValueError(f"schedule {self.target}: {v} is out of range for {what}")

    @property
    def name(self) -> str:
        return self.target.rpartition(".")[0]

    @property
    def what(self) -> str:
        return self.target.rpartition(".")[2]

    def value(self, images: float, steps: int) -> float:
        """The value after ``images`` real images / ``steps`` generator steps."""
        now, budget = (images, self.kimg * 1000.0) if self.kimg is not None else (steps, self.steps)
        t = min(max(now / budget, 0.0), 1.0)
        w = 0.5 * (1.0 - math.cos(math.pi * t)) if self.shape == "cosine" else t
        return self.start + (self.end - self.start) * w


def _schedules(entries) -> list[Schedule]:
    items = entries.values() if isinstance(entries, Mapping) else entries
    out = [e if isinstance(e, Schedule) else Schedule(**dict(e)) for e in items]
    targets = [s.target for s in out]
    twice = sorted({t for t in targets if targets.count(t) > 1})
    if twice:
        raise ValueError(f"scheduled more than once: {twice}")
    return out


class Schedules(L.Callback):
    """Sets scheduled hyperparameters at every batch start (see the module docstring).

    Args:
        entries: ``Schedule``s or mappings of their fields; a list, or a mapping whose keys
            only label the entries (so that a command line can override one).
        log: write ``sched/<name>_<what>`` on logged steps.
    """

    def __init__(self, entries: Sequence[Mapping] | Mapping[str, Mapping] = (), log: bool = True) -> None:
        self.schedules = _schedules(entries)
        self.log = log
        self.values: dict[str, float] = {}
        self._batch_start_step = 0

    def on_fit_start(self, trainer: L.Trainer, pl_module) -> None:
        for s in self.schedules:
            if s.what == "weight":
                regularizers = getattr(pl_module, "regularizers", {}) or {}
                if s.name not in regularizers:
                    raise ValueError(
                        f"schedule {s.target}: no regularizer named {s.name!r} (the loss config has "
                        f"{sorted(regularizers)})"
                    )
                continue
            try:
                net = pl_module.network(s.name)
            except KeyError as err:
                raise ValueError(f"schedule {s.target}: {err.args[0]}") from None
            if s.what == "ema_halflife_kimg" and net.ema_halflife_kimg is None:
                raise ValueError(
                    f"schedule {s.target}: the {s.name} has no EMA half-life to schedule; "
                    "set model.ema_halflife_kimg (any value: the schedule replaces it)"
                )
            if s.what == "lr" and net.scheduler_factory is not None:
                raise ValueError(
                    f"schedule {s.target}: the {s.name} also has an LR scheduler; keep one of the two"
                )

    def on_train_batch_start(self, trainer: L.Trainer, pl_module, batch, batch_idx: int) -> None:
        images = getattr(pl_module, "images_seen", None)
        images = pl_module.kimg * 1000.0 if images is None else images
        steps = trainer.global_step
        self._batch_start_step = steps
        for s in self.schedules:
            value = s.value(images, steps)
            self.values[f"sched/{s.name}_{s.what}"] = value
            if s.what == "weight":
                pl_module.regularizers[s.name].weight = value
                continue
            net = pl_module.network(s.name)
            if s.what == "ema_halflife_kimg":
                net.ema_halflife_kimg = value
                continue
            # the lazy-regularisation correction fit start applied, kept on scheduled values
            c = net.lazy_interval / (net.lazy_interval + 1) if net.lazy_interval > 1 else 1.0
            for group in net.optimizer.param_groups:
                if s.what == "lr":
                    group["lr"] = value * c
                elif s.what == "beta1":
                    group["betas"] = (value**c, group["betas"][1])
                else:
                    group["betas"] = (group["betas"][0], value**c)

    def on_train_batch_end(self, trainer: L.Trainer, pl_module, outputs, batch, batch_idx: int) -> None:
        every, now = trainer.log_every_n_steps, trainer.global_step
        if self.log and self.values and every > 0 and now // every > self._batch_start_step // every:
            log_scalars(trainer, self.values, step=now)
