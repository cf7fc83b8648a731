"""GAN: the LightningModule that trains a generator against a discriminator.

Manual optimisation: every training batch is one discriminator step, and every
``n_critic``-th discriminator step is followed by one generator step. Counters are
explicit (``g_steps``, ``d_steps``, ``images_seen``) and Lightning's ``global_step``
is advanced once per *generator* step, so ``trainer.max_steps`` and checkpoint
intervals count generator steps, which is how GAN papers state budgets.

The inner loop talks to the raw torch optimizers rather than Lightning's wrappers:
on small nets the wrappers, per-call hooks and ``self.log`` cost as much as the
step itself (see benchmarks/overhead.py). Mixed precision keeps working because
the precision plugin's autocast still wraps ``training_step`` and its grad scaler,
when there is one, is applied here.
"""

from __future__ import annotations

import copy
import os
import random
import warnings
from collections.abc import Callable, Mapping

import lightning as L
import numpy as np
import torch
from torch import Tensor, nn

from ganforge.losses import AdversarialLoss, needs_real_logits_for_g
from ganforge.regularizers import Regularizer

# Lightning turns on the NVML-based CUDA check at import so that forks stay safe on GPU
# machines; with no GPU that check re-probes the NVIDIA library on every
# optimizer.step() (0.2-0.4 ms). Where NVML sees no device there is nothing to protect.
if os.environ.get("PYTORCH_NVML_BASED_CUDA_CHECK") == "1" and torch.cuda.device_count() == 0:
    os.environ["PYTORCH_NVML_BASED_CUDA_CHECK"] = "0"

# The EMA generator is in eval mode on purpose.
warnings.filterwarnings("ignore", message=r"Found \d+ module\(s\) in eval mode")

OptimizerFactory = Callable[..., torch.optim.Optimizer]
SchedulerFactory = Callable[..., torch.optim.lr_scheduler.LRScheduler]


def _grad_norm(params: list[Tensor]) -> Tensor:
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return torch.zeros(())
    return torch.linalg.vector_norm(torch.stack(torch._foreach_norm(grads)))


def _numpy_state_to_plain(state: tuple) -> tuple:
    kind, keys, pos, has_gauss, cached = state
    return (kind, torch.from_numpy(keys.astype(np.int64)), int(pos), int(has_gauss), float(cached))


def _numpy_state_from_plain(state: tuple) -> tuple:
    kind, keys, pos, has_gauss, cached = state
    return (kind, keys.numpy().astype(np.uint32), pos, has_gauss, cached)


class GAN(L.LightningModule):
    """Generator, discriminator, adversarial loss and the schedule that ties them.

    Args:
        generator / discriminator: the networks (see ``ganforge.nets``).
        g_optimizer / d_optimizer: partial optimizers, called with the parameters.
        loss: the adversarial objective.
        regularizers: discriminator regularizers, by name.
        n_critic: discriminator steps per generator step.
        g_scheduler / d_scheduler: optional partial LR schedulers, stepped once per
            step of their own network.
        grad_clip: clip each network's gradient norm to this value (None: off).
        ema_decay: decay of the EMA generator used for samples and metrics (None: off,
            samples come from the training generator).
        ema_warmup: ramp the decay as min(decay, (1+t)/(10+t)) over the first steps, so
            the average is not dominated by the random initialisation.
        max_kimg: stop after this many thousand real images shown to D (None: off).
        minibatch_size: split each loader batch into minibatches of this size, one
            discriminator step each (None: one step per loader batch). A loader that
            serves several minibatches at once spreads Lightning's per-batch cost
            (hooks, transfer, logging checks) over several steps; it matters for
            nets whose step takes a few milliseconds.
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
        max_kimg: float | None = None,
        minibatch_size: int | None = None,
    ) -> None:
        super().__init__()
        if int(n_critic) < 1:
            raise ValueError(f"n_critic must be >= 1, got {n_critic}")
        if ema_decay is not None and not 0.0 <= ema_decay < 1.0:
            raise ValueError(f"ema_decay must be in [0, 1) or null, got {ema_decay}")
        self.automatic_optimization = False
        self.generator = generator
        self.discriminator = discriminator
        self.generator_ema = (
            copy.deepcopy(generator).eval().requires_grad_(False) if ema_decay is not None else None
        )
        self.g_optimizer_factory, self.d_optimizer_factory = g_optimizer, d_optimizer
        self.g_scheduler_factory, self.d_scheduler_factory = g_scheduler, d_scheduler
        self.loss = loss
        self.regularizers = dict(regularizers or {})
        self.n_critic = int(n_critic)
        self.grad_clip = grad_clip
        self.ema_decay, self.ema_warmup = ema_decay, ema_warmup
        self.max_kimg = max_kimg
        self.minibatch_size = int(minibatch_size) if minibatch_size else None
        self.g_steps = 0
        self.d_steps = 0
        self.images_seen = 0
        # The config that built this module, stored in checkpoints so a checkpoint
        # can be rebuilt without Hydra; the pipeline fills it in.
        self.run_config: dict | None = None
        self._g_real_logits = needs_real_logits_for_g(loss)
        self._stats: dict[str, Tensor] = {}
        # (generator, discriminator) as the training steps call them: the DistributedDataParallel
        # wrappers that ganforge.strategy.GANDDPStrategy sets, None for the plain nets. Each step
        # calls the wrapper of the network it updates and the plain other one, so every backward
        # reduces one wrapper's gradients, all of them. A tuple: nn.Module registers no submodule,
        # and state dicts keep their keys.
        self.ddp_nets: tuple[nn.Module, nn.Module] | None = None

    # ----------------------------------------------------------------- properties
    @property
    def latent_dim(self) -> int:
        return int(self.generator.latent_dim)

    @property
    def sampling_generator(self) -> nn.Module:
        return self.generator_ema if self.generator_ema is not None else self.generator

    # ----------------------------------------------------------------- optimizers
    def configure_optimizers(self):
        for name, factory in (
            ("g_optimizer", self.g_optimizer_factory),
            ("d_optimizer", self.d_optimizer_factory),
        ):
            lr = getattr(factory, "keywords", {}).get("lr")
            if lr is not None and not float(lr) > 0:
                raise ValueError(f"model.{name}.lr must be positive, got {lr}")
        g_opt = self.g_optimizer_factory(params=self.generator.parameters())
        d_opt = self.d_optimizer_factory(params=self.discriminator.parameters())
        scheds = []
        if self.g_scheduler_factory is not None:
            scheds.append({"scheduler": self.g_scheduler_factory(optimizer=g_opt), "name": "lr-generator"})
        if self.d_scheduler_factory is not None:
            scheds.append(
                {"scheduler": self.d_scheduler_factory(optimizer=d_opt), "name": "lr-discriminator"}
            )
        return [g_opt, d_opt], scheds

    def on_fit_start(self) -> None:
        self._g_params = [p for p in self.generator.parameters() if p.requires_grad]
        self._d_params = [p for p in self.discriminator.parameters() if p.requires_grad]
        self._g_opt, self._d_opt = self.optimizers(use_pl_optimizer=False)
        self._g_sched = self._d_sched = None
        names = [s for s in (self.g_scheduler_factory, self.d_scheduler_factory)]
        scheds = iter(self.trainer.lr_scheduler_configs)
        if names[0] is not None:
            self._g_sched = next(scheds).scheduler
        if names[1] is not None:
            self._d_sched = next(scheds).scheduler
        # only fp16 needs loss scaling; bf16 and fp32 step directly
        self._scaler = getattr(self.trainer.precision_plugin, "scaler", None)
        if self.generator_ema is not None:
            self._ema_params = list(self.generator_ema.parameters())
            self._ema_buffers = list(self.generator_ema.buffers())
            self._g_all_params = list(self.generator.parameters())
            self._g_buffers = list(self.generator.buffers())

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

        Pass a CPU ``torch.Generator`` for reproducible draws that leave the global
        random state untouched, or ``z`` to choose the latents.
        """
        net = self.sampling_generator
        was_training = net.training
        net.eval()
        try:
            z = self.sample_latent(n, generator) if z is None else z.to(self.device)
            if labels is not None:
                labels = labels.to(self.device)
            return net(z, labels)
        finally:
            net.train(was_training)

    # ----------------------------------------------------------------- training
    def _backward_step(
        self, loss: Tensor, opt: torch.optim.Optimizer, params: list[Tensor], log: bool
    ) -> Tensor | None:
        opt.zero_grad(set_to_none=True)
        scaler = self._scaler
        if scaler is not None:
            scaler.scale(loss).backward()
            if self.grad_clip is not None or log:
                scaler.unscale_(opt)
        else:
            loss.backward()
        norm = _grad_norm(params) if log else None
        if self.grad_clip is not None:
            torch.nn.utils.clip_grad_norm_(params, self.grad_clip, foreach=True)
        if scaler is not None:
            scaler.step(opt)
            scaler.update()
        else:
            opt.step()
        return norm

    def _d_step(self, real: Tensor, labels: Tensor | None, log: bool) -> None:
        critic = self.ddp_nets[1] if self.ddp_nets else self.discriminator
        with torch.no_grad():
            fake = self.generator(self.sample_latent(real.shape[0]), labels)
        real_logits = critic(real, labels)
        fake_logits = critic(fake, labels)
        loss = self.loss.d_loss(real_logits, fake_logits)
        reg_total = None
        for reg in self.regularizers.values():
            if reg.weight > 0 and reg.due(self.d_steps):
                term = reg(critic, real, fake, labels)
                reg_total = term if reg_total is None else reg_total + term
                loss = loss + (reg.weight * reg.interval) * term
        norm = self._backward_step(loss, self._d_opt, self._d_params, log)
        if self._d_sched is not None:
            self._d_sched.step()
        self.d_steps += 1
        self.images_seen += real.shape[0]
        if log:
            self._stats.update(
                d_loss=loss.detach(),
                d_real=real_logits.detach().float().mean(),
                d_fake=fake_logits.detach().float().mean(),
                d_grad_norm=norm,
            )
            if reg_total is not None:
                self._stats["reg"] = reg_total.detach()

    def _g_step(self, real: Tensor, labels: Tensor | None, log: bool) -> None:
        # no weight gradients for D in G's backward; D's own list, so frozen parameters stay frozen
        for p in self._d_params:
            p.requires_grad_(False)
        generator = self.ddp_nets[0] if self.ddp_nets else self.generator
        try:
            fake = generator(self.sample_latent(real.shape[0]), labels)
            fake_logits = self.discriminator(fake, labels)
            real_logits = self.discriminator(real, labels) if self._g_real_logits else None
            loss = self.loss.g_loss(fake_logits, real_logits)
            norm = self._backward_step(loss, self._g_opt, self._g_params, log)
        finally:
            for p in self._d_params:
                p.requires_grad_(True)
        if self._g_sched is not None:
            self._g_sched.step()
        self.g_steps += 1
        self._update_ema()
        # Lightning's global_step then counts generator steps (max_steps, checkpoint intervals)
        progress = self.trainer.fit_loop.epoch_loop.manual_optimization.optim_step_progress
        progress.increment_ready()
        progress.increment_completed()
        if log:
            self._stats.update(g_loss=loss.detach(), g_grad_norm=norm)

    @torch.no_grad()
    def _update_ema(self) -> None:
        if self.generator_ema is None:
            return
        decay = self.ema_decay
        if self.ema_warmup:
            decay = min(decay, (1 + self.g_steps) / (10 + self.g_steps))
        torch._foreach_lerp_(self._ema_params, self._g_all_params, 1.0 - decay)
        if self._ema_buffers:
            torch._foreach_copy_(self._ema_buffers, self._g_buffers)

    def training_step(self, batch, batch_idx: int) -> None:
        x, y = batch
        conditional = bool(getattr(self.discriminator, "num_classes", 0))
        # statistics are gathered only on batches whose logs Lightning will write
        log = self.trainer._logger_connector.should_update_logs
        mb = self.minibatch_size or len(x)
        max_steps = self.trainer.max_steps
        for start in range(0, len(x), mb):
            if self._budget_spent(max_steps):
                break
            real = x[start : start + mb]
            labels = y[start : start + mb] if conditional else None
            self._d_step(real, labels, log)
            if self.d_steps % self.n_critic == 0:
                self._g_step(real, labels, log)
        if log:
            self._log_stats()
        if self._budget_spent(max_steps):
            self.trainer.should_stop = True

    def _budget_spent(self, max_steps: int) -> bool:
        if 0 <= max_steps <= self.g_steps:
            return True
        return self.max_kimg is not None and self.images_seen >= self.max_kimg * 1000

    def _log_stats(self) -> None:
        # values of this batch's steps; G's are absent on batches without a G step
        metrics = {f"train/{k}": v.float() for k, v in self._stats.items()}
        self._stats.clear()
        metrics["train/kimg"] = self.images_seen / 1000.0
        metrics["train/g_steps"] = float(self.g_steps)
        self.log_dict(metrics, on_step=True, on_epoch=False, prog_bar=False)
        for key in ("train/d_loss", "train/g_loss"):
            if key in metrics:
                self.log(key.split("/")[1], metrics[key], on_step=True, prog_bar=True, logger=False)

    # ----------------------------------------------------------------- checkpoints
    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["ganforge"] = {
            "g_steps": self.g_steps,
            "d_steps": self.d_steps,
            "images_seen": self.images_seen,
            "config": self.run_config,
            "rng": {
                "torch": torch.get_rng_state(),
                "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
                # plain types and tensors only: Lightning loads checkpoints with weights_only=True
                "numpy": _numpy_state_to_plain(np.random.get_state()),
                "python": random.getstate(),
            },
        }

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        state = checkpoint.get("ganforge")
        if state is None:
            raise ValueError(
                "this checkpoint was not written by ganforge (no 'ganforge' entry); "
                "pass a checkpoint from a ganforge run's checkpoints/ directory"
            )
        self.g_steps, self.d_steps, self.images_seen = (
            state["g_steps"],
            state["d_steps"],
            state["images_seen"],
        )
        # Restored now, before Lightning builds the data iterator (which draws its
        # shuffle seed and first batches): a resumed run then draws the same noise and
        # batches as the run that wrote the checkpoint.
        rng = state.get("rng")
        if rng:
            torch.set_rng_state(rng["torch"])
            if rng["cuda"] and torch.cuda.is_available():
                torch.cuda.set_rng_state_all(rng["cuda"])
            np.random.set_state(_numpy_state_from_plain(rng["numpy"]))
            random.setstate(rng["python"])

    @property
    def kimg(self) -> float:
        return self.images_seen / 1000.0

    def extra_repr(self) -> str:
        return f"loss={self.loss!r}, n_critic={self.n_critic}, ema_decay={self.ema_decay}"


__all__ = ["GAN"]
