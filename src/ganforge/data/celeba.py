"""CelebA (Liu et al. 2015), the aligned-and-cropped 178x218 faces, served unlabelled.

Preprocessing as in common GAN practice: a 178x178 centre crop, then a resize to
``image_size`` (64). The images are read from ``<root>/celeba/img_align_celeba/``,
where torchvision's downloader puts them; ``split`` other than ``all`` also needs
``list_eval_partition.txt`` next to that folder. The 40 attributes are not used.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor

from ganforge.data.download import ensure_files
from ganforge.data.folder import ImageFolderDataModule

SPLITS = {"train": 0, "valid": 1, "test": 2, "all": None}
NUM_IMAGES = 202_599


class CelebADataModule(ImageFolderDataModule):
    name = "celeba"
    source = (
        "https://mmlab.ie.cuhk.edu.hk/projects/CelebA.html (img_align_celeba.zip, unzipped, "
        "and Eval/list_eval_partition.txt)"
    )

    def __init__(
        self,
        root: str | Path = "data",
        download: bool = True,
        split: str = "all",
        crop: int | None = 178,
        image_size: int = 64,
        channels: int = 3,
        num_classes: int = 0,
        **kwargs,
    ) -> None:
        if split not in SPLITS:
            raise ValueError(f"data=celeba: data.split must be one of {sorted(SPLITS)}, got {split!r}")
        if num_classes:
            raise ValueError(
                f"data=celeba is served without labels: data.num_classes must be 0, got {num_classes}. "
                "For a conditional model use a labelled dataset, or data=folder with class subfolders"
            )
        kwargs.pop("labels", None)
        super().__init__(
            root=Path(root) / "celeba" / "img_align_celeba",
            labels=False,
            crop=crop,
            image_size=image_size,
            channels=channels,
            num_classes=0,
            **kwargs,
        )
        self.download, self.split = bool(download), split

    @property
    def directory(self) -> Path:
        return self.root.parent

    def missing(self) -> list[str]:
        absent = []
        if not self.root.is_dir() or next(self.root.glob("*.jpg"), None) is None:
            absent.append(f"img_align_celeba/*.jpg ({NUM_IMAGES:,} images, 000001.jpg to {NUM_IMAGES}.jpg)")
        if self.split != "all" and not (self.directory / "list_eval_partition.txt").is_file():
            absent.append("list_eval_partition.txt (needed for data.split other than all)")
        return absent

    def fetch(self) -> None:
        import torchvision.datasets

        # Google Drive through gdown; often refused for quota, hence the manual route in the error
        torchvision.datasets.CelebA(str(self.directory.parent), split="all", target_type=[], download=True)

    def prepare_data(self) -> None:
        ensure_files(self.name, self.directory, self.missing, self.download, self.fetch, self.source)

    def find(self) -> tuple[list[Path], Tensor]:
        ensure_files(self.name, self.directory, self.missing, False, self.fetch, self.source)
        paths, y = super().find()
        if SPLITS[self.split] is None:
            return paths, y
        wanted = set()
        with open(self.directory / "list_eval_partition.txt") as f:
            for line in f:
                parts = line.split()
                if len(parts) == 2 and int(parts[1]) == SPLITS[self.split]:
                    wanted.add(parts[0])
        kept = [p for p in paths if p.name in wanted]
        return kept, torch.full((len(kept),), -1, dtype=torch.long)
