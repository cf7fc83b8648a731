"""Preemption: a signal becomes a checkpoint at the end of the batch in progress, then a clean exit.

A cluster stops a job with a signal: SIGTERM when it preempts or cancels it (then SIGKILL
after its grace period, 30 s by default on SLURM), SIGUSR1 or SIGUSR2 some time before the
time limit when the job asks for it (``#SBATCH --signal=USR1@90``; submitit asks for USR2).
A signal can arrive in the middle of a step, between the discriminator's update and the
generator's, so the handler only notes it. At the end of the batch in progress, where the
networks, optimizers, counters, the loader's place and the random streams agree, the run
writes ``checkpoints/last.ckpt`` and stops; resuming from it continues the run bit for
bit, mid-epoch included (``ganforge.data.resumable``).

Requeue signals (USR1/USR2) are then handed to whoever handled them before the run
started: Lightning's ``SLURMEnvironment`` (writes ``hpc_ckpt_<n>.ckpt`` and calls
``scontrol requeue``) or submitit under ``hydra/launcher=slurm`` (requeues the job).
Under SLURM the checkpoint is also linked as the next ``hpc_ckpt_<n>.ckpt`` in the run
directory, the file a requeued job resumes from without ``ckpt_path``.

Under DDP the ranks must stop at the same batch: every ``sync_every`` batches (and at
each epoch's end) they take the maximum of their flags in one all-reduce, so a signal
sent to one rank stops them all. A second signal while one is pending gets the handler
that was there before (Ctrl-C twice interrupts at once).

Lightning internals used here (the SLURM handler and ``hpc_save_path``) are checked by
tests/test_lightning_internals.py.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import threading
import time
from pathlib import Path
from typing import Any

import lightning as L
import torch
import torch.distributed as dist
from lightning.fabric.plugins.environments import SLURMEnvironment
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.trainer.connectors.checkpoint_connector import _CheckpointConnector
from lightning.pytorch.utilities.exceptions import SIGTERMException

log = logging.getLogger("ganforge")

_STOP, _REQUEUE = 1, 2


class Preemption(L.Callback):
    """Stop on ``stop_signals`` and ``requeue_signals`` with a resumable checkpoint.

    Args:
        stop_signals: names of signals that stop the run (after the checkpoint).
        requeue_signals: signals that stop it and are then passed on to the handler that
            was installed before training (a cluster's requeue); without one, they stop.
        sync_every: under DDP, agree on a pending signal every this many batches.
        dirpath: where ``last.ckpt`` goes; None: the ModelCheckpoint's folder, else
            ``<run dir>/checkpoints``.
    """

    def __init__(
        self,
        stop_signals: tuple[str, ...] = ("SIGTERM", "SIGINT"),
        requeue_signals: tuple[str, ...] = ("SIGUSR1", "SIGUSR2"),
        sync_every: int = 10,
        dirpath: str | None = None,
    ) -> None:
        if int(sync_every) < 1:
            raise ValueError(f"preemption.sync_every must be >= 1, got {sync_every}")
        self.signals = {_signal(n): _STOP for n in stop_signals}
        self.signals.update({_signal(n): _REQUEUE for n in requeue_signals})
        self.sync_every = int(sync_every)
        self.dirpath = dirpath
        self._previous: dict[int, Any] = {}
        self._pending = 0
        self._signum: int | None = None
        self._received_at = 0.0
        self.last_path: Path | None = None  # the checkpoint a signal produced

    # ------------------------------------------------------------------ handlers
    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # after Lightning registered its own handlers (in Trainer._run): ours replace them for
        # the training loop and keep them, to pass requeue signals on and to restore
        if threading.current_thread() is not threading.main_thread():
            return  # signal handlers can only be set in the main thread
        self._pending, self._signum = 0, None
        for signum in self.signals:
            self._previous[signum] = signal.getsignal(signum)
            signal.signal(signum, self._note)

    def _note(self, signum: int, frame) -> None:
        if self._signum == signum:  # twice: the user means it
            previous = self._previous.get(signum)
            self._restore()
            if callable(previous):
                previous(signum, frame)
            else:
                signal.raise_signal(signum)
            return
        self._pending = max(self._pending, self.signals[signum])
        self._signum = signum
        self._received_at = time.perf_counter()
        log.warning("Received %s: stopping after the batch in progress", signal.Signals(signum).name)

    def _restore(self) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler if handler is not None else signal.SIG_DFL)
        self._previous = {}

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._restore()

    def on_exception(
        self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException
    ) -> None:
        self._restore()

    # ------------------------------------------------------------------ stopping
    def on_train_batch_end(self, trainer: L.Trainer, pl_module, outputs, batch, batch_idx: int) -> None:
        if trainer.world_size == 1:
            if self._pending:
                self._stop(trainer, self._pending)
        elif (batch_idx + 1) % self.sync_every == 0:
            self._stop_if_any_rank(trainer)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # before the epoch's metrics, which can take longer than a cluster's grace period
        if trainer.world_size == 1:
            if self._pending:
                self._stop(trainer, self._pending)
        else:
            self._stop_if_any_rank(trainer)

    def _stop_if_any_rank(self, trainer: L.Trainer) -> None:
        flag = torch.tensor([self._pending], device=trainer.strategy.root_device)
        dist.all_reduce(flag, op=dist.ReduceOp.MAX)
        pending = int(flag.item())
        if pending:
            self._stop(trainer, pending)

    def _stop(self, trainer: L.Trainer, pending: int) -> None:
        start = time.perf_counter()
        path = self._checkpoint_path(trainer)
        trainer.save_checkpoint(path, weights_only=False)  # a full checkpoint: resumable
        self.last_path = path
        if SLURMEnvironment.detect() and trainer.is_global_zero:
            _link_for_slurm_resume(path, Path(trainer.default_root_dir))
        waited = start - self._received_at if self._signum is not None else 0.0
        name = signal.Signals(self._signum).name if self._signum is not None else "a signal on another rank"
        log.warning(
            "%s: wrote %s at step %d (epoch %d) in %.2f s, %.2f s after the signal. Resume with the "
            "same command and ckpt_path=%s",
            name,
            path,
            trainer.global_step,
            trainer.current_epoch,
            time.perf_counter() - start,
            waited,
            path,
        )
        previous = self._previous.get(self._signum) if pending == _REQUEUE else None
        self._restore()
        if callable(previous):  # the cluster's requeue (Lightning's SLURM handler, submitit)
            previous(self._signum, None)
        raise SIGTERMException  # Lightning's clean stop: on_exception hooks, teardown, exit 0

    def _checkpoint_path(self, trainer: L.Trainer) -> Path:
        if self.dirpath is not None:
            return Path(self.dirpath) / "last.ckpt"
        cb = trainer.checkpoint_callback
        if isinstance(cb, ModelCheckpoint) and cb.dirpath:
            path = Path(cb.dirpath) / f"{cb.CHECKPOINT_NAME_LAST}{cb.FILE_EXTENSION}"
            # recorded as its own (in the state this checkpoint saves), so that the resumed
            # run's ModelCheckpoint replaces last.ckpt instead of writing last-v1.ckpt beside it
            cb.last_model_path = str(path)
            return path
        return Path(trainer.default_root_dir) / "checkpoints" / "last.ckpt"


def _link_for_slurm_resume(path: Path, run_dir: Path) -> None:
    """The checkpoint under the name Lightning resumes a requeued SLURM job from."""
    target = Path(_CheckpointConnector.hpc_save_path(run_dir))
    try:
        os.link(path, target)
    except OSError:  # a file system without hard links
        shutil.copyfile(path, target)


def _signal(name: str) -> int:
    try:
        return int(getattr(signal.Signals, str(name).upper()))
    except AttributeError:
        known = ", ".join(s.name for s in signal.Signals)
        raise ValueError(f"unknown signal {name!r} in the preemption config; known: {known}") from None
