"""Scalars and images to every logger, at the run's one step axis.

Lightning writes what ``self.log`` collects at its count of loader batches, which is
neither the generator's step count (8 generator steps a batch on the toys) nor the
``global_step`` that sample grids and checkpoints use. Everything ganforge logs goes
through these two functions instead, with ``step=trainer.global_step``: the steps of the
network that sets the axis (``AdversarialModule``), so CSV, TensorBoard and W&B plot
every scalar, image and metric of a run on one x-axis. ``Logger.log_metrics`` is the
public call Lightning's own learning-rate monitor uses.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor


def log_scalars(trainer, metrics: Mapping[str, float | Tensor], step: int) -> None:
    """Write ``metrics`` to every logger at ``step`` and into ``trainer.callback_metrics``
    (where ``ModelCheckpoint(monitor=...)``, sweeps and ``final_metrics.json`` read them)."""
    if not metrics:
        return
    values = {k: float(v) for k, v in metrics.items()}
    for logger in trainer.loggers:
        logger.log_metrics(values, step=step)
    trainer.callback_metrics.update({k: torch.tensor(v) for k, v in values.items()})


def flush(trainer) -> None:
    """Have every logger write what it buffered (the CSV logger keeps rows in memory):
    called at epoch ends, where Lightning would after every write (0.3 ms for a CSV file)."""
    for logger in trainer.loggers:
        logger.save()


def log_image(trainer, key: str, chw_uint8: Tensor, step: int) -> None:
    """Send a uint8 CHW picture to every attached logger that takes images."""
    for logger in trainer.loggers:
        experiment = getattr(logger, "experiment", None)
        if hasattr(experiment, "add_image"):  # TensorBoard
            experiment.add_image(key, chw_uint8, global_step=step)
        elif hasattr(logger, "log_image"):  # W&B
            logger.log_image(key=key, images=[chw_uint8.permute(1, 2, 0).numpy()], step=step)
