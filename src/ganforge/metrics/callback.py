"""Image metrics during training, every few epochs and at the end of fit.

The callback asks the module for samples (``pl_module.sample``: the EMA generator)
and the datamodule for real images (``real_samples``, ``fingerprint``); it is a
no-op for data that are not images (the 2-D toys). Values are logged as
``val/fid``, ``val/is_mean``, ``val/kid_mean``, ``val/precision``, ``val/recall``,
``val/density``, ``val/coverage`` (conditional models: also ``val/intra_fid`` and, on
digits, ``val/class_accuracy``) at the run's step axis (``trainer.global_step``) and
put in ``trainer.callback_metrics``, so ``ModelCheckpoint(monitor="val/fid")`` works;
rank 0 appends each evaluation with its protocol (and the per-class values, under
``per_class``) to ``metrics.jsonl``.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import lightning as L
from torch import nn

from ganforge.metrics.evaluator import FidelityEvaluator
from ganforge.metrics.records import append_jsonl
from ganforge.modules.logs import log_scalars

log = logging.getLogger("ganforge")


class ImageMetrics(L.Callback):
    """Runs a ``FidelityEvaluator`` during fit and logs its numbers.

    ``evaluator_options`` are ``FidelityEvaluator``'s (num_fake, num_real, batch_size,
    seed, is_splits, kid_*, cache_dir, split, pr_k, dc_k); ``every_n_epochs`` <= 0
    evaluates at the end of fit only.
    """

    def __init__(
        self,
        extractor: nn.Module | None,
        every_n_epochs: int = 10,
        prefix: str = "val",
        record_file: str | None = "metrics.jsonl",
        **evaluator_options,
    ) -> None:
        self.evaluator = FidelityEvaluator(extractor, **evaluator_options) if extractor is not None else None
        self.every_n_epochs = int(every_n_epochs)
        self.prefix, self.record_file = prefix, record_file
        self.last: dict[str, float] | None = None
        self._evaluated_step: int | None = None
        self._ready = False

    def applies(self, trainer: L.Trainer) -> bool:
        dm = trainer.datamodule
        return (
            self.evaluator is not None
            and dm is not None
            and getattr(dm, "image_size", None) is not None
            and hasattr(dm, "real_samples")
        )

    def on_fit_start(self, trainer: L.Trainer, pl_module) -> None:
        self._ready = False
        if not self.applies(trainer):
            return
        self.evaluator.prepare(
            trainer.datamodule,
            pl_module.device,
            rank=trainer.global_rank,
            world_size=trainer.world_size,
            barrier=lambda: trainer.strategy.barrier("ganforge_real_stats"),
            num_classes=getattr(pl_module, "num_classes", 0),  # per-class real sums for conditional models
        )
        self._ready = True

    @staticmethod
    def _last_epoch(trainer: L.Trainer) -> bool:
        if (
            trainer.max_steps is not None
            and trainer.max_steps > 0
            and trainer.global_step >= trainer.max_steps
        ):
            return True
        if (
            trainer.max_epochs is not None
            and trainer.max_epochs > 0
            and trainer.current_epoch + 1 >= trainer.max_epochs
        ):
            return True
        return bool(trainer.should_stop)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module) -> None:
        if not self._ready:
            return
        due = self.every_n_epochs > 0 and (trainer.current_epoch + 1) % self.every_n_epochs == 0
        if not (due or self._last_epoch(trainer)):
            return
        self.run(trainer, pl_module)

    def on_train_end(self, trainer: L.Trainer, pl_module) -> None:
        # a fit that ended where no epoch-end evaluation ran still gets its final numbers
        if not self._ready or self._evaluated_step == trainer.global_step:
            return
        self.run(trainer, pl_module)

    def run(self, trainer: L.Trainer, pl_module) -> dict[str, float]:
        start = time.perf_counter()
        results = self.evaluator.evaluate(pl_module, rank=trainer.global_rank, world_size=trainer.world_size)
        self.last, self._evaluated_step = results, trainer.global_step
        seconds = time.perf_counter() - start
        # the same values on every rank (the states are synchronised); loggers write rank 0's
        log_scalars(trainer, {f"{self.prefix}/{k}": v for k, v in results.items()}, step=trainer.global_step)
        if trainer.is_global_zero:
            log.info(
                "step %d: %s (%.1f s)",
                trainer.global_step,
                ", ".join(f"{k}={v:.4g}" for k, v in results.items()),
                seconds,
            )
            if self.record_file:
                append_jsonl(
                    Path(trainer.default_root_dir) / self.record_file,
                    self.record(trainer, pl_module, seconds),
                )
        return results

    def record(self, trainer: L.Trainer, pl_module, seconds: float) -> dict:
        return {
            "results": dict(self.last or {}),
            **self.evaluator.details(),
            **self.evaluator.protocol(),
            "global_step": trainer.global_step,
            "g_steps": getattr(pl_module, "g_steps", None),
            "kimg": getattr(pl_module, "kimg", None),
            "epoch": trainer.current_epoch,
            "world_size": trainer.world_size,
            "seconds": round(seconds, 3),
            "timestamp": time.time(),
        }
