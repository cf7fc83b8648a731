"""Mode coverage of the 2-D toys: metrics each epoch and a scatter plot of samples over the modes."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import torch

from ganforge.callbacks.images import save_png
from ganforge.callbacks.scatter import scatter_image
from ganforge.metrics.coverage import mode_coverage
from ganforge.modules.logs import log_image, log_scalars


class ModeCoverage(L.Callback):
    def __init__(
        self, num_samples: int = 2500, every_n_epochs: int = 1, seed: int = 0, plot: bool = True
    ) -> None:
        self.num_samples, self.every_n_epochs = num_samples, every_n_epochs
        self.seed, self.plot = seed, plot
        self.last = None

    @staticmethod
    def applies(trainer: L.Trainer) -> bool:
        return hasattr(trainer.datamodule, "modes")

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module) -> None:
        epoch = trainer.current_epoch
        if not self.applies(trainer) or (epoch + 1) % self.every_n_epochs:
            return
        dm = trainer.datamodule
        # own generator: evaluation is reproducible and leaves the training noise stream alone
        g = torch.Generator().manual_seed(self.seed)
        samples = pl_module.sample(self.num_samples, generator=g).float().cpu()
        cov = mode_coverage(samples, dm.modes, dm.std)
        self.last = cov
        # every rank draws the same samples from the same weights: the values agree
        scores = {
            "toy/modes": float(cov.modes),
            "toy/hq_fraction": cov.hq_fraction,
            "toy/kl": cov.kl,
            "toy/shortfall": cov.shortfall,
        }
        log_scalars(trainer, scores, step=trainer.global_step)
        if self.plot and trainer.is_global_zero:
            title = (
                f"epoch {epoch}: {cov.modes}/{cov.num_modes} modes, {100 * cov.hq_fraction:.1f}% high quality"
            )
            picture = scatter_image(samples, dm.modes, dm.std, title)
            save_png(picture, Path(trainer.default_root_dir) / "samples" / f"scatter_{epoch:04d}.png")
            log_image(trainer, "toy/scatter", picture, step=trainer.global_step)
