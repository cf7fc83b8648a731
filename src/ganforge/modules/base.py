"""AdversarialModule: the machinery every GAN family shares, whatever its networks.

A family (``GAN``; translation and text families next) registers its networks once
(``add_network``) and writes ``training_step`` with three calls: ``minibatches(batch)``
for its iterations, ``step(names, loss)`` to update networks on a loss, and
``frozen(name)`` to keep a network out of another's backward. The rest follows from
the names:

- one optimizer (and optional scheduler) per network, in registration order
  (checkpoints store optimizer states in that order);
- ``step``: zero_grad, backward (scaled when fp16 has a grad scaler), unscale, gradient
  norm on logged steps, clipping, optimizer and scheduler steps, EMA, counters;
- one step axis: the network registered with ``axis=True`` (the generator of a GAN) is
  stepped through its Lightning optimizer, so ``trainer.global_step`` counts its steps
  and nothing else; the others go to torch directly, since a Lightning optimizer step
  would count too. ``trainer.max_steps``, checkpoint intervals and every scalar, image
  and metric a run logs (``ganforge.modules.logs``) share that axis;
- statistics: ``record`` keeps values only in iterations whose axis step will be logged
  (every ``trainer.log_every_n_steps`` axis steps); they are written once, after it;
- counters of steps and of real images (summed over ranks: every rank steps in lockstep
  on equal batches) per network, the budget (``max_steps``, ``max_kimg``), the random
  state, all in checkpoints (``checkpoint_format``);
- EMA copies stay float32 under ``bf16-true``/``16-true`` precision;
- the divergence guard (``ganforge.modules.divergence``): a non-finite loss, gradient
  norm or weight stops the run, named, and no checkpoint is written after it;
- ``wrapped(name)``: under ``GANDDPStrategy`` every network has its own
  DistributedDataParallel, and the step that updates a network must call its wrapper.
"""

from __future__ import annotations

import copy
import os
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import lightning as L
import torch
from lightning.pytorch.utilities.rank_zero import rank_zero_warn
from torch import Tensor, nn

import ganforge
from ganforge.modules.checkpoint_format import FORMAT, random_state, restore_random_state, upgrade
from ganforge.modules.divergence import (
    DivergenceError,
    LossWatch,
    any_rank,
    bad_statistics,
    bad_weights,
    divergence_message,
    first_bad_loss,
)
from ganforge.modules.logs import flush, log_scalars
from ganforge.modules.network import (
    Network,
    OptimizerFactory,
    SchedulerFactory,
    grad_norm,
    lazy_regularization_correction,
    split_batch,
)

# Lightning turns on the NVML-based CUDA check at import so that forks stay safe on GPU
# machines; with no GPU that check re-probes the NVIDIA library on every optimizer step
# (0.2-0.4 ms). Where NVML sees no device there is nothing to protect.
if os.environ.get("PYTORCH_NVML_BASED_CUDA_CHECK") == "1" and torch.cuda.device_count() == 0:
    os.environ["PYTORCH_NVML_BASED_CUDA_CHECK"] = "0"

# EMA copies are in eval mode on purpose.
warnings.filterwarnings("ignore", message=r"Found \d+ module\(s\) in eval mode")


class AdversarialModule(L.LightningModule):
    """Base of the GAN families: named networks, one step call, one step axis, counters.

    Args:
        max_kimg: stop after this many thousand real images (all ranks; None: off).
        minibatch_size: cut each loader batch into minibatches of this size, one training
            iteration each (None: one iteration per loader batch). A loader that serves
            several minibatches at once spreads Lightning's per-batch cost over them.
    """

    def __init__(self, max_kimg: float | None = None, minibatch_size: int | None = None) -> None:
        super().__init__()
        self.automatic_optimization = False
        self.max_kimg = max_kimg
        self.minibatch_size = int(minibatch_size) if minibatch_size else None
        self._networks: dict[str, Network] = {}
        self._axis_net: Network | None = None
        self.step_counts: dict[str, int] = {}
        self.image_counts: dict[str, int] = {}
        # name -> DistributedDataParallel wrapper, set by ganforge.strategy.GANDDPStrategy; a plain
        # dict, so nn.Module registers no submodule and state dicts keep their keys
        self.ddp_wrappers: dict[str, nn.Module] | None = None
        # the config that built the module, stored in checkpoints; the pipeline fills it in
        self.run_config: dict | None = None
        self._stats: dict[str, Tensor] = {}
        self._now = _Iteration()
        self._scaler = None
        self._world_size = 1
        self._ema_from_checkpoint: dict[str, Tensor] = {}
        self._watch = LossWatch()

    # ----------------------------------------------------------------- networks
    def add_network(
        self,
        name: str,
        module: nn.Module,
        optimizer: OptimizerFactory,
        scheduler: SchedulerFactory | None = None,
        *,
        grad_clip: float | None = None,
        ema_decay: float | None = None,
        ema_warmup: bool = True,
        ema_halflife_kimg: float | None = None,
        ema_rampup: float | None = None,
        lazy_interval: int = 1,
        axis: bool = False,
    ) -> None:
        """Register ``module`` as attribute ``name`` (and its EMA copy as ``<name>_ema``).

        ``ema_warmup`` ramps the decay as min(decay, (1+t)/(10+t)) over the first steps;
        ``ema_halflife_kimg`` (with an optional ``ema_rampup``) replaces the fixed decay by a
        half-life in thousands of real images (``Network.ema_beta``; EMA on when either is set);
        ``lazy_interval`` > 1 applies ``lazy_regularization_correction`` to its optimizer;
        ``axis``: this network's steps are ``trainer.global_step`` (one network per module).
        """
        if name in self._networks:
            raise ValueError(f"a network named {name!r} is already registered")
        if axis and self._axis_net is not None:
            raise ValueError("only one network can set the step axis")
        if ema_decay is not None and not 0.0 <= ema_decay < 1.0:
            raise ValueError(f"ema_decay must be in [0, 1) or null, got {ema_decay}")
        if ema_halflife_kimg is not None and not 0.0 <= ema_halflife_kimg < float("inf"):
            raise ValueError(f"ema_halflife_kimg must be >= 0 or null, got {ema_halflife_kimg}")
        if ema_rampup is not None and (ema_halflife_kimg is None or not ema_rampup > 0):
            raise ValueError(
                f"ema_rampup={ema_rampup}: a ramp-up must be > 0 and caps a half-life; set ema_halflife_kimg too"
            )
        self.add_module(name, module)
        has_ema = ema_decay is not None or ema_halflife_kimg is not None
        ema = copy.deepcopy(module).eval().requires_grad_(False) if has_ema else None
        self.add_module(f"{name}_ema", ema)
        self._networks[name] = Network(
            name,
            module,
            optimizer,
            scheduler,
            grad_clip,
            ema,
            ema_decay,
            ema_warmup,
            int(lazy_interval),
            axis,
            ema_halflife_kimg=None if ema_halflife_kimg is None else float(ema_halflife_kimg),
            ema_rampup=None if ema_rampup is None else float(ema_rampup),
        )
        self.step_counts[name] = 0
        self.image_counts[name] = 0
        if axis:
            self._axis_net = self._networks[name]

    @property
    def _axis(self) -> Network:
        if self._axis_net is None:
            raise TypeError(f"{type(self).__name__} registers no network with axis=True (the step axis)")
        return self._axis_net

    @property
    def networks(self) -> dict[str, nn.Module]:
        return {name: net.module for name, net in self._networks.items()}

    def network(self, name: str) -> Network:
        """The record of network ``name``: its optimizer (from fit start), EMA settings, interval."""
        try:
            return self._networks[name]
        except KeyError:
            raise KeyError(f"no network named {name!r}; registered: {sorted(self._networks)}") from None

    def wrapped(self, name: str) -> nn.Module:
        """What a step that updates ``name`` calls: its DDP wrapper if there is one, else the net."""
        wrappers = self.ddp_wrappers
        return wrappers[name] if wrappers else self._networks[name].module

    @contextmanager
    def frozen(self, *names: str) -> Iterator[None]:
        """No weight gradients for these networks' trainable parameters inside the block
        (parameters the user froze stay frozen after it)."""
        params = [p for name in names for p in self._trainable(self._networks[name])]
        for p in params:
            p.requires_grad_(False)
        try:
            yield
        finally:
            for p in params:
                p.requires_grad_(True)

    @staticmethod
    def _trainable(net: Network) -> list[Tensor]:
        if net.optimizer is not None:  # fixed at fit start
            return net.trainable
        return [p for p in net.module.parameters() if p.requires_grad]

    # ----------------------------------------------------------------- optimizers
    def configure_optimizers(self):
        optimizers, schedulers = [], []
        for net in self._networks.values():
            lr = getattr(net.optimizer_factory, "keywords", {}).get("lr")
            if lr is not None and not float(lr) > 0:
                raise ValueError(f"the {net.name}'s optimizer: lr must be positive, got {lr}")
            opt = net.optimizer_factory(params=net.module.parameters())
            if net.lazy_interval > 1:  # before any scheduler records the initial lr
                lazy_regularization_correction(opt, net.lazy_interval)
            optimizers.append(opt)
            if net.scheduler_factory is not None:
                schedulers.append(
                    {"scheduler": net.scheduler_factory(optimizer=opt), "name": f"lr-{net.name}"}
                )
        return optimizers, schedulers

    def on_fit_start(self) -> None:
        as_list = lambda x: x if isinstance(x, list) else [x]  # noqa: E731
        schedulers = {c.name: c.scheduler for c in self.trainer.lr_scheduler_configs}
        pairs = zip(as_list(self.optimizers(use_pl_optimizer=False)), as_list(self.optimizers()))
        for net, (opt, lightning_opt) in zip(self._networks.values(), pairs):
            net.optimizer, net.lightning_optimizer = opt, lightning_opt
            net.scheduler = schedulers.get(f"lr-{net.name}")
            net.trainable = [p for p in net.module.parameters() if p.requires_grad]
            net.optimized = [p for group in opt.param_groups for p in group["params"]]
        self._scaler = getattr(self.trainer.precision_plugin, "scaler", None)  # fp16 only
        self._world_size = self.trainer.world_size
        self._keep_ema_float32()
        for net in self._networks.values():
            if net.ema is not None:
                ema, module = net.ema, net.module
                net.ema_tensors = tuple(
                    list(t) for t in (ema.parameters(), module.parameters(), ema.buffers(), module.buffers())
                )
                net.ema_cast = any(e.dtype != p.dtype for e, p in zip(*net.ema_tensors[:2]))

    # ----------------------------------------------------------------- stepping
    def minibatches(self, batch: Any) -> Iterator[Any]:
        """The loader batch in minibatches of ``minibatch_size``, one iteration each, until the
        budget is spent; after an iteration whose axis step is logged, writes the statistics."""
        every, counts, axis, now = (
            self.trainer.log_every_n_steps,
            self.step_counts,
            self._axis.name,
            self._now,
        )
        for minibatch in split_batch(batch, self.minibatch_size):
            if self.budget_spent():
                break
            axis_step = counts[axis]  # trainer.global_step, without its chain of properties
            now.log = every > 0 and (axis_step + 1) % every == 0
            yield minibatch
            if now.log and counts[axis] != axis_step:
                self._write_stats()
            elif self._watch.full:
                self.check_finite()
            now.log = False
        if self.budget_spent():
            self.trainer.should_stop = True

    def budget_spent(self) -> bool:
        max_steps = self.trainer.max_steps
        if 0 <= max_steps <= self.step_counts[self._axis.name]:
            return True
        return self.max_kimg is not None and self.kimg >= self.max_kimg

    def step(
        self, names: str | Sequence[str], loss: Tensor, images: int = 0, ema_images: int | None = None
    ) -> None:
        """Update the named networks on ``loss`` (one backward); ``images``: real images each saw;
        ``ema_images``: the real images one step stands for, for an EMA half-life in images
        (default ``images``; per rank, like ``images``)."""
        names = (names,) if isinstance(names, str) else tuple(names)
        nets = [self._networks[n] for n in names]
        counts = self.step_counts
        self._watch.keep((names, counts[names[0]] + 1, counts[self._axis_net.name]), loss)
        for net in nets:
            # what optimizer.zero_grad(set_to_none=True) does, without its dynamo guard and
            # profiler record (51 us a call against 26 here: benchmarks/step_parts.py)
            for p in net.optimized:
                p.grad = None
        self._backward(loss)
        scaler, axis = self._scaler, None
        for net in nets:
            if net.axis:
                axis = net
                continue
            if scaler is None:
                self._before_update(net)
                net.optimizer.step()
            else:
                if net.grad_clip is not None or self._now.log:
                    scaler.unscale_(net.optimizer)
                self._before_update(net)
                scaler.step(net.optimizer)
        if axis is not None:
            # unscales, calls on_before_optimizer_step (-> _before_update), steps, updates the
            # scaler, and counts the step into trainer.global_step
            axis.lightning_optimizer.step()
        elif scaler is not None:
            scaler.update()
        seen = images * self._world_size
        for net in nets:
            if net.scheduler is not None:
                net.scheduler.step()
            self.step_counts[net.name] += 1
            self.image_counts[net.name] += seen
        for net in nets:
            if net.ema is None:
                continue
            if net.ema_halflife_kimg is None:
                net.update_ema(self.step_counts[net.name])
            else:
                batch = (images if ema_images is None else ema_images) * self._world_size
                before = max(max(self.image_counts.values()) - batch, 0)  # seen before this batch
                net.update_ema(self.step_counts[net.name], before, batch)

    def _backward(self, loss: Tensor) -> None:
        # not Lightning's manual_backward: the per-network DDP wrappers need no reducer
        # preparation from the strategy, and its backward hooks would run on every step
        (loss if self._scaler is None else self._scaler.scale(loss)).backward()

    def on_before_optimizer_step(self, optimizer) -> None:
        if optimizer is self._axis.optimizer:
            self._before_update(self._axis)

    def _before_update(self, net: Network) -> None:
        if self._now.log:
            self._stats[f"{net.name}_grad_norm"] = grad_norm(net.trainable)
        if net.grad_clip is not None:
            torch.nn.utils.clip_grad_norm_(net.trainable, net.grad_clip, foreach=True)

    @property
    def grad_scale(self) -> Tensor | None:
        """The fp16 loss scale as a tensor (None without a scaler). Penalties that differentiate
        inside the step scale their inner gradient by it, as torch's AMP gradient-penalty
        recipe does, so that it does not underflow in float16."""
        if self._scaler is None:
            return None
        return self._scaler.scale(torch.ones((), device=self.device))

    def on_train_epoch_end(self) -> None:
        self.check_finite()
        flush(self.trainer)

    # ----------------------------------------------------------------- EMA
    def _keep_ema_float32(self) -> None:
        # bf16-true/16-true convert the whole module after a checkpoint's weights were loaded
        # into it: cast the EMA copies back and refill them with the checkpoint's float32 values
        cast = False
        for net in self._networks.values():
            if net.ema is not None and any(p.dtype != torch.float32 for p in net.ema.parameters()):
                net.ema.float()
                cast = True
        if cast and self._ema_from_checkpoint:
            self.load_state_dict(self._ema_from_checkpoint, strict=False)
        self._ema_from_checkpoint = {}

    # ----------------------------------------------------------------- statistics
    @property
    def logging_due(self) -> bool:
        """Whether this iteration's statistics will be written (compute them only then)."""
        return self._now.log

    def record(self, **values: Tensor) -> None:
        """Keep statistics of this iteration, written as ``train/<key>`` after its axis step."""
        if self._now.log:
            self._stats.update(values)

    def record_named(self, values: dict[str, Tensor]) -> None:
        """As ``record``, under the names given (``aug/p``), without the ``train/`` prefix."""
        if self._now.log:
            self._stats.update({f"{_NAMED}{k}": v for k, v in values.items()})

    def _write_stats(self) -> None:
        stats, self._stats = self._stats, {}
        steps, losses = self._watch.take()
        parts = [v.detach().float().reshape(()) for v in stats.values()] + losses
        values = torch.stack(parts).tolist() if parts else []  # one device sync for all
        metrics = {
            k.removeprefix(_NAMED) if k.startswith(_NAMED) else f"train/{k}": v for k, v in zip(stats, values)
        }
        found = (first_bad_loss(steps, values[len(stats) :], self._axis.name), bad_statistics(metrics))
        self._stop_if_diverged("; ".join(f for f in found if f) or None)
        metrics["train/kimg"] = self.kimg
        for net in self._networks.values():
            for i, group in enumerate(net.optimizer.param_groups):
                metrics[f"lr-{net.name}" + (f"/pg{i + 1}" if i else "")] = float(group["lr"])
        metrics["epoch"] = self.current_epoch
        log_scalars(self.trainer, metrics, step=self.trainer.global_step)

    @property
    def kimg(self) -> float:
        return max(self.image_counts.values(), default=0) / 1000.0

    # ----------------------------------------------------------------- divergence
    def check_finite(self, weights: bool = False) -> None:
        """Raise ``DivergenceError`` if a loss kept since the last check (or, with ``weights``,
        a parameter or buffer) is not finite, on any rank."""
        steps, losses = self._watch.take()
        values = torch.stack(losses).tolist() if losses else []
        problem = first_bad_loss(steps, values, self._axis.name) if self._axis_net is not None else None
        if problem is None and weights:
            problem = bad_weights(self.state_dict(keep_vars=True).items())
        self._stop_if_diverged(problem)

    def _stop_if_diverged(self, problem: str | None) -> None:
        trainer = self._trainer
        if trainer is None:
            if problem is not None:
                raise DivergenceError(problem)
            return
        if not any_rank(problem is not None, self.device):
            return
        problem = problem or "another rank saw a non-finite loss or weight"
        where = f"detected at step {trainer.global_step}, epoch {trainer.current_epoch}"
        if trainer.world_size > 1:
            where += f", rank {trainer.global_rank}"
        last = getattr(trainer.checkpoint_callback, "last_model_path", "") or None
        raise DivergenceError(divergence_message(problem, where, last))

    # ----------------------------------------------------------------- checkpoints
    def on_save_checkpoint(self, checkpoint: dict) -> None:
        # a diverged run writes nothing: the checkpoints already on disk stay the good ones
        self.check_finite(weights=True)
        checkpoint["ganforge"] = {
            "format": FORMAT,
            "version": ganforge.__version__,
            "steps": dict(self.step_counts),
            "images": dict(self.image_counts),
            "world_size": self.trainer.world_size,
            "config": self.run_config,
            "rng": random_state(),
            "rank_state": self.rank_state(),
        }

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        state = upgrade(checkpoint)
        self.load_counters(state)
        if state["world_size"] != self.trainer.world_size:
            rank_zero_warn(
                f"resuming a checkpoint of {state['world_size']} process(es) on {self.trainer.world_size}: "
                "weights, optimizer states and counters (images over all ranks) carry over; each rank's "
                "noise is re-seeded, so the run continues, but not bit for bit as it would have"
            )
        # Restored now, before Lightning builds the data iterator (which draws its shuffle
        # seed and first batches): a resumed run draws the noise and batches it would have.
        if state.get("rng"):
            restore_random_state(state["rng"])
        self.load_rank_state(self._own_rank_state(checkpoint, state))
        prefixes = tuple(f"{name}_ema." for name, net in self._networks.items() if net.ema is not None)
        self._ema_from_checkpoint = {
            k: v for k, v in checkpoint.get("state_dict", {}).items() if prefixes and k.startswith(prefixes)
        }

    def _own_rank_state(self, checkpoint: dict, state: dict) -> dict:
        # GANDDPStrategy stores every rank's; from another world size, rank 0's for all
        ddp = checkpoint.get("ganforge_ddp") or {}
        ranks = ddp.get("rank_state")
        if ranks and ddp.get("world_size") == self.trainer.world_size:
            return ranks[self.trainer.global_rank] or {}
        return state.get("rank_state") or {}

    def rank_state(self) -> dict:
        """State a family keeps between steps that differs between DDP ranks and is not in the
        state dict (ADA's sign sums, LeCam's anchors): checkpointed per rank, so a resumed run
        continues each rank's own. Families override it with ``load_rank_state``."""
        return {}

    def load_rank_state(self, state: dict) -> None:
        pass

    def load_counters(self, state: dict) -> None:
        """Step and image counters from ``checkpoint["ganforge"]`` (current format)."""
        for name in self._networks:
            self.step_counts[name] = int(state["steps"].get(name, 0))
            self.image_counts[name] = int(state["images"].get(name, 0))


_NAMED = "\0"  # marks a statistic recorded under its own name


class _Iteration:
    """Flags of the iteration in progress: a plain object, since setting an attribute of an
    nn.Module goes through its ``__setattr__`` checks, twice an iteration."""

    __slots__ = ("log",)

    def __init__(self) -> None:
        self.log = False
