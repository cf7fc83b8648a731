"""A grid of samples from fixed noise, written every few epochs.

The noise is drawn once from its own seed and kept in the callback's state, so it
is saved in checkpoints and a resumed run keeps drawing the same grid.
"""

from __future__ import annotations

from pathlib import Path

import lightning as L
import torch

from ganforge.callbacks.images import image_grid, save_png
from ganforge.modules.logs import log_image


class SampleGrid(L.Callback):
    def __init__(
        self,
        every_n_epochs: int = 1,
        num_samples: int = 64,
        nrow: int = 8,
        seed: int = 0,
        dirname: str = "samples",
    ) -> None:
        self.every_n_epochs = every_n_epochs
        self.num_samples, self.nrow, self.seed = num_samples, nrow, seed
        self.dirname = dirname
        self.z: torch.Tensor | None = None
        self.labels: torch.Tensor | None = None
        self.last_path: Path | None = None

    @staticmethod
    def applies(trainer: L.Trainer) -> bool:
        dm = trainer.datamodule
        return dm is not None and getattr(dm, "image_size", None) is not None

    def _noise(self, pl_module) -> None:
        if self.z is None:
            g = torch.Generator().manual_seed(self.seed)
            classes = getattr(pl_module.discriminator, "num_classes", 0)
            n = self.nrow * classes if classes else self.num_samples  # conditional: one row per class
            self.z = torch.randn(n, pl_module.latent_dim, generator=g)
            if classes:
                self.labels = torch.arange(classes).repeat_interleave(self.nrow)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module) -> None:
        epoch = trainer.current_epoch
        if not self.applies(trainer) or (epoch + 1) % self.every_n_epochs:
            return
        self.write(trainer, pl_module, f"epoch_{epoch:04d}.png")

    def write(self, trainer: L.Trainer, pl_module, filename: str) -> Path | None:
        self._noise(pl_module)
        images = pl_module.sample(len(self.z), labels=self.labels, z=self.z)
        if not trainer.is_global_zero:
            return None
        grid = image_grid(images, nrow=self.nrow)
        out = Path(trainer.default_root_dir) / self.dirname
        self.last_path = save_png(grid, out / filename)
        save_png(grid, out / "last.png")
        log_image(trainer, "samples", grid, step=trainer.global_step)
        return self.last_path

    def state_dict(self) -> dict:
        return {"z": self.z, "labels": self.labels}

    def load_state_dict(self, state_dict: dict) -> None:
        self.z, self.labels = state_dict.get("z"), state_dict.get("labels")
