"""Small GANs, data and a logger for the tests of the module base and its families.

``make_gan`` builds a tiny MLP GAN on 2-D points; ``fit`` trains it with a Lightning
``Trainer`` (so the real training step runs, never a copy of it); ``FixedData`` serves
the same batch every time, for steps computed again by hand; ``MemoryLogger`` keeps
what a run logs, with the step it was logged at.
"""

from __future__ import annotations

import functools

import lightning as L
import torch
from lightning.pytorch.loggers import Logger
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from ganforge.data.toy2d import Toy2DDataModule
from ganforge.losses import VanillaLoss
from ganforge.modules.gan import GAN
from ganforge.nets import mlp

ADAM = functools.partial(torch.optim.Adam, lr=1e-3, betas=(0.5, 0.999))
SGD = functools.partial(torch.optim.SGD, lr=1.0)


def make_gan(**kwargs) -> GAN:
    torch.manual_seed(0)
    defaults = dict(
        generator=mlp.Generator((2,), latent_dim=2, hidden=16, depth=2),
        discriminator=mlp.Discriminator((2,), hidden=16, depth=2),
        g_optimizer=ADAM,
        d_optimizer=ADAM,
        loss=VanillaLoss(),
    )
    defaults.update(kwargs)
    return GAN(**defaults)


def make_data(batch_size=32, samples_per_epoch=320, **kwargs) -> Toy2DDataModule:
    return Toy2DDataModule(kind="ring", batch_size=batch_size, samples_per_epoch=samples_per_epoch, **kwargs)


def fit(gan, data, ckpt_path=None, **trainer_kwargs) -> L.Trainer:
    defaults = dict(
        accelerator="cpu",
        devices=1,
        max_epochs=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    defaults.update(trainer_kwargs)
    trainer = L.Trainer(**defaults)
    if isinstance(data, L.LightningDataModule):
        trainer.fit(gan, datamodule=data, ckpt_path=ckpt_path)
    else:
        trainer.fit(gan, train_dataloaders=data, ckpt_path=ckpt_path)
    return trainer


class FixedData(L.LightningDataModule):
    """``batches`` loader batches, each the same ``x`` (labels -1: unlabelled)."""

    def __init__(self, x: torch.Tensor, batches: int = 1) -> None:
        super().__init__()
        self.x, self.batches = x, batches

    def train_dataloader(self) -> DataLoader:
        x = self.x.repeat(self.batches, *([1] * (self.x.dim() - 1)))
        return DataLoader(TensorDataset(x, torch.full((len(x),), -1)), batch_size=len(self.x))


class PointGenerator(nn.Module):
    """Ignores its noise: every sample is the learnable point ``p``, so a generator step's
    gradient can be computed again by hand."""

    latent_dim = 2

    def __init__(self) -> None:
        super().__init__()
        self.p = nn.Parameter(torch.tensor([0.3, -0.2]))

    def forward(self, z, labels=None):
        return self.p.expand(z.shape[0], 2)


class MemoryLogger(Logger):
    """Keeps ``(step, metrics)`` of every ``log_metrics`` call."""

    def __init__(self) -> None:
        super().__init__()
        self.records: list[tuple[int, dict[str, float]]] = []

    @property
    def name(self) -> str:
        return "memory"

    @property
    def version(self) -> str:
        return "0"

    def log_hyperparams(self, params, *args, **kwargs) -> None:
        pass

    def log_metrics(self, metrics, step=None) -> None:
        self.records.append((step, dict(metrics)))

    def steps_of(self, key: str) -> list[int]:
        return [step for step, metrics in self.records if key in metrics]

    def values_of(self, key: str) -> list[float]:
        return [metrics[key] for _, metrics in self.records if key in metrics]


def one_iteration(generator, discriminator, x, labels=None, loss=None, optimizer=ADAM):
    """One discriminator and one generator step of ``GAN.training_step`` on the batch
    ``(x, labels)``; returns the GAN and each network's parameters from before."""
    gan = GAN(generator, discriminator, optimizer, optimizer, loss or VanillaLoss(), ema_decay=None)
    before = {name: [p.detach().clone() for p in net.parameters()] for name, net in gan.networks.items()}
    y = torch.full((len(x),), -1) if labels is None else labels
    fit(gan, DataLoader(TensorDataset(x, y), batch_size=len(x)), max_steps=1)
    assert (gan.d_steps, gan.g_steps) == (1, 1)
    return gan, before


def flat(module: nn.Module) -> torch.Tensor:
    return torch.cat([p.detach().flatten().clone() for p in module.parameters()])
