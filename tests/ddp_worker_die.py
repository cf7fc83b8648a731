"""A rank that dies or hangs mid-epoch, for tests/test_ddp_dead_rank.py (found through PYTHONPATH=tests).

``DieAt`` is added to a training run as ``+callbacks.die._target_=ddp_worker_die.DieAt``:
every rank writes ``<out>/pid<rank>`` when training starts; at the start (``at="start"``)
or the end (``at="end"``) of batch ``batch`` the process of global rank ``rank`` writes ``<out>/event`` (the wall-clock
time) and then exits at once (``os._exit(1)``: no cleanup, no message, as a killed
process) or sleeps forever, alive and silent, as a rank stuck in a deadlock.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import lightning as L


class DieAt(L.Callback):
    def __init__(self, out: str, rank: int = 1, batch: int = 3, how: str = "exit", at: str = "start") -> None:
        if how not in ("exit", "hang") or at not in ("start", "end"):
            raise ValueError(f"how: 'exit' or 'hang', at: 'start' or 'end'; not {how!r}, {at!r}")
        self.out, self.rank, self.batch, self.how, self.at = Path(out), rank, batch, how, at

    def on_train_start(self, trainer, pl_module) -> None:
        self.out.mkdir(parents=True, exist_ok=True)
        (self.out / f"pid{trainer.global_rank}").write_text(str(os.getpid()))

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if self.at == "start":
            self._maybe_die(trainer, batch_idx)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if self.at == "end":
            self._maybe_die(trainer, batch_idx)

    def _maybe_die(self, trainer, batch_idx: int) -> None:
        if trainer.global_rank != self.rank or batch_idx != self.batch:
            return
        (self.out / "event").write_text(repr(time.time()))
        if self.how == "exit":
            os._exit(1)
        while True:
            time.sleep(3600)
