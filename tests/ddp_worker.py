"""Helpers that run inside the DDP processes of tests/test_ddp.py (found through PYTHONPATH=tests).

``RankProbe`` is added to a training run as ``+callbacks.probe._target_=ddp_worker.RankProbe``:
every rank writes what it holds to ``<out>/rank<r>.pt``, outside the run directory, which
is rank 0's alone.
"""

from __future__ import annotations

from pathlib import Path

import lightning as L
import torch


def _peek_noise(n: int = 8) -> torch.Tensor:
    """The next ``n`` normal draws of the global stream, leaving the stream where it was."""
    state = torch.get_rng_state()
    z = torch.randn(n)
    torch.set_rng_state(state)
    return z


class RankProbe(L.Callback):
    def __init__(self, out: str) -> None:
        self.out = Path(out)
        self.noise: dict[int, torch.Tensor] = {}  # by global step, at each batch start
        self.batches: dict[int, torch.Tensor] = {}
        self.wrapped: dict[str, str] = {}
        self.ada_signs: list[tuple[int, float, int]] = []  # (D step, sum of signs, count) per D step
        self.ada_rt: dict[int, float] = {}  # r_t after each batch, by D step

    def on_train_start(self, trainer, pl_module) -> None:
        ada = getattr(pl_module, "augment", None)
        if ada is None or not hasattr(ada, "observe"):
            return
        observe = ada.observe

        def recording(real_logits):  # this rank's own contribution, before any reduction
            self.ada_signs.append(
                (pl_module.d_steps + 1, float(real_logits.detach().sign().sum()), real_logits.numel())
            )
            observe(real_logits)

        ada.observe = recording

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        ada = getattr(pl_module, "augment", None)
        if ada is not None and hasattr(ada, "rt"):
            self.ada_rt[pl_module.d_steps] = float(ada.rt)

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        # after the strategy seeded this rank's stream (on_train_start)
        self.noise[trainer.global_step] = _peek_noise()
        self.batches[trainer.global_step] = batch[0][:2, 0, 4].clone()
        self.wrapped = {name: type(net).__name__ for name, net in (pl_module.ddp_wrappers or {}).items()}

    def on_train_end(self, trainer, pl_module) -> None:
        self.out.mkdir(parents=True, exist_ok=True)
        torch.save(
            {
                "rank": trainer.global_rank,
                "world_size": trainer.world_size,
                "state_dict": {k: v.detach().cpu().clone() for k, v in pl_module.state_dict().items()},
                "g_steps": pl_module.g_steps,
                "d_steps": pl_module.d_steps,
                "images_seen": pl_module.images_seen,
                "global_step": trainer.global_step,
                "noise": self.noise,
                "batches": self.batches,
                "end_noise": _peek_noise(),
                "wrapped": self.wrapped,
                "ada_signs": self.ada_signs,
                "ada_rt": self.ada_rt,
                "strategy": type(trainer.strategy).__name__,
                "metrics": {k: float(v) for k, v in trainer.callback_metrics.items() if v.numel() == 1},
            },
            self.out / f"rank{trainer.global_rank}.pt",
        )
