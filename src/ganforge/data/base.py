"""The datamodule base class and a batched in-memory dataset.

Small datasets are indexed a whole batch at a time (``__getitems__``), so the
loader costs one tensor gather per step instead of ``batch_size`` Python calls
and a collate: on a 2 ms training step the per-item path alone costs more than
the step.

Image tensors may be held as uint8 (a quarter of the memory of float32) and are
turned into floats in [-1, 1] as they are fetched. ``data.on_device`` serves
batches from a copy on the accelerator instead of a DataLoader; ``data.hflip``
mirrors a random half of each batch. Both paths resume mid-epoch exactly
(``ganforge.data.resumable``). ``data.subset`` keeps a seeded part of the training
set (``ganforge.data.subset``); subclasses pass what they load through ``subset_of``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import lightning as L
import torch
from torch import Tensor
from torch.utils.data import Dataset

from ganforge.data.augment import random_hflip
from ganforge.data.device import DeviceBatches, epoch_seed
from ganforge.data.pixels import to_float_images
from ganforge.data.resumable import EpochSampler, ResumableLoader, seeded_generator
from ganforge.data.subset import check_subset, subset_indices


def _identity(batch):
    return batch


class TensorDataset(Dataset):
    """``(x, y)`` pairs held as two tensors; y is -1 where there are no labels."""

    def __init__(self, x: Tensor, y: Tensor | None = None) -> None:
        self.x = x
        self.y = y if y is not None else torch.full((len(x),), -1, dtype=torch.long)

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i):
        return to_float_images(self.x[i]), self.y[i]

    def __getitems__(self, indices: Sequence[int]):
        idx = torch.as_tensor(indices)
        return to_float_images(self.x[idx]), self.y[idx]


class GANDataModule(L.LightningDataModule):
    """Base for every ganforge datamodule.

    Subclasses fill ``self.train_set`` in ``setup`` and say what the data looks like.

    ``on_device``: hold the training set on the accelerator and sample batches there
    (needs a ``TensorDataset``); ``hflip``: flip a random half of each image batch.
    ``steps_per_batch``: serve that many minibatches of ``batch_size`` in one loader
    batch; the GAN module takes one discriminator step per minibatch.
    ``subset``/``subset_seed``: train on that fraction or count of the training set, chosen
    by ``ganforge.data.subset.subset_indices`` (null: all of it).
    """

    def __init__(
        self,
        batch_size: int = 64,
        num_workers: int = 0,
        image_size: int | None = None,
        channels: int | None = None,
        num_classes: int = 0,
        data_shape: Sequence[int] | None = None,
        on_device: bool = False,
        hflip: bool = False,
        steps_per_batch: int = 1,
        subset: float | int | None = None,
        subset_seed: int = 0,
    ) -> None:
        super().__init__()
        if int(batch_size) <= 0:
            raise ValueError(f"data.batch_size must be a positive integer, got {batch_size}")
        self.batch_size = int(batch_size)
        if int(steps_per_batch) < 1:
            raise ValueError(f"data.steps_per_batch must be >= 1, got {steps_per_batch}")
        self.steps_per_batch = int(steps_per_batch)
        self.num_workers = int(num_workers)
        self.image_size = image_size
        self.channels = channels
        self.num_classes = int(num_classes or 0)
        self.data_shape = tuple(data_shape) if data_shape is not None else None
        if hflip and image_size is None:
            raise ValueError("data.hflip mirrors images, but this dataset has no image_size (2-D points?)")
        self.on_device = bool(on_device)
        self.hflip = bool(hflip)
        self.train_set: Dataset | None = None
        self.subset, self.subset_seed = check_subset(subset), int(subset_seed)
        self.full_size: int | None = None  # the training set's size before data.subset
        self._subset_digest = ""  # which indices were kept, for fingerprints of sampled images

    # ------------------------------------------------------------ data.subset
    def subset_of(self, n_total: int) -> Tensor | None:
        """Indices of the ``n_total`` loaded samples this run keeps, in dataset order; None: all.

        Sorted, so the subset that keeps everything is the full set itself (same fingerprint,
        same cached real statistics) and a folder's files are read in their usual order.
        """
        self.full_size = int(n_total)
        if self.subset is None:
            return None
        idx = subset_indices(n_total, self.subset, self.subset_seed)
        if len(idx) < self.loader_batch_size:
            raise ValueError(
                f"data.subset={self.subset} keeps {len(idx)} of {n_total} images, fewer than one batch "
                f"(data.batch_size * data.steps_per_batch = {self.loader_batch_size}); raise "
                "data.subset or lower data.batch_size"
            )
        idx = idx.sort().values
        if len(idx) < n_total:
            self._subset_digest = hashlib.sha1(idx.numpy().tobytes()).hexdigest()[:16]
        return idx

    def take_subset(self, dataset: TensorDataset) -> TensorDataset:
        """``dataset`` cut to ``data.subset``; labels follow their images."""
        idx = self.subset_of(len(dataset))
        return dataset if idx is None else TensorDataset(dataset.x[idx], dataset.y[idx])

    @property
    def subset_description(self) -> dict | None:
        """What ``data.subset`` kept, for the metrics protocol; None when training on everything."""
        if self.subset is None:
            return None
        if self.train_set is None:
            self.setup("fit")
        return {
            "subset": self.subset,
            "subset_seed": self.subset_seed,
            "n": len(self.train_set),
            "of": self.full_size,
        }

    def subset_key(self) -> str:
        """For fingerprints that hash a sample of the images: which ones the subset kept ('' for all)."""
        return f";subset={self._subset_digest}" if self._subset_digest else ""

    def train_dataloader(self) -> ResumableLoader | DeviceBatches:
        if self.train_set is None:
            self.setup("fit")
        if len(self.train_set) < self.loader_batch_size:
            raise ValueError(
                f"data.batch_size * data.steps_per_batch = {self.loader_batch_size} is larger than "
                f"the training set ({len(self.train_set)} samples); lower data.batch_size"
            )
        if self.on_device:
            return self._device_batches()
        rank, world = self._rank_and_world()
        return ResumableLoader(
            self.train_set,
            batch_size=self.loader_batch_size,
            sampler=EpochSampler(self.train_set, num_replicas=world, rank=rank, seed=epoch_seed()),
            drop_last=True,  # equal batches: BatchNorm and the D/G step counts stay regular
            num_workers=self.num_workers,
            collate_fn=_identity,
            persistent_workers=self.num_workers > 0,
            generator=seeded_generator(epoch_seed()),
        )

    def on_after_batch_transfer(self, batch, dataloader_idx: int):
        # on the step's side of the loader, on the device, from the global stream a
        # checkpoint restores: a resumed run flips the images it would have
        if self.hflip and self.trainer is not None and self.trainer.training:
            x, y = batch
            return random_hflip(x), y
        return batch

    def _rank_and_world(self) -> tuple[int, int]:
        trainer = self.trainer
        return (trainer.global_rank, trainer.world_size) if trainer is not None else (0, 1)

    @property
    def loader_batch_size(self) -> int:
        return self.batch_size * self.steps_per_batch

    def _device_batches(self) -> DeviceBatches:
        if not isinstance(self.train_set, TensorDataset):
            raise ValueError(
                f"data.on_device=true needs the training set in memory, but {type(self).__name__} "
                f"serves a {type(self.train_set).__name__}; set data.on_device=false "
                "(for data=folder, data.cache=true loads the images into memory)"
            )
        trainer = self.trainer
        device = trainer.strategy.root_device if trainer is not None else torch.device("cpu")
        rank, world = self._rank_and_world()
        if len(self.train_set) // world < self.loader_batch_size:
            raise ValueError(
                f"data.batch_size={self.batch_size} is larger than one rank's shard "
                f"({len(self.train_set) // world} of {len(self.train_set)} samples on {world} ranks)"
            )
        return DeviceBatches(
            self.train_set.x,
            self.train_set.y,
            self.loader_batch_size,
            device=device,
            rank=rank,
            world_size=world,
            seed=epoch_seed(),
        )

    def real_samples(self, n: int | None = None) -> Tensor:
        """Up to ``n`` training samples (all when None), in dataset order, for metrics."""
        if self.train_set is None:
            self.setup("fit")
        x = self.train_set.x
        return to_float_images(x if n is None else x[:n])

    def fingerprint(self) -> str:
        """Hash of the training data's content, for metric caches keyed on what was seen."""
        x = self.real_samples().contiguous()
        return hashlib.sha1(x.numpy().tobytes()).hexdigest()[:16]
