"""Any directory of images, optionally labelled by class subfolder.

Files are found recursively (PNG, JPEG, WebP, BMP by extension; anything else is
ignored). With ``labels=true`` each immediate subfolder of ``root`` is a class,
numbered in sorted order, as torchvision's ImageFolder does.

Small sets are decoded once into a uint8 tensor (``cache``): after that an epoch
costs what digits costs, and ``on_device`` works. Larger ones are decoded per item
in DataLoader workers. See benchmarks/data_loading.py for the two paths' speeds.

Files that cannot be read are left out with a single warning on the ``ganforge`` logger
that counts them and names the first few, or stop the run at once with ``strict=true``.
``data.subset`` picks among the files found before any is opened, so a 500-image subset
of CelebA reads 500 files.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import torch
from PIL import Image, UnidentifiedImageError
from torch import Tensor
from torch.utils.data import Dataset

from ganforge.data.base import GANDataModule, TensorDataset
from ganforge.data.decode import decode, is_image_file
from ganforge.data.fingerprint import fingerprint
from ganforge.data.labels import check_labels
from ganforge.data.pixels import to_float_images

SHOWN = 5  # unreadable files named in the warning
UNREADABLE = (OSError, ValueError, SyntaxError, Image.DecompressionBombError)

# a logger, not warnings.warn: Python's warnings print the source line that raised them
# (inside Lightning's loop), which reads like a crash; the run's log says it plainly
log = logging.getLogger("ganforge")


def list_images(root: Path) -> list[Path]:
    """Image files under ``root``, recursively, in a fixed (sorted) order; hidden folders skipped."""
    found = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        found += [Path(dirpath, f) for f in sorted(filenames) if is_image_file(f) and not f.startswith(".")]
    return found


def class_of(path: Path, root: Path) -> str | None:
    """The class subfolder a file sits in, None for files directly in ``root``."""
    parts = path.relative_to(root).parts
    return parts[0] if len(parts) > 1 else None


class ImageFileDataset(Dataset):
    """Decodes one file per item; an unreadable file is replaced by the next readable one."""

    def __init__(
        self,
        paths: Sequence[Path],
        targets: Tensor,
        size: int,
        channels: int,
        crop: int | None = None,
        strict: bool = False,
    ) -> None:
        self.paths, self.targets = list(paths), targets
        self.size, self.channels, self.crop, self.strict = size, channels, crop, strict
        self._warned = False

    def __len__(self) -> int:
        return len(self.paths)

    def load(self, i: int) -> tuple[Tensor, int]:
        """uint8 image and index actually served."""
        for k in range(len(self.paths)):
            j = (i + k) % len(self.paths)
            try:
                return decode(self.paths[j], self.size, self.channels, self.crop), j
            except UNREADABLE as exc:
                if self.strict:
                    raise ValueError(f"data=folder: cannot read {self.paths[j]}: {exc}") from None
                if not self._warned:  # once per process: a DataLoader worker is a process
                    self._warned = True
                    log.warning(
                        "data=folder: %s could not be decoded (%s); serving the next image instead "
                        "(further failures in this process are not reported)",
                        self.paths[j],
                        exc,
                    )
        raise ValueError("data=folder: none of the image files could be decoded")

    def images(self, indices: Sequence[int]) -> Tensor:
        """uint8 NCHW batch of the given items."""
        return torch.stack([self.load(int(i))[0] for i in indices])

    def __getitem__(self, i):
        x, j = self.load(int(i))
        return to_float_images(x), self.targets[j]

    def __getitems__(self, indices: Sequence[int]):
        loaded = [self.load(int(i)) for i in indices]
        x = torch.stack([im for im, _ in loaded])
        return to_float_images(x), self.targets[torch.tensor([j for _, j in loaded])]


class ImageFolderDataModule(GANDataModule):
    """Images from ``root``; see the module docstring.

    Args:
        root: the directory.
        labels: class labels from the immediate subfolders (else every label is -1).
        crop: centre-crop this many source pixels before resizing (None: none).
        cache: decode everything into memory at setup: ``true``, ``false`` or ``auto``
            (when the decoded set fits in ``cache_max_mb``).
        strict: fail on the first unreadable file instead of skipping it.
        verify: open every file's header at setup when not caching, so unreadable files
            are counted before training (off: they are found, and replaced, when loaded).
    """

    name = "folder"

    def __init__(
        self,
        root: str | Path,
        labels: bool = False,
        crop: int | None = None,
        cache: bool | str = "auto",
        cache_max_mb: float = 512,
        strict: bool = False,
        verify: bool = True,
        image_size: int = 64,
        channels: int = 3,
        num_classes: int = 0,
        **kwargs,
    ) -> None:
        if channels not in (1, 3):
            raise ValueError(f"data={self.name}: data.channels must be 1 or 3, got {channels}")
        if not isinstance(image_size, int) or image_size < 4:
            raise ValueError(f"data={self.name}: data.image_size must be an integer >= 4, got {image_size}")
        if cache not in (True, False, "auto"):
            raise ValueError(f"data={self.name}: data.cache must be true, false or auto, got {cache!r}")
        if crop is not None and int(crop) < 1:
            raise ValueError(f"data={self.name}: data.crop must be a positive number of pixels or null")
        if num_classes and not labels:
            raise ValueError(
                f"data.num_classes={num_classes} asks for class labels, but data.labels=false: set "
                "data.labels=true to take labels from class subfolders, or data.num_classes=0"
            )
        kwargs.setdefault("data_shape", (channels, image_size, image_size))
        super().__init__(image_size=image_size, channels=channels, num_classes=num_classes, **kwargs)
        self.root = Path(root)
        self.labels, self.crop, self.strict, self.verify = bool(labels), crop, bool(strict), bool(verify)
        self.cache, self.cache_max_mb = cache, float(cache_max_mb)
        self.classes: list[str] = []
        self.skipped: list[tuple[Path, str]] = []

    # ------------------------------------------------------------ finding files
    def find(self) -> tuple[list[Path], Tensor]:
        """Image paths and labels; a clear error for a missing, empty or unlabelled directory."""
        if not self.root.is_dir():
            raise FileNotFoundError(
                f"data={self.name}: data.root={self.root} is not a directory. Point data.root at a "
                "folder of images (PNG, JPEG, WebP or BMP, any depth)."
            )
        paths = list_images(self.root)
        if not paths:
            raise FileNotFoundError(
                f"data={self.name}: no image files (.png .jpg .jpeg .webp .bmp) under {self.root}"
            )
        if not self.labels:
            return paths, torch.full((len(paths),), -1, dtype=torch.long)
        owners = [class_of(p, self.root) for p in paths]
        self.classes = sorted({c for c in owners if c is not None})
        if not self.classes:
            raise ValueError(
                f"data.labels=true takes class labels from the subfolders of {self.root}, but its "
                f"{len(paths)} images are all directly in it. Put each class in its own subfolder, "
                "or set data.labels=false (and data.num_classes=0)"
            )
        loose = sum(c is None for c in owners)
        if loose:
            log.warning(
                "data=%s: %d images directly in %s belong to no class subfolder and are left out "
                "(data.labels=true)",
                self.name,
                loose,
                self.root,
            )
        index = {c: i for i, c in enumerate(self.classes)}
        kept = [(p, index[c]) for p, c in zip(paths, owners) if c is not None]
        return [p for p, _ in kept], torch.tensor([i for _, i in kept], dtype=torch.long)

    def _check_classes(self, y: Tensor) -> None:
        if not self.labels or not self.num_classes:
            return
        if self.num_classes != len(self.classes):
            shown = ", ".join(self.classes[:10]) + (" ..." if len(self.classes) > 10 else "")
            raise ValueError(
                f"data.num_classes={self.num_classes}, but {self.root} has {len(self.classes)} "
                f"class subfolders ({shown}); set data.num_classes={len(self.classes)}"
            )
        check_labels(y, self.num_classes, f"data={self.name} ({self.root})")

    def _report_skipped(self, total: int) -> None:
        if not self.skipped:
            return
        shown = "; ".join(f"{p.relative_to(self.root)} ({why})" for p, why in self.skipped[:SHOWN])
        more = f"; and {len(self.skipped) - SHOWN} more" if len(self.skipped) > SHOWN else ""
        log.warning(
            "data=%s: skipped %d of %d image files that could not be read: %s%s. "
            "Set data.strict=true to stop on them instead.",
            self.name,
            len(self.skipped),
            total,
            shown,
            more,
        )

    def _fail_or_skip(self, path: Path, exc: BaseException) -> None:
        if self.strict:
            raise ValueError(
                f"data={self.name}: cannot read {path}: {exc} (data.strict=true; set it false to skip such files)"
            ) from None
        if isinstance(exc, UnidentifiedImageError):
            why = "not an image file PIL can decode"
        else:
            why = f"{type(exc).__name__}: {exc}".splitlines()[0][:120]
        self.skipped.append((path, why))

    # ------------------------------------------------------------ loading
    def _cached(self, n: int) -> bool:
        if self.cache != "auto":
            return bool(self.cache)
        nbytes = n * self.channels * self.image_size**2
        return nbytes <= self.cache_max_mb * 2**20

    def _decode_all(self, paths: list[Path]) -> list[Tensor | None]:
        def one(p: Path) -> Tensor | BaseException:
            try:
                return decode(p, self.image_size, self.channels, self.crop)
            except UNREADABLE as exc:
                return exc

        # PIL releases the GIL while decoding and resizing, so threads do overlap
        with ThreadPoolExecutor(max(1, self.num_workers)) as pool:
            results = list(pool.map(one, paths))
        out: list[Tensor | None] = []
        for p, r in zip(paths, results):
            if isinstance(r, BaseException):
                self._fail_or_skip(p, r)
                out.append(None)
            else:
                out.append(r)
        return out

    def _readable(self, path: Path) -> bool:
        try:
            with Image.open(path) as im:
                im.verify()
            return True
        except UNREADABLE as exc:
            self._fail_or_skip(path, exc)
            return False

    def _choose(self, paths: list[Path], y: Tensor) -> tuple[list[Path], Tensor]:
        """The files ``data.subset`` keeps, before any is opened."""
        idx = self.subset_of(len(paths))
        if idx is None:
            return paths, y
        self._check_classes(y)  # on every file found: a small subset may miss a class
        return [paths[i] for i in idx.tolist()], y[idx]

    def setup(self, stage: str | None = None) -> None:
        if self.train_set is not None:
            return
        paths, y = self._choose(*self.find())
        self.skipped = []
        if self._cached(len(paths)):
            images = self._decode_all(paths)
            keep = [i for i, im in enumerate(images) if im is not None]
            self._need_some(keep, len(paths))
            x = torch.stack([images[i] for i in keep])
            y = y[keep]
            if self.subset is None:
                self._check_classes(y)
            self._report_skipped(len(paths))
            self.train_set = TensorDataset(x, y)
            self.num_workers = 0  # decoded tensors: the batched in-process path is fastest
            return
        keep = (
            [i for i, p in enumerate(paths) if self._readable(p)] if self.verify else list(range(len(paths)))
        )
        self._need_some(keep, len(paths))
        y = y[keep]
        if self.subset is None:
            self._check_classes(y)
        self._report_skipped(len(paths))
        self.train_set = ImageFileDataset(
            [paths[i] for i in keep], y, self.image_size, self.channels, self.crop, self.strict
        )

    def _need_some(self, keep: list[int], total: int) -> None:
        if not keep:
            first = "; ".join(f"{p.name} ({why})" for p, why in self.skipped[:SHOWN])
            raise ValueError(
                f"data={self.name}: none of the {total} image files under {self.root} could be read: {first}"
            )

    # ------------------------------------------------------------ for metrics
    def _images(self, indices: Tensor) -> Tensor:
        ds = self.train_set
        if isinstance(ds, TensorDataset):
            return ds.x[indices]
        with ThreadPoolExecutor(max(1, self.num_workers)) as pool:
            return torch.stack(list(pool.map(lambda i: ds.load(int(i))[0], indices.tolist())))

    def real_samples(self, n: int | None = None) -> Tensor:
        if self.train_set is None:
            self.setup("fit")
        total = len(self.train_set)
        return to_float_images(self._images(torch.arange(total if n is None else min(n, total))))

    def fingerprint(self) -> str:
        if self.train_set is None:
            self.setup("fit")
        ds = self.train_set
        y = ds.y if isinstance(ds, TensorDataset) else ds.targets
        extra = f"{self.name};{self.image_size};{self.channels};{self.crop};{self.classes}{self.subset_key()}"
        return fingerprint(len(ds), self._images, y, extra)
