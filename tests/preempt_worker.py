"""A callback the preemption tests inject: the run sends itself a signal at a given batch."""

from __future__ import annotations

import os
import signal

import lightning as L


class SignalAt(L.Callback):
    """At the end of batch ``batch`` of epoch ``epoch``, rank ``rank`` gets signal ``name``."""

    def __init__(self, epoch: int, batch: int, name: str = "SIGTERM", rank: int = 0) -> None:
        self.epoch, self.batch, self.rank = int(epoch), int(batch), int(rank)
        self.signum = getattr(signal, name)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx: int) -> None:
        at = (trainer.current_epoch, batch_idx) == (self.epoch, self.batch)
        if at and trainer.global_rank == self.rank:
            os.kill(os.getpid(), self.signum)
