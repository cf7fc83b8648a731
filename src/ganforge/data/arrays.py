"""Datamodules for image sets that load into memory as one uint8 tensor.

MNIST, Fashion-MNIST and CIFAR-10 are 47-150 MB as uint8: they are read once from
their distribution files, converted to the configured channels and resized to
``image_size``, then served by the batched ``TensorDataset`` (or, with
``data.on_device=true``, straight from the accelerator).
"""

from __future__ import annotations

from pathlib import Path

from torch import Tensor

from ganforge.data.base import GANDataModule, TensorDataset
from ganforge.data.download import ensure_files
from ganforge.data.fingerprint import fingerprint
from ganforge.data.labels import check_labels
from ganforge.data.pixels import convert_channels, resize_uint8, to_float_images

SPLITS = ("train", "test", "all")


class ArrayImageDataModule(GANDataModule):
    """Subclasses name the dataset and implement ``missing``, ``fetch`` and ``load``.

    Args:
        root: the directory the dataset's own folder lives in (``${paths.data_dir}``).
        download: fetch missing files with torchvision in ``prepare_data``.
        split: ``train``, ``test`` or ``all`` (both).
    """

    name = ""  # the config name, used in messages
    folder = ""  # the dataset's directory under root
    source = ""  # where a person gets the files by hand
    classes = 10
    native_channels = 1

    def __init__(
        self,
        root: str | Path = "data",
        download: bool = True,
        split: str = "train",
        image_size: int = 32,
        channels: int | None = None,
        num_classes: int | None = None,
        **kwargs,
    ) -> None:
        channels = self.native_channels if channels is None else int(channels)
        num_classes = self.classes if num_classes is None else int(num_classes)
        if split not in SPLITS:
            raise ValueError(f"data={self.name}: data.split must be one of {SPLITS}, got {split!r}")
        if channels not in (1, 3):
            raise ValueError(f"data={self.name}: data.channels must be 1 or 3, got {channels}")
        if num_classes not in (0, self.classes):
            raise ValueError(
                f"data={self.name} has {self.classes} classes; data.num_classes must be "
                f"{self.classes} (conditional) or 0 (unconditional), got {num_classes}"
            )
        if not isinstance(image_size, int) or image_size < 8:
            raise ValueError(f"data={self.name}: data.image_size must be an integer >= 8, got {image_size}")
        kwargs.setdefault("data_shape", (channels, image_size, image_size))
        super().__init__(image_size=image_size, channels=channels, num_classes=num_classes, **kwargs)
        self.root, self.download, self.split = Path(root), bool(download), split

    @property
    def directory(self) -> Path:
        return self.root / self.folder

    # ------------------------------------------------------------ per dataset
    def missing(self) -> list[str]:
        """Files this split needs that are absent, relative to ``directory``."""
        raise NotImplementedError

    def fetch(self) -> None:
        """Download the dataset into ``directory``."""
        raise NotImplementedError

    def load(self) -> tuple[Tensor, Tensor]:
        """The split as uint8 NCHW images at native size, and int64 labels."""
        raise NotImplementedError

    # ------------------------------------------------------------ Lightning hooks
    def _ensure(self, download: bool) -> None:
        ensure_files(self.name, self.directory, self.missing, download, self.fetch, self.source)

    def prepare_data(self) -> None:
        self._ensure(self.download)

    def setup(self, stage: str | None = None) -> None:
        if self.train_set is not None:
            return
        self._ensure(download=False)
        x, y = self.load()
        x = resize_uint8(convert_channels(x, self.channels), self.image_size)
        # on the full set: a small data.subset may miss a class, which is no config error
        check_labels(y, self.num_classes, f"data={self.name}")
        self.train_set = self.take_subset(TensorDataset(x, y))

    def real_samples(self, n: int | None = None) -> Tensor:
        if self.train_set is None:
            self.setup("fit")
        x = self.train_set.x
        return to_float_images(x if n is None else x[:n])

    def fingerprint(self) -> str:
        if self.train_set is None:
            self.setup("fit")
        x, y = self.train_set.x, self.train_set.y
        extra = f"{self.name};{self.split};{tuple(x.shape[1:])}{self.subset_key()}"
        return fingerprint(len(x), lambda idx: x[idx], y, extra)
